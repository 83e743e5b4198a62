"""The Graph API sandbox: an aiohttp app that answers like Graph API v23.0 Ads Insights.

Graph endpoints (``{version}`` like ``v23.0``; shapes per META_GRAPH_API.md §1, §3):

- ``GET /{version}/act_{id}/insights`` with ``level=ad``, ``time_increment=1``,
  ``time_range={"since":"YYYY-MM-DD","until":"YYYY-MM-DD"}`` (JSON in the
  query string; or ``date_preset``), ``fields`` (comma list), ``limit``
  (default 25, capped at ``max_limit``), ``after``/``before`` cursors,
  ``filtering`` on ``ad.effective_status`` (``IN``/``NOT_IN``; without it
  archived and deleted ads are left out, as Meta does). Parameters the
  sandbox does not implement (breakdowns, other filters, unknown names)
  are refused with code 100, never ignored.
  Answers ``{"data":[...], "paging":{"cursors":{"before","after"},"next"?,"previous"?}}``
  with ``next`` only while more rows remain. Rows are ordered by (date, ad id).
- ``GET /{version}/act_{id}?fields=...`` -> ``{"id":"act_..","account_id","name","currency","timezone_name"}``.
- Async report runs (§2): ``POST /{version}/act_{id}/insights`` (same parameters,
  query or form) -> ``{"report_run_id"}``; ``GET /{version}/{report_run_id}`` ->
  ``{"id","async_status","async_percent_completion",...}`` ("Job Running" until
  ``async_polls_to_complete`` polls, then "Job Completed"; a ``job_failed``
  fault gives "Job Failed" with v25's ``error_code``/``error_subcode``
  ``-2/2490547``); ``GET /{version}/{report_run_id}/insights`` pages the rows.

- ``time_ranges=[{"since","until"},...]`` (or ``time_range`` with
  ``time_increment=all_days``) instead of daily rows: one row per ad with
  delivery in each range, ``date_start``/``date_stop`` = the range, counts
  and spend summed, ``reach`` deduplicated over the range by the saturation
  model of ``services.meta_sandbox.reach_model`` (§1: reach cannot be summed).
- Tokens (§5): ``GET /{version}/oauth/access_token?grant_type=fb_exchange_token
  &client_id&client_secret&fb_exchange_token`` -> ``{"access_token","token_type",
  "expires_in"}``; ``GET /{version}/debug_token?input_token=`` -> ``{"data":{...}}``
  (``services.meta_sandbox.tokens``).

Auth: an ``access_token`` query parameter or an ``Authorization: Bearer``/``OAuth``
header [unverified that Meta accepts the header form for every edge]. Any
non-empty token is accepted unless ``tokens`` is given (then those, and
tokens the sandbox issued by exchange); a tracked token past its expiry is
190/463. When ``app_secret`` is set, ``appsecret_proof`` = hex
HMAC-SHA256(app_secret, token) is required (META_GRAPH_API.md §5).

Errors (HTTP 400 unless noted; body per §3): no token -> 104; invalid token -> 190;
unknown account -> 100/33 (``GraphMethodException``); bad parameters -> 100;
range older than 37 months -> 3018 [unverified code]; version below
``min_version`` -> 2635; usage at 100 % -> 80000/2446079 or 4/1504039.
Versions in ``version_upgrades`` are answered with an ``X-Ad-Api-Version-Warning``
header, as Meta does for auto-upgraded calls (§6). Usage headers
(``services.meta_sandbox.usage``) are on every Graph response.

Admin endpoints (not Graph): ``GET /_sandbox/stats``, ``POST /_sandbox/reset_stats``,
``GET|POST|DELETE /_sandbox/faults`` (``services.meta_sandbox.faults``),
``POST /_sandbox/restate``, ``POST /_sandbox/ads`` (an ad's ``effective_status``), ``POST /_sandbox/tokens`` (accept, expire or revoke a token),
``GET /_sandbox/health``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.attribution import InvalidAttribution, canonical
from services.common.effective_status import EFFECTIVE_STATUSES
from services.meta_sandbox.accounts import SandboxAccount
from services.meta_sandbox.faults import PAGING_KINDS, Fault, FaultBook, FaultSpecError
from services.meta_sandbox.tokens import TokenBook
from services.meta_sandbox.usage import UsageModel
from services.meta_sandbox.wire import DEFAULT_FIELDS, FIELD_RENDERERS, error_body, render_row, unknown_object_message

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 25
MAX_TIME_RANGES = 1000  # sandbox cap [unverified: Meta documents no limit]
MAX_LIMIT = 5000
RETENTION_MONTHS = 37
VERSION_RE = re.compile(r"^v(\d+)\.(\d+)$")
ACCOUNT_FIELDS = ("id", "account_id", "name", "currency", "timezone_name")
DATE_PRESETS = {"today": (0, 0), "yesterday": (1, 1), "last_3d": (3, 1), "last_7d": (7, 1), "last_14d": (14, 1),
                "last_28d": (28, 1), "last_30d": (30, 1), "last_90d": (90, 1)}


class GraphErrorResponse(Exception):
    """Raised inside handlers; rendered as a Graph API error body."""

    def __init__(self, code: int, message: str, *, subcode: int | None = None, status: int = 400,
                 type_: str = "OAuthException", is_transient: bool | None = None,
                 regain_minutes: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode, self.status = code, message, subcode, status
        self.type_, self.is_transient, self.regain_minutes = type_, is_transient, regain_minutes


@dataclass
class SandboxState:
    """Everything mutable in one sandbox app."""

    accounts: dict[str, SandboxAccount]
    tokens: TokenBook
    app_secret: str | None
    default_limit: int
    max_limit: int
    min_version: tuple[int, int]
    version_upgrades: dict[str, str]
    public_base_url: str | None
    usage: UsageModel
    faults: FaultBook = field(default_factory=FaultBook)
    async_polls_to_complete: int = 2
    requests: list[dict[str, Any]] = field(default_factory=list)
    graph_requests: int = 0
    account_requests: int = 0
    async_requests: int = 0
    token_requests: int = 0
    jobs: dict[str, "ReportRun"] = field(default_factory=dict)
    next_run_id: int = 6_000_000_000_001

    def reset_stats(self) -> None:
        """Forget recorded requests and counters (report runs stay)."""
        self.requests.clear()
        self.graph_requests = 0
        self.account_requests = 0
        self.async_requests = 0
        self.token_requests = 0


@dataclass(frozen=True)
class InsightsQuery:
    """A validated insights query: daily rows of ``since..until``, or range rows of ``ranges``."""

    since: date
    until: date
    fields: list[str]
    ranges: tuple[tuple[date, date], ...] | None = None  # None = daily rows (time_increment=1)
    statuses: frozenset[str] | None = None  # filtering on ad.effective_status; None = Meta's default
    attribution: tuple[str, ...] | None = None  # action_attribution_windows; None = the default setting

    def rows(self, account: SandboxAccount) -> list[Any]:
        """The rows this query answers, in answer order."""
        if self.ranges is None:
            return account.rows_between(self.since, self.until, self.statuses)
        return account.range_rows(list(self.ranges), self.statuses)

    def key(self) -> str:
        """Identity of the query for cursors."""
        spans = "" if self.ranges is None else ";".join(f"{a}/{b}" for a, b in self.ranges)
        statuses = "" if self.statuses is None else ",".join(sorted(self.statuses))
        windows = "" if self.attribution is None else ",".join(self.attribution)
        return f"{self.since}|{self.until}|{spans}|{statuses}|{windows}"


@dataclass
class ReportRun:
    """An async insights report (META_GRAPH_API.md §2): created by POST, polled, then paged."""

    run_id: str
    account_id: str
    query: InsightsQuery
    failed: bool = False
    polls: int = 0

    @property
    def since(self) -> date:
        return self.query.since

    @property
    def until(self) -> date:
        return self.query.until

    @property
    def fields(self) -> list[str]:
        return self.query.fields


STATE = web.AppKey("sandbox_state", SandboxState)


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings, so tokens in ``access_token=`` never reach logs."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One line per request: remote, method, path (no query string), status."""
        self.logger.info("%s %s %s %s", request.remote, request.method, request.path, response.status)


# ---------------------------------------------------------------------------- helpers


def _version_tuple(version: str) -> tuple[int, int] | None:
    m = VERSION_RE.match(version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _account_today(account: SandboxAccount) -> date:
    return datetime.now(timezone.utc).astimezone(ZoneInfo(account.timezone_name)).date()


def _months_back(day: date, months: int) -> date:
    m = day.month - 1 - months
    year, month = day.year + m // 12, m % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _cursor(fingerprint: str, index: int, nonce: str = "") -> str:
    raw = f"{fingerprint}:{index}" + (f":{nonce}" if nonce else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(value: str, fingerprint: str, name: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        fp, idx = raw.split(":")[:2]
        index = int(idx)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise GraphErrorResponse(100, f"(#100) The {name} cursor is not valid") from None
    if fp != fingerprint or index < -1:  # -1: "after" the start (a repeat_page fault's cursor)
        raise GraphErrorResponse(100, f"(#100) The {name} cursor does not belong to this query")
    return index


def _token_of(request: web.Request, q: Mapping[str, str]) -> str:
    token = q.get("access_token", "")
    if not token:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "oauth"):
            token = value.strip()
    return token


def _check_auth(state: SandboxState, request: web.Request, q: Mapping[str, str]) -> None:
    token = _token_of(request, q)
    _check_token(state, token)
    if state.app_secret is not None:
        proof = q.get("appsecret_proof", "")
        want = hmac.new(state.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, want):
            raise GraphErrorResponse(100, "Invalid appsecret_proof provided in the API argument",
                                     type_="GraphMethodException")


def _check_token(state: SandboxState, token: str) -> None:
    verdict = state.tokens.check(token)
    if verdict == "missing":  # Graph's code for no token at all is 104 (190 is a token that is there but bad)
        raise GraphErrorResponse(104, "An access token is required to request this resource.")
    if verdict == "unknown":
        raise GraphErrorResponse(190, "Invalid OAuth access token - Cannot parse access token")
    if verdict == "expired":
        now = datetime.now(timezone.utc).strftime("%A, %d-%b-%y %H:%M:%S UTC")
        raise GraphErrorResponse(190, f"Error validating access token: Session has expired. The current time is "
                                      f"{now}.", subcode=463)


def _check_version(state: SandboxState, version: str) -> None:
    parsed = _version_tuple(version)
    if parsed is None:
        raise GraphErrorResponse(100, f"Unknown path components: /{version}", status=400)
    if parsed < state.min_version:
        raise GraphErrorResponse(
            2635, f"(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version: "
                  f"v{state.min_version[0]}.{state.min_version[1]} or later.")


def _account(state: SandboxState, object_id: str) -> SandboxAccount:
    if not object_id.startswith("act_"):
        raise GraphErrorResponse(100, unknown_object_message(object_id), subcode=33, type_="GraphMethodException")
    try:
        account_id = normalise_account_id(object_id)
    except InvalidAccountId:
        raise GraphErrorResponse(100, unknown_object_message(object_id), subcode=33,
                                 type_="GraphMethodException") from None
    account = state.accounts.get(account_id)
    if account is None:
        raise GraphErrorResponse(100, unknown_object_message(object_id), subcode=33, type_="GraphMethodException")
    return account


def _field_names(raw: str) -> list[str]:
    """``fields`` as Graph takes it: a comma list (``a,b``) or a JSON array (``["a","b"]``, what the
    facebook-business SDK sends for edges)."""
    text = raw.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise GraphErrorResponse(100, "(#100) Param fields must be a comma-separated list or a JSON array of "
                                          "field names")
        return [n.strip() for n in names if n.strip()]
    return [f.strip() for f in text.split(",") if f.strip()]


def _fields(raw: str | None, allowed: Iterable[str], default: Iterable[str]) -> list[str]:
    if raw is None or raw.strip() in ("", "[]"):
        return list(default)
    names = _field_names(raw)
    allowed = list(allowed)
    for name in names:
        if name not in allowed and name not in ("date_start", "date_stop"):
            raise GraphErrorResponse(100, f"(#100) {name} is not valid for fields param. valid fields are: "
                                          f"{', '.join(allowed)}")
    seen: dict[str, None] = {}
    for name in names:
        if name not in ("date_start", "date_stop"):
            seen.setdefault(name)
    return list(seen)


def _span(spec: Any, account: SandboxAccount, name: str) -> tuple[date, date]:
    """One ``{"since","until"}`` object, checked (order, 37-month retention)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("since"), str) or not isinstance(spec.get("until"), str):
        raise GraphErrorResponse(100, f"(#100) Param {name} must have string keys since and until")
    try:
        since, until = date.fromisoformat(spec["since"]), date.fromisoformat(spec["until"])
    except ValueError:
        raise GraphErrorResponse(100, f"(#100) Param {name}[since] and {name}[until] must be valid "
                                      "dates (YYYY-MM-DD)") from None
    if until < since:
        raise GraphErrorResponse(100, f"(#100) {name} until ({until}) must not be before since ({since})")
    if since < _months_back(_account_today(account), RETENTION_MONTHS):
        raise GraphErrorResponse(3018, "(#3018) The start date of the time range cannot be beyond 37 months "
                                       "from the current date")
    return since, until


def _time_ranges(raw: str, account: SandboxAccount) -> tuple[tuple[date, date], ...]:
    """``time_ranges`` = a JSON list of ``{"since","until"}`` (META_GRAPH_API.md §1)."""
    try:
        specs = json.loads(raw)
    except json.JSONDecodeError:
        specs = None
    if not isinstance(specs, list) or not specs:
        raise GraphErrorResponse(100, "(#100) Param time_ranges must be a non-empty JSON list of objects like "
                                      "{\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}")
    if len(specs) > MAX_TIME_RANGES:
        raise GraphErrorResponse(100, f"(#100) Param time_ranges: at most {MAX_TIME_RANGES} ranges (sandbox limit)")
    return tuple(_span(spec, account, f"time_ranges[{i}]") for i, spec in enumerate(specs))


#: Query parameters of the insights edge the sandbox implements; any other is refused (never ignored).
INSIGHTS_PARAMS = frozenset({
    "level", "fields", "time_range", "time_ranges", "time_increment", "date_preset", "limit", "after", "before",
    "filtering", "breakdowns", "action_breakdowns", "action_attribution_windows", "access_token", "appsecret_proof",
})


def _json_param(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise GraphErrorResponse(100, f"(#100) Param {name} must be JSON") from None


def _filtering(raw: str | None) -> frozenset[str] | None:
    """``filtering=[{"field","operator","value"}, ...]`` (META_GRAPH_API.md §1): the ad statuses to answer.

    Implemented: ``ad.effective_status`` with ``IN`` / ``NOT_IN`` and values of
    ``EFFECTIVE_STATUSES`` (several filters intersect). Anything else is
    refused with code 100 (the sandbox never ignores a filter). None: no
    status filter (Meta's default: archived and deleted ads left out).
    """
    if raw is None or raw.strip() in ("", "[]"):
        return None
    specs = _json_param(raw, "filtering")
    if not isinstance(specs, list):
        raise GraphErrorResponse(100, "(#100) Param filtering must be a JSON array of {field, operator, value}")
    statuses: set[str] | None = None
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not {"field", "operator", "value"} <= set(spec):
            raise GraphErrorResponse(100, f"(#100) filtering[{i}] must be an object with field, operator and value")
        if spec["field"] != "ad.effective_status":
            raise GraphErrorResponse(100, f"(#100) filtering on {spec['field']!r} is not implemented by the "
                                          "sandbox (it implements ad.effective_status with IN and NOT_IN)")
        values = spec["value"]
        if not isinstance(values, list) or not values or any(v not in EFFECTIVE_STATUSES for v in values):
            raise GraphErrorResponse(100, f"(#100) Filtering field ad.effective_status: value {values!r} must be a "
                                          f"non-empty list of {', '.join(EFFECTIVE_STATUSES)}")
        if spec["operator"] == "IN":
            chosen = set(values)
        elif spec["operator"] == "NOT_IN":
            chosen = set(EFFECTIVE_STATUSES) - set(values)
        else:
            raise GraphErrorResponse(100, f"(#100) filtering operator {spec['operator']!r} on ad.effective_status is "
                                          "not implemented by the sandbox (IN, NOT_IN)")
        statuses = chosen if statuses is None else statuses & chosen
    return frozenset(statuses or ())


def _attribution(raw: str | None) -> tuple[str, ...] | None:
    """``action_attribution_windows`` (a JSON array or a comma list) -> canonical windows; None when absent.
    Unknown and retired windows (7d_view, 28d_view) are refused with code 100."""
    if raw is None or raw.strip() in ("", "[]"):
        return None
    try:
        return canonical(_field_names(raw))
    except InvalidAttribution as exc:
        raise GraphErrorResponse(100, f"(#100) action_attribution_windows: {exc}") from None


def _refuse_unimplemented(q: Mapping[str, str]) -> None:
    """Code 100 for parameters the sandbox does not implement: unknown ones, ``breakdowns``, and
    ``action_breakdowns`` other than the default ``action_type``."""
    unknown = sorted(set(q) - INSIGHTS_PARAMS)
    if unknown:
        raise GraphErrorResponse(100, f"(#100) param {unknown[0]} is not implemented by the sandbox (it implements "
                                      f"{', '.join(sorted(INSIGHTS_PARAMS))})")
    for name in ("breakdowns", "action_breakdowns"):
        raw = q.get(name)
        if raw is None or raw.strip() in ("", "[]"):
            continue
        names = _field_names(raw)
        if name == "action_breakdowns" and names == ["action_type"]:
            continue
        raise GraphErrorResponse(100, f"(#100) {name}={raw} is not implemented by the sandbox (no breakdowns; "
                                      "action_breakdowns only action_type, the default)")


def _time_range(q: Mapping[str, str], account: SandboxAccount) -> tuple[date, date]:
    raw = q.get("time_range")
    if raw is None:
        preset = q.get("date_preset", "last_30d")
        if preset not in DATE_PRESETS:
            raise GraphErrorResponse(100, f"(#100) date_preset must be one of {', '.join(DATE_PRESETS)} "
                                          f"(sandbox subset)")
        back, end = DATE_PRESETS[preset]
        today = _account_today(account)
        return today - timedelta(days=back), today - timedelta(days=end)
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        raise GraphErrorResponse(100, "(#100) Param time_range must be a JSON object "
                                      "like {\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}") from None
    return _span(spec, account, "time_range")


def _limit(state: SandboxState, raw: str | None) -> int:
    if raw is None:
        return state.default_limit
    try:
        value = int(raw)
    except ValueError:
        raise GraphErrorResponse(100, f"(#100) Param limit must be an integer, got {raw!r}") from None
    if value < 1:
        raise GraphErrorResponse(100, "(#100) Param limit must be a positive integer")
    return min(value, state.max_limit)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=dict(headers or {}),
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


# ---------------------------------------------------------------------------- Graph handlers

ASYNC_ENDPOINTS = ("async_create", "report", "report_insights")
TOKEN_ENDPOINTS = ("oauth", "debug_token")


def _recorded_attribution(raw: str | None) -> list[str] | None:
    """The request's action_attribution_windows for /_sandbox/stats (None when absent or unreadable)."""
    try:
        windows = _attribution(raw)
    except GraphErrorResponse:
        return None
    return list(windows) if windows is not None else None


def _record_dates(record: dict[str, Any], q: Mapping[str, str]) -> None:
    try:
        tr = json.loads(q.get("time_range", "null")) or {}
        record["since"], record["until"] = tr.get("since"), tr.get("until")
    except (json.JSONDecodeError, AttributeError):
        pass
    if "time_ranges" in q:
        try:
            record["time_ranges"] = [[r.get("since"), r.get("until")] for r in json.loads(q["time_ranges"])]
        except (json.JSONDecodeError, AttributeError, TypeError):
            record["time_ranges"] = q["time_ranges"]


async def _graph(request: web.Request, endpoint: str) -> web.StreamResponse:
    """Common path for Graph endpoints: stats, faults, auth, usage, headers, errors.

    ``endpoint``: ``insights`` (GET act_/insights), ``account`` (GET act_),
    ``async_create`` (POST act_/insights), ``report`` (GET report run),
    ``report_insights`` (GET report run /insights), ``oauth`` (GET oauth/access_token),
    ``debug_token`` (GET debug_token).
    """
    state = request.app[STATE]
    version = request.match_info["version"]
    object_id = request.match_info.get("object_id", "")
    q: dict[str, str] = dict(request.query)
    if request.method == "POST":
        q.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    job = state.jobs.get(object_id) if endpoint in ("report", "report_insights") else None
    state.graph_requests += 1
    record: dict[str, Any] = {"path": request.path, "version": version, "account_id": None, "since": None,
                              "until": None, "after": q.get("after"), "before": q.get("before"),
                              "limit": q.get("limit"), "fields": q.get("fields"), "status": None, "fault": None,
                              "attribution": _recorded_attribution(q.get("action_attribution_windows"))}
    if endpoint == "insights":
        _record_dates(record, q)
        state.requests.append(record)
    elif endpoint == "report_insights":
        record["report_run_id"] = object_id
        if job is not None:
            record["since"], record["until"] = job.since.isoformat(), job.until.isoformat()
            record["fields"] = ",".join(job.fields)
            if job.query.ranges is not None:
                record["time_ranges"] = [[a.isoformat(), b.isoformat()] for a, b in job.query.ranges]
        state.requests.append(record)
    elif endpoint == "account":
        state.account_requests += 1
    elif endpoint in TOKEN_ENDPOINTS:
        state.token_requests += 1
    else:
        state.async_requests += 1
    if job is not None:
        record["account_id"] = job.account_id
    else:
        try:
            record["account_id"] = normalise_account_id(object_id)
        except InvalidAccountId:
            pass
    account = state.accounts.get(record["account_id"] or "")
    active_ads = account.active_ads if account else 0
    usage_account = account.account_id if account else None
    insights = endpoint in ("insights", "report_insights")
    headers: dict[str, str] = {}
    upgraded = state.version_upgrades.get(version)
    if upgraded:
        headers["X-Ad-Api-Version-Warning"] = (
            f"The API version {version} you are calling has been deprecated. "
            f"It has been automatically upgraded to {upgraded}.")
    fault = state.faults.take(record["account_id"], "async" if endpoint in ASYNC_ENDPOINTS
                              else "token" if endpoint in TOKEN_ENDPOINTS else endpoint)
    regain: int | None = None
    try:
        if fault is not None:
            record["fault"] = fault.kind
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            regain = fault.regain_minutes
            if fault.kind == "disconnect":
                if request.transport is not None:
                    request.transport.abort()
                record["status"] = 0
                raise asyncio.CancelledError()
            if fault.kind == "http":
                state.usage.record(usage_account)
                record["status"] = fault.http_status
                return web.Response(status=fault.http_status or 502, text=fault.body, content_type="text/html",
                                    headers=headers)
            if fault.kind in ("error", "expired_token"):
                code, subcode, status, message, transient = fault.error_parts()
                raise GraphErrorResponse(code, message, subcode=subcode, status=status, is_transient=transient,
                                         type_=fault.type, regain_minutes=fault.regain_minutes)
        _check_version(state, version)
        if endpoint != "oauth":  # the exchange authenticates with client_id/client_secret
            _check_auth(state, request, q)
        refusal = state.usage.refusal(usage_account, active_ads)
        if refusal == "app":
            raise GraphErrorResponse(4, "(#4) Application request limit reached", subcode=1504039, is_transient=True,
                                     regain_minutes=state.usage.app_regain_minutes())
        if refusal == "account":
            raise GraphErrorResponse(
                80000, "(#80000) There have been too many calls from this ad-account. Wait a bit and try again. "
                       "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
                       "rate-limiting#ads-management.", subcode=2446079, is_transient=True)
        if endpoint == "insights":
            account = _account(state, object_id)
            query = _insights_query(state, q, account)
            if account.max_query_days is not None and (query.until - query.since).days + 1 > account.max_query_days:
                raise GraphErrorResponse(1, "Please reduce the amount of data you're asking for, then retry your "
                                            "request", subcode=99, status=500)
            body = _page(state, request, q, account, query.rows(account), query.fields,
                         f"{account.account_id}|{query.key()}",
                         fault.kind if fault is not None and fault.kind in PAGING_KINDS else None, query.attribution)
        elif endpoint == "account":
            body = _account_body(state, q, object_id)
        elif endpoint == "async_create":
            account = _account(state, object_id)
            query = _insights_query(state, q, account)
            run_id = str(state.next_run_id)
            state.next_run_id += 1
            state.jobs[run_id] = ReportRun(run_id, account.account_id, query,
                                           failed=fault is not None and fault.kind == "job_failed")
            body = {"report_run_id": run_id}
        elif endpoint == "report":
            body = _report_status(state, object_id)
        elif endpoint == "oauth":
            body = _exchange(state, q)
        elif endpoint == "debug_token":
            body = _debug_token(state, q)
        else:
            job = _ready_job(state, object_id)
            account = state.accounts[job.account_id]
            body = _page(state, request, q, account, job.query.rows(account), job.fields, f"run|{job.run_id}",
                         attribution=job.query.attribution)
        if fault is not None and fault.kind == "garbage" and body.get("data"):
            body["data"][0][fault.field] = fault.value
        state.usage.record(usage_account)
        headers.update(state.usage.headers(usage_account, active_ads, insights=insights, regain_minutes=regain))
        record["status"] = 200
        return _json(body, headers=headers)
    except GraphErrorResponse as exc:
        if exc.code not in (4, 80000) or fault is not None:
            state.usage.record(usage_account)  # errors count as calls, refusals by the limiter do not
        if exc.regain_minutes is not None:
            regain = exc.regain_minutes
        headers.update(state.usage.headers(usage_account, active_ads, insights=insights, regain_minutes=regain))
        record["status"] = exc.status
        return _json(error_body(exc.code, exc.message, subcode=exc.subcode, type_=exc.type_,
                                is_transient=exc.is_transient), status=exc.status, headers=headers)


def _insights_query(state: SandboxState, q: Mapping[str, str], account: SandboxAccount) -> InsightsQuery:
    """Validate level / time_increment / fields / time_range(s).

    Daily rows: ``time_range`` (or ``date_preset``) with ``time_increment=1``
    (the sandbox's default). Range rows: ``time_ranges`` (``time_increment``
    absent or ``all_days``), or ``time_range`` with ``time_increment=all_days``.
    """
    _refuse_unimplemented(q)
    level = q.get("level", "ad")
    if level != "ad":
        raise GraphErrorResponse(100, f"(#100) level={level!r}: the sandbox implements level=ad only")
    fields = _fields(q.get("fields"), FIELD_RENDERERS, DEFAULT_FIELDS)
    statuses = _filtering(q.get("filtering"))
    attribution = _attribution(q.get("action_attribution_windows"))
    if "time_ranges" in q:
        increment = q.get("time_increment", "all_days")
        if increment != "all_days":
            raise GraphErrorResponse(100, f"(#100) time_increment={increment!r} with time_ranges: the sandbox "
                                          "implements all_days (one row per range) only")
        ranges = _time_ranges(q["time_ranges"], account)
        return InsightsQuery(min(a for a, _ in ranges), max(b for _, b in ranges), fields, ranges, statuses,
                             attribution)
    increment = q.get("time_increment", "1")
    if increment not in ("1", "all_days"):
        raise GraphErrorResponse(100, f"(#100) time_increment={increment!r}: the sandbox implements "
                                      "time_increment=1 and all_days only")
    since, until = _time_range(q, account)
    return InsightsQuery(since, until, fields, ((since, until),) if increment == "all_days" else None, statuses,
                         attribution)


def _page(state: SandboxState, request: web.Request, q: Mapping[str, str], account: SandboxAccount,
          rows: list[Any], fields: list[str], query_key: str, paging_fault: str | None = None,
          attribution: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One page of ``rows`` per ``limit``/``after``/``before``, with Meta-style paging links.

    ``paging_fault`` (``faults.PAGING_KINDS``): ``endless_paging`` always links
    a next page (empty pages past the end, each with a new cursor);
    ``repeat_page`` links, from the last page, a "next" page that serves the
    last page's rows again under a new cursor (forever)."""
    limit = _limit(state, q.get("limit"))
    fingerprint = hashlib.sha256(query_key.encode()).hexdigest()[:10]
    if q.get("after"):
        start = _decode_cursor(q["after"], fingerprint, "after") + 1
        end = start + limit
    elif q.get("before"):
        end = _decode_cursor(q["before"], fingerprint, "before")
        start = max(0, end - limit)
    else:
        start, end = 0, limit
    page = rows[start:end]
    body: dict[str, Any] = {"data": [render_row(r, account, fields, attribution) for r in page]}
    if not page and paging_fault != "endless_paging":
        return body
    first, last = start, start + max(len(page), 1) - 1
    paging: dict[str, Any] = {"cursors": {"before": _cursor(fingerprint, first), "after": _cursor(fingerprint, last)}}
    base = request.url
    if state.public_base_url:
        public = URL(state.public_base_url)
        base = URL.build(scheme=public.scheme, host=public.host or "", port=public.explicit_port,
                         path=public.path.rstrip("/") + request.path)
    if last + 1 < len(rows) or paging_fault is not None:
        query = {k: v for k, v in q.items() if k not in ("after", "before")}
        if paging_fault == "repeat_page" and last + 1 >= len(rows):
            query["after"] = _cursor(fingerprint, start - 1, nonce=str(state.graph_requests))
        else:
            query["after"] = _cursor(fingerprint, last)
        paging["next"] = str(base.with_query(query))
    if first > 0:
        query = {k: v for k, v in q.items() if k not in ("after", "before")}
        query["before"] = _cursor(fingerprint, first)
        paging["previous"] = str(base.with_query(query))
    body["paging"] = paging
    return body


def _account_body(state: SandboxState, q: Mapping[str, str], object_id: str) -> dict[str, Any]:
    account = _account(state, object_id)
    fields = _fields(q.get("fields"), ACCOUNT_FIELDS, ("id", "account_id"))
    values = {"id": f"act_{account.account_id}", "account_id": account.account_id, "name": account.name,
              "currency": account.currency, "timezone_name": account.timezone_name}
    out = {name: values[name] for name in fields}
    out.setdefault("id", values["id"])
    return out


def _exchange(state: SandboxState, q: Mapping[str, str]) -> dict[str, Any]:
    """``oauth/access_token`` with ``grant_type=fb_exchange_token`` (META_GRAPH_API.md §5).

    Error codes for a wrong client id (101) or secret (1) are [unverified]
    recollections of Meta's answers; the token errors are the usual 190s.
    """
    book = state.tokens
    if q.get("grant_type") != "fb_exchange_token":
        raise GraphErrorResponse(100, "(#100) grant_type must be fb_exchange_token (sandbox subset)")
    if not q.get("client_id") or (book.app_id is not None and q["client_id"] != book.app_id):
        raise GraphErrorResponse(101, "Error validating application. Invalid application ID.")
    secret = q.get("client_secret", "")
    if not secret or (book.app_secret is not None and not hmac.compare_digest(secret, book.app_secret)):
        raise GraphErrorResponse(1, "Error validating client secret.")
    old = q.get("fb_exchange_token", "")
    _check_token(state, old)  # an expired token cannot be exchanged
    new = book.issue(like=book.info(old))
    return {"access_token": new.value, "token_type": "bearer",
            "expires_in": int((new.expires_at - new.issued_at).total_seconds())}


def _debug_token(state: SandboxState, q: Mapping[str, str]) -> dict[str, Any]:
    """``debug_token?input_token=`` -> ``{"data": {...}}`` (META_GRAPH_API.md §5); ``expires_at`` 0 = never."""
    book = state.tokens
    token = q.get("input_token", "")
    if not token:
        raise GraphErrorResponse(100, "(#100) The parameter input_token is required")
    info = book.info(token)
    verdict = book.check(token)
    app_id = book.app_id or "1000000000000001"
    if info is None:
        return {"data": {"error": {"code": 190, "message": "Invalid OAuth access token."}, "is_valid": False,
                         "scopes": []}}

    def epoch(value: datetime | None) -> int:
        return 0 if value is None else int(value.timestamp())

    return {"data": {"app_id": app_id, "type": info.type, "application": "adfatigue sandbox app",
                     "expires_at": epoch(info.expires_at),
                     "data_access_expires_at": epoch(info.expires_at and info.expires_at + timedelta(days=30)),
                     "is_valid": verdict == "ok", "issued_at": epoch(info.issued_at),
                     "scopes": list(info.scopes), "user_id": info.user_id}}


def _report_status(state: SandboxState, run_id: str) -> dict[str, Any]:
    """Poll a report run: each poll advances it; it completes after ``async_polls_to_complete`` polls."""
    job = state.jobs.get(run_id)
    if job is None:
        raise GraphErrorResponse(100, unknown_object_message(run_id), subcode=33, type_="GraphMethodException")
    job.polls += 1
    body: dict[str, Any] = {"id": job.run_id, "account_id": job.account_id, "date_start": job.since.isoformat(),
                            "date_stop": job.until.isoformat()}
    if job.failed:
        body.update(async_status="Job Failed", async_percent_completion=0, error_code=-2, error_subcode=2490547,
                    error_message="The async report failed; please retry later",
                    error_user_title="Report failed", error_user_msg="Please retry your request later.")
        return body
    pct = min(100, round(100 * job.polls / max(1, state.async_polls_to_complete)))
    body["async_percent_completion"] = pct
    body["async_status"] = "Job Completed" if pct >= 100 else "Job Running"
    return body


def _ready_job(state: SandboxState, run_id: str) -> "ReportRun":
    job = state.jobs.get(run_id)
    if job is None:
        raise GraphErrorResponse(100, unknown_object_message(run_id), subcode=33, type_="GraphMethodException")
    if job.failed or job.polls < state.async_polls_to_complete:
        raise GraphErrorResponse(100, f"(#100) Report {run_id} is not ready: poll it until async_status is "
                                      "'Job Completed'")
    return job


async def insights_handler(request: web.Request) -> web.StreamResponse:
    """``GET /{version}/act_{id}/insights`` or ``GET /{version}/{report_run_id}/insights``."""
    object_id = request.match_info["object_id"]
    is_report = not object_id.startswith("act_") and object_id in request.app[STATE].jobs
    return await _graph(request, "report_insights" if is_report else "insights")


async def async_create_handler(request: web.Request) -> web.StreamResponse:
    """``POST /{version}/act_{id}/insights``: start an async report run -> ``{"report_run_id": "..."}``."""
    return await _graph(request, "async_create")


async def account_handler(request: web.Request) -> web.StreamResponse:
    """``GET /{version}/act_{id}?fields=...`` (account) or ``GET /{version}/{report_run_id}`` (job status)."""
    object_id = request.match_info["object_id"]
    is_report = not object_id.startswith("act_") and object_id in request.app[STATE].jobs
    return await _graph(request, "report" if is_report else "account")


# ---------------------------------------------------------------------------- admin handlers


async def stats_handler(request: web.Request) -> web.Response:
    """Every insights request so far, with its time_range and cursor (for tests)."""
    state = request.app[STATE]
    return _json({"insights_requests": len(state.requests), "account_requests": state.account_requests,
                  "async_requests": state.async_requests, "token_requests": state.token_requests,
                  "graph_requests": state.graph_requests,
                  "requests": state.requests})


async def reset_stats_handler(request: web.Request) -> web.Response:
    """``POST /_sandbox/reset_stats``: forget recorded requests (faults and usage stay)."""
    request.app[STATE].reset_stats()
    return _json({"ok": True})


async def faults_get(request: web.Request) -> web.Response:
    """``GET /_sandbox/faults`` -> ``{"faults": [pending fault, ...]}``."""
    return _json({"faults": request.app[STATE].faults.pending()})


async def faults_post(request: web.Request) -> web.Response:
    """``POST /_sandbox/faults`` with one fault object or a list (``faults`` module); 400 on a bad spec."""
    state = request.app[STATE]
    try:
        spec = await request.json()
        specs = spec if isinstance(spec, list) else [spec]
        faults = [Fault.from_json(s) for s in specs]
    except (json.JSONDecodeError, FaultSpecError) as exc:
        return _json({"error": f"bad fault: {exc}"}, status=400)
    for fault in faults:
        state.faults.add(fault)
    return _json({"ok": True, "faults": state.faults.pending()})


async def faults_delete(request: web.Request) -> web.Response:
    """``DELETE /_sandbox/faults``: drop every pending fault."""
    request.app[STATE].faults.clear()
    return _json({"ok": True})


async def restate_handler(request: web.Request) -> web.Response:
    """Restate one account-day: ``{"account_id","date","ad_id"?,"actions_delta"?:{type:"n"},"set"?:{field:value}}``."""
    state = request.app[STATE]
    try:
        spec = await request.json()
        account = state.accounts[normalise_account_id(spec["account_id"])]
        day = date.fromisoformat(spec["date"])
        deltas = {k: Decimal(str(v)) for k, v in (spec.get("actions_delta") or {}).items()}
        set_values: dict[str, Any] = {}
        for key, value in (spec.get("set") or {}).items():
            if key in ("impressions", "reach", "clicks", "inline_link_clicks", "reach_cum"):
                set_values[key] = None if value is None else int(value)
            elif key == "spend":
                set_values[key] = None if value is None else Decimal(str(value))
            elif key == "actions":
                set_values[key] = None if value is None else {k: Decimal(str(v)) for k, v in value.items()}
            else:
                set_values[key] = value
        changed = account.restate(day, spec.get("ad_id"), deltas or None, set_values or None)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, InvalidOperation, InvalidAccountId) as exc:
        return _json({"error": f"bad restatement: {exc!r}; send {{\"account_id\",\"date\",\"ad_id\"?,"
                               f"\"actions_delta\"?,\"set\"?}}"}, status=400)
    return _json({"ok": True, "restated": changed})


async def ads_handler(request: web.Request) -> web.Response:
    """``POST /_sandbox/ads`` ``{"account_id","ad_id","effective_status"}``: archive, delete, pause... an ad;
    or ``{"account_id","max_query_days": N | null}``: from now on an insights query spanning more than N days
    gets Meta's "Please reduce the amount of data you're asking for" (code 1, HTTP 500) at any page size.

    Archived and deleted ads are then left out of insights unless the request's
    ``filtering`` names their status (``services.common.effective_status``).
    400 for an unknown account, ad or status.
    """
    state = request.app[STATE]
    try:
        spec = await request.json()
        account = state.accounts[normalise_account_id(spec["account_id"])]
        if "max_query_days" in spec:  # account-wide: Meta's "reduce the amount of data" above this many days
            days = spec["max_query_days"]
            if days is not None and (not isinstance(days, int) or days < 1):
                raise ValueError("max_query_days must be a positive integer or null")
            account.max_query_days = days
            return _json({"ok": True, "max_query_days": days})
        account.set_status(str(spec["ad_id"]), spec["effective_status"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, InvalidAccountId) as exc:
        return _json({"error": f"bad ad status: {exc!r}; send {{\"account_id\",\"ad_id\",\"effective_status\"}}"},
                     status=400)
    return _json({"ok": True, "ad_id": str(spec["ad_id"]), "effective_status": spec["effective_status"]})


async def oauth_handler(request: web.Request) -> web.StreamResponse:
    """``GET /{version}/oauth/access_token`` (token exchange)."""
    return await _graph(request, "oauth")


async def debug_token_handler(request: web.Request) -> web.StreamResponse:
    """``GET /{version}/debug_token``."""
    return await _graph(request, "debug_token")


async def tokens_handler(request: web.Request) -> web.Response:
    """``POST /_sandbox/tokens`` ``{"token", "expires_at"?: ISO-8601 | null, "revoke"?: true}``: accept
    ``token`` until ``expires_at`` (null = never), or stop accepting it (190/463 from now on)."""
    book = request.app[STATE].tokens
    try:
        spec = await request.json()
        token = spec["token"]
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if spec.get("revoke"):
            book.revoke(token)
        else:
            expires = spec.get("expires_at")
            book.set(token, datetime.fromisoformat(expires) if expires else None)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return _json({"error": f"bad token spec: {type(exc).__name__}; send {{\"token\", \"expires_at\"?, "
                               f"\"revoke\"?}}"}, status=400)
    return _json({"ok": True})


async def health_handler(request: web.Request) -> web.Response:
    """``GET /_sandbox/health`` -> ``{"ok": true, "accounts": [numeric ids]}``."""
    return _json({"ok": True, "accounts": sorted(request.app[STATE].accounts)})


# ---------------------------------------------------------------------------- factory


def create_app(
    accounts: Iterable[SandboxAccount] = (),
    *,
    synthetic: bool = True,
    tokens: Iterable[str] | Mapping[str, datetime | None] | None = None,
    app_secret: str | None = None,
    app_id: str | None = None,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
    min_version: str = "v22.0",
    version_upgrades: Mapping[str, str] | None = None,
    public_base_url: str | None = None,
    usage: UsageModel | None = None,
    async_polls_to_complete: int = 2,
) -> web.Application:
    """Build the sandbox app.

    ``accounts``: the ad accounts to serve; ``synthetic`` adds the built-in
    synthetic account (``services.meta_sandbox.synthetic``) unless an account
    with its id is given. ``tokens``: accepted access tokens, or a mapping
    token -> expiry (None = never) (``tokens`` None = any non-empty token).
    ``app_id``/``app_secret``: the app's credentials, checked by the token
    exchange (and ``app_secret`` makes ``appsecret_proof`` required). ``version_upgrades``: e.g. ``{"v23.0": "v24.0"}`` to
    emit ``X-Ad-Api-Version-Warning``. ``usage``: the usage model (limits,
    enforcement). ``async_polls_to_complete``: status polls before a report
    run is complete. Raises ValueError for a bad ``min_version`` or duplicate account.
    """
    by_id: dict[str, SandboxAccount] = {}
    for account in accounts:
        if account.account_id in by_id:
            raise ValueError(f"account act_{account.account_id} given twice")
        by_id[account.account_id] = account
    if synthetic:
        from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID, synthetic_account

        if SYNTHETIC_ACCOUNT_ID not in by_id:
            by_id[SYNTHETIC_ACCOUNT_ID] = synthetic_account()
    min_v = _version_tuple(min_version)
    if min_v is None:
        raise ValueError(f"min_version {min_version!r} is not like v23.0")
    app = web.Application()
    app[STATE] = SandboxState(
        accounts=by_id,
        tokens=TokenBook(tokens, app_id=app_id, app_secret=app_secret),
        app_secret=app_secret,
        default_limit=default_limit,
        max_limit=max_limit,
        min_version=min_v,
        version_upgrades=dict(version_upgrades or {}),
        public_base_url=public_base_url,
        usage=usage or UsageModel(),
        async_polls_to_complete=async_polls_to_complete,
    )
    app.router.add_get("/_sandbox/stats", stats_handler)
    app.router.add_post("/_sandbox/reset_stats", reset_stats_handler)
    app.router.add_get("/_sandbox/faults", faults_get)
    app.router.add_post("/_sandbox/faults", faults_post)
    app.router.add_delete("/_sandbox/faults", faults_delete)
    app.router.add_post("/_sandbox/restate", restate_handler)
    app.router.add_post("/_sandbox/ads", ads_handler)
    app.router.add_get("/_sandbox/health", health_handler)
    app.router.add_post("/_sandbox/tokens", tokens_handler)
    app.router.add_get("/{version}/oauth/access_token", oauth_handler)
    app.router.add_get("/{version}/debug_token", debug_token_handler)
    # node and edge paths with or without a trailing slash (facebook-business asks for "/v23.0/act_1/")
    for slash in ("", "/"):
        app.router.add_get("/{version}/{object_id}/insights" + slash, insights_handler)
        app.router.add_post("/{version}/{object_id}/insights" + slash, async_create_handler)
        app.router.add_get("/{version}/{object_id}" + slash, account_handler)
    return app

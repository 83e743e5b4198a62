"""HTTP client for the Graph API Ads Insights edge (httpx, one pooled ``AsyncClient``).

What it does (sources: META_GRAPH_API.md §1 paging, §3 errors and headers, §5 tokens, §6 versions):

- ``GET {graph_url}/{api_version}/act_{id}/insights`` with ``level=ad``,
  ``time_increment=1``, ``time_range`` (JSON), ``fields``, ``limit`` and a
  ``filtering`` on ``ad.effective_status`` naming every status (archived and
  deleted ads are left out otherwise, ``services.common.effective_status``) and
  the account's ``action_attribution_windows`` (every row is tagged with them,
  ``services.common.attribution``); follows
  ``paging.next`` until it is absent, a page is empty or brings no new
  ``(ad_id, date)`` key, with a per-query page cap derived from the range and
  the page size (``PageReader.page_cap``, at most ``max_pages``) and loop
  detection (the same ``after`` cursor twice). Every page is parsed at once
  (``graph_parsing``); one bad page fails the whole fetch.
  Long ranges are split (``sync_max_days``) or run as one async report
  up front (``async_min_days``).
- Cumulative reach: ``time_ranges=[{"since":S,"until":t},...]`` without
  ``time_increment`` gives one row per ad and range (§1), deduplicated over
  the range (``fetch_reach_cum``).
- ``GET {graph_url}/{api_version}/act_{id}?fields=account_id,name,currency,timezone_name``
  for the account's time zone and currency (cached per process).
- Tokens (§5): ``GET /oauth/access_token?grant_type=fb_exchange_token`` and
  ``GET /debug_token`` (``exchange_token``, ``debug_token``).
- The access token of each call (``token=``, from the vault or
  ``META_ACCESS_TOKEN``) goes in the ``Authorization: Bearer`` header, never
  in a URL, so httpx's request log (which prints URLs at INFO) cannot leak it;
  ``access_token``/``appsecret_proof`` are also stripped from ``paging.next``
  links before they are requested. ``appsecret_proof`` (HMAC-SHA256 of the
  token with the app secret, §5) is added to every request when an app
  secret is configured. Every token seen is registered for redaction.
- Retries with tenacity: exponential backoff with jitter, ``retries`` retries,
  on the ``retry`` and (short) ``throttled`` classes of ``graph_errors``;
  ``shrink`` errors halve ``limit`` and ask again; below ``min_page_limit``
  a daily query's date range is split in halves, down to one day, and only
  then the query runs as an async report run (§2: POST, poll, page);
  everything else is raised.
- Logs ``X-Ad-Api-Version-Warning`` (Meta auto-upgraded our version, §6) once per distinct value.
- A ``pacer`` (``services.meta_fetcher.pacing``) may refuse or delay each HTTP
  request (rate budget, usage headers) and sees every response's headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Generic, Mapping, Protocol, Sequence, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from services.common.attribution import DEFAULT_ATTRIBUTION
from services.common.effective_status import delivery_filtering
from services.common.insight_row import InsightRow
from services.meta_fetcher.graph_errors import (
    ErrorClass,
    GraphApiError,
    GraphAsyncJobError,
    GraphError,
    GraphPageError,
    GraphPagingCapError,
    GraphPagingError,
    GraphTransportError,
    redact,
    register_secret,
)
from services.meta_fetcher.graph_parsing import (
    ID_FIELDS,
    PageFormatError,
    RangeReach,
    parse_insights_page,
    parse_range_reach_page,
)
from services.meta_fetcher.settings import FetcherSettings
from services.common.logs import RedactionFilter
from services.meta_fetcher import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Insights fields the fetcher can carry in an InsightRow (Graph API names).
SUPPORTED_FIELDS = (
    "account_id", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
    "impressions", "reach", "clicks", "inline_link_clicks", "spend", "actions",
    "quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking",
)
#: The fatigue set, asked for when a request names no fields (FATIGUE_SPEC.md inputs).
DEFAULT_FIELDS = SUPPORTED_FIELDS
SECRET_QUERY_PARAMS = ("access_token", "appsecret_proof")


class Pacer(Protocol):
    """Rate budget and usage-header pacing hooks (see ``services.meta_fetcher.pacing``)."""

    async def before_call(self, account_id: str) -> None:
        """Called before every HTTP request; may sleep or raise CallRefused."""

    def observe(self, account_id: str, headers: httpx.Headers) -> float | None:
        """Called with every response's headers; returns Meta's regain time in seconds, if any."""


@dataclass
class CallCounter:
    """HTTP requests made to Meta for one answer (``upstream_calls``)."""

    calls: int = 0


@dataclass(frozen=True)
class AccountInfo:
    """``GET act_{id}`` answer: numeric id, name, ISO 4217 currency, IANA time zone."""

    account_id: str
    name: str
    currency: str
    timezone_name: str


def _jitter_wait(settings: FetcherSettings, attempt: int) -> float:
    """Exponential backoff with additive jitter: min(max, initial * 2^(attempt-1)) + U(0, jitter) seconds."""
    base = min(settings.backoff_max_s, settings.backoff_initial_s * (2 ** (attempt - 1)))
    return base + random.uniform(0, settings.backoff_jitter_s)


@dataclass(frozen=True)
class ExchangedToken:
    """A long-lived token from ``fb_exchange_token`` (META_GRAPH_API.md §5); the token is hidden from ``repr``."""

    access_token: str = field(repr=False)
    token_type: str = "bearer"
    expires_in_s: int | None = None  # None: Meta gave no expiry


@dataclass(frozen=True)
class TokenDebugInfo:
    """``GET /debug_token`` ``data`` (META_GRAPH_API.md §5). ``expires_at`` None = never (Meta sends 0)."""

    is_valid: bool
    expires_at: datetime | None
    app_id: str = ""
    type: str = ""
    user_id: str = ""
    scopes: tuple[str, ...] = ()


_LIBRARY_FILTER_INSTALLED = False


def install_library_log_redaction() -> None:
    """Once per process: redact what httpx/httpcore log (the oauth exchange sends secrets in its URL, §5)."""
    global _LIBRARY_FILTER_INSTALLED
    if _LIBRARY_FILTER_INSTALLED:
        return
    flt = RedactionFilter()  # the services' one filter (services/common/logs.py), also before logging is set up
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).addFilter(flt)
    _LIBRARY_FILTER_INSTALLED = True


class GraphClient:
    """One pooled HTTP client to Meta (or the sandbox). Use as ``async with`` or call ``aclose``.

    Every public call takes ``token=``: the access token to use (the vault's
    token of the account, see ``services.meta_fetcher.credentials``); None
    means ``settings.access_token`` (``META_ACCESS_TOKEN``).
    """

    def __init__(
        self,
        settings: FetcherSettings,
        *,
        pacer: Pacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.pacer = pacer
        self._sleep = sleep
        self._base = settings.graph_url.rstrip("/")
        self._origin = httpx.URL(self._base)
        for secret in settings.secrets:
            register_secret(secret)
        install_library_log_redaction()
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            headers={"Accept": "application/json", "User-Agent": "adfatigue-meta-fetcher/0.1"},
            follow_redirects=False,
        )
        self._accounts: dict[str, tuple[float, AccountInfo]] = {}
        self._version_warnings: set[str] = set()
        self._account_lookups: dict[str, asyncio.Future[AccountInfo]] = {}

    async def __aenter__(self) -> "GraphClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled HTTP connections."""
        await self._http.aclose()

    # ------------------------------------------------------------------ accounts

    def cached_account(self, account_id: str) -> AccountInfo | None:
        """The cached account info, if fresh (no call)."""
        hit = self._accounts.get(account_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def account_info(self, account_id: str, counter: CallCounter, *, token: str | None = None) -> AccountInfo:
        """Time zone and currency of ``act_{account_id}`` (cached ``account_info_ttl_s``).

        Concurrent lookups of one account share a single request (counted for
        the caller that started it). Raises GraphError subclasses (unknown
        account: GraphApiError 100/33).
        """
        cached = self.cached_account(account_id)
        if cached:
            return cached
        task = self._account_lookups.get(account_id)
        if task is None:
            task = asyncio.ensure_future(self._load_account(account_id, counter, token))
            self._account_lookups[account_id] = task
            task.add_done_callback(lambda t: self._lookup_done(account_id, t))
        return await asyncio.shield(task)

    def _lookup_done(self, account_id: str, task: asyncio.Future[AccountInfo]) -> None:
        self._account_lookups.pop(account_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here so a lookup whose waiters all left never warns

    async def _load_account(self, account_id: str, counter: CallCounter, token: str | None) -> AccountInfo:
        url = httpx.URL(f"{self._base}/{self.settings.api_version}/act_{account_id}",
                        params={"fields": "account_id,name,currency,timezone_name"})
        body = await self._request(url, account_id, counter, token=token)
        if not isinstance(body, dict):
            raise GraphPageError(f"account answer for act_{account_id} is not a JSON object")
        tz = body.get("timezone_name")
        try:
            ZoneInfo(tz) if isinstance(tz, str) and tz else None
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
        if not tz:
            log.warning("act_%s: Meta sent no usable timezone_name; using UTC for date checks", account_id)
            tz = "UTC"
        info = AccountInfo(account_id=account_id, name=str(body.get("name") or ""),
                           currency=str(body.get("currency") or ""), timezone_name=tz)
        self._accounts[account_id] = (time.monotonic() + self.settings.account_info_ttl_s, info)
        return info

    # ------------------------------------------------------------------ daily insights

    async def fetch_insights(self, account_id: str, since: date, until: date, fields: Sequence[str],
                             counter: CallCounter, *, token: str | None = None,
                             attribution: Sequence[str] = DEFAULT_ATTRIBUTION) -> list[InsightRow]:
        """Every daily ad row of ``act_{account_id}`` in ``since..until`` (inclusive).

        ``fields``: Graph field names (the id fields are always added).
        ``attribution``: the canonical ``action_attribution_windows`` sent with
        every query; every row is tagged with it. Returns
        rows sorted by (date_start, ad_id), ``fetched_at`` set to when the last
        page arrived; the same (ad, day) twice keeps the last. Large pulls
        (META_GRAPH_API.md §2): a range of ``async_min_days`` days or more
        (when that setting is > 0) runs as one async report up front; otherwise
        ranges longer than ``sync_max_days`` are split into consecutive sync
        queries. A sync query is a GET with paging; when Meta still asks for
        less data at ``min_page_limit`` and ``async_fallback`` is on, the query
        runs as an async report ("go async on timeouts or 1487534"). Raises
        GraphPageError (bad page), GraphPagingError (loop, cap), GraphApiError,
        GraphTransportError, GraphAsyncJobError, CallRefused.
        """
        days = (until - since).days + 1
        if self.settings.async_min_days > 0 and days >= self.settings.async_min_days:
            log.info("act_%s: %s..%s is %d days (>= %d): running it as an async report", account_id, since, until,
                     days, self.settings.async_min_days)
            return await self.fetch_insights_async(account_id, since, until, fields, counter, token=token,
                                                   attribution=attribution)
        rows: list[InsightRow] = []
        for chunk_since, chunk_until in split_range(since, until, self.settings.sync_max_days):
            rows += await self._daily_query(account_id, chunk_since, chunk_until, fields, counter, token,
                                            tuple(attribution))
        return self._finish_rows(account_id, rows)

    async def _daily_query(self, account_id: str, since: date, until: date, fields: Sequence[str],
                           counter: CallCounter, token: str | None,
                           attribution: tuple[str, ...] = DEFAULT_ATTRIBUTION) -> list[InsightRow]:
        """One sync daily query; when Meta still asks for less data at ``min_page_limit``, the date range is
        split in halves (recursively, down to one day) before the async fallback or giving up.

        Every half is its own request sequence through the pacer, so each counts against the budget.
        """
        params = self._daily_params(since, until, fields, attribution)
        reader = self._daily_reader(account_id, since, until, attribution)
        try:
            return await self._run_query(account_id, params, counter, token, reader,
                                         page_limit=self.settings.page_limit, fallback=since == until)
        except GraphApiError as exc:
            if exc.error_class is not ErrorClass.SHRINK or since == until:
                raise
            middle = since + timedelta(days=(until - since).days // 2)
            log.warning("act_%s: Meta asks for less data even at limit=%d (%s); splitting %s..%s into %s..%s and "
                        "%s..%s", account_id, self.settings.min_page_limit, exc.code_text, since, until, since,
                        middle, middle + timedelta(days=1), until)
            return (await self._daily_query(account_id, since, middle, fields, counter, token, attribution)
                    + await self._daily_query(account_id, middle + timedelta(days=1), until, fields, counter, token,
                                              attribution))

    async def fetch_insights_async(self, account_id: str, since: date, until: date, fields: Sequence[str],
                                   counter: CallCounter, *, token: str | None = None,
                                   attribution: Sequence[str] = DEFAULT_ATTRIBUTION) -> list[InsightRow]:
        """The same rows as ``fetch_insights``, through an async report run (META_GRAPH_API.md §2).

        ``POST act_{id}/insights`` -> ``report_run_id``; ``GET /{run}`` is polled
        (``async_poll_initial_s`` doubling up to ``async_poll_max_s``) until
        ``async_status`` is "Job Completed"; then ``GET /{run}/insights`` is paged.
        Raises GraphAsyncJobError when the run fails, is skipped, or is not done
        within ``async_timeout_s``; otherwise as ``fetch_insights``.
        """
        windows = tuple(attribution)
        rows = await self._run_report(account_id, self._daily_params(since, until, fields, windows), counter, token,
                                      self._daily_reader(account_id, since, until, windows),
                                      page_limit=self.settings.page_limit)
        return self._finish_rows(account_id, rows)

    @staticmethod
    def _finish_rows(account_id: str, parsed: list[InsightRow]) -> list[InsightRow]:
        rows: dict[tuple[str, str, date], InsightRow] = {}
        for row in parsed:
            if row.key in rows:
                log.warning("act_%s: ad %s on %s came twice while paging; keeping the last",
                            account_id, row.ad_id, row.date_start)
            rows[row.key] = row
        fetched_at = datetime.now(timezone.utc)
        return [_with_fetched_at(r, fetched_at) for r in sorted(rows.values(), key=lambda r: (r.date_start, r.ad_id))]

    def _daily_reader(self, account_id: str, since: date, until: date,
                      attribution: tuple[str, ...] = DEFAULT_ATTRIBUTION) -> "PageReader[InsightRow]":
        def parse(body: Any, page: int) -> list[InsightRow]:
            rows = parse_insights_page(body, account_id=account_id, since=since, until=until, page=page)
            return [dataclasses.replace(r, action_attribution_windows=attribution) for r in rows]
        days = (until - since).days + 1
        return PageReader(parse, key=lambda r: (r.ad_id, r.date_start), max_rows=days * self.settings.max_ads_per_day,
                          what=f"{since}..{until}")

    @staticmethod
    def _daily_params(since: date, until: date, fields: Sequence[str],
                      attribution: Sequence[str] = DEFAULT_ATTRIBUTION) -> dict[str, str]:
        return {
            "level": "ad",
            "time_increment": "1",
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}, separators=(",", ":")),
            "fields": ",".join(dict.fromkeys([*ID_FIELDS, *fields])),
            "filtering": delivery_filtering(),
            "action_attribution_windows": json.dumps(list(attribution), separators=(",", ":")),
        }

    # ------------------------------------------------------------------ cumulative reach

    async def fetch_reach_cum(self, account_id: str, origin: date, ends: Sequence[date], counter: CallCounter,
                              *, token: str | None = None) -> dict[tuple[str, date], int | None]:
        """Deduplicated reach of every ad over ``origin .. t`` for each ``t`` in ``ends``.

        FATIGUE_SPEC.md needs ``reach_cum(t)`` = reach over [first delivery day
        .. t]; reach before an ad's first delivery is 0, so one ``origin`` on or
        before every first delivery serves all ads. Reach cannot be summed
        across days (META_GRAPH_API.md §1), so each ``t`` is its own range:
        Graph ``time_ranges=[{"since":origin,"until":t}, ...]`` at ``level=ad``
        without ``time_increment``, ``reach_ranges_per_call`` ranges per query
        (one paged query, ``reach_page_limit`` rows per page; shrink and async
        fallback as for daily rows). Rows come back with ``date_start`` =
        ``origin`` and ``date_stop`` = ``t``.

        Returns ``{(ad_id, t): reach}`` for every ad Meta reports for a range
        (``None`` when Meta left ``reach`` out, e.g. for breakdowns older than
        13 months, §6); ads with no delivery in a range are absent. Raises as
        ``fetch_insights``.
        """
        wanted = sorted({t for t in ends if t >= origin})
        out: dict[tuple[str, date], int | None] = {}
        step = max(1, self.settings.reach_ranges_per_call)
        for i in range(0, len(wanted), step):
            chunk = wanted[i:i + step]
            params = {
                "level": "ad",
                "time_ranges": json.dumps([{"since": origin.isoformat(), "until": t.isoformat()} for t in chunk],
                                          separators=(",", ":")),
                "fields": "account_id,ad_id,reach",
                "filtering": delivery_filtering(),
            }
            chunk_set = frozenset(chunk)

            def parse(body: Any, page: int, chunk_set: frozenset[date] = chunk_set) -> list[RangeReach]:
                return parse_range_reach_page(body, account_id=account_id, origin=origin, ends=chunk_set, page=page)

            reader = PageReader(parse, key=lambda r: (r.ad_id, r.date_stop),
                                max_rows=len(chunk) * self.settings.max_ads_per_day,
                                what=f"reach {origin}..{chunk[0]}+{len(chunk)} ranges")
            for item in await self._run_query(account_id, params, counter, token, reader,
                                              page_limit=self.settings.reach_page_limit):
                out[(item.ad_id, item.date_stop)] = item.reach
        return out

    # ------------------------------------------------------------------ tokens (META_GRAPH_API.md §5)

    async def exchange_token(self, token: str, counter: CallCounter, *, account_id: str = "") -> ExchangedToken:
        """A long-lived token for ``token``: ``GET /{v}/oauth/access_token?grant_type=fb_exchange_token
        &client_id={app-id}&client_secret={app-secret}&fb_exchange_token={token}`` (META_GRAPH_API.md §5).

        An expired token cannot be exchanged (Meta answers 190). Needs
        ``app_id`` and ``app_secret`` (ValueError otherwise). Secrets travel in
        the query string as Meta documents; httpx's request log is redacted
        (``install_library_log_redaction``). The new token is registered for
        redaction before it is returned. Raises GraphError subclasses.
        """
        if not self.settings.app_id or not self.settings.app_secret:
            raise ValueError("exchanging a token needs META_APP_ID and META_APP_SECRET")
        url = httpx.URL(f"{self._base}/{self.settings.api_version}/oauth/access_token", params={
            "grant_type": "fb_exchange_token", "client_id": self.settings.app_id,
            "client_secret": self.settings.app_secret, "fb_exchange_token": token})
        body = await self._request(url, account_id, counter, token=None, authenticate=False)
        new = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(new, str) or not new or any(c.isspace() for c in new):
            raise GraphPageError("the token exchange answer has no access_token")
        register_secret(new)
        expires_in = body.get("expires_in")
        if not (isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0):
            expires_in = None
        return ExchangedToken(access_token=new, token_type=str(body.get("token_type") or "bearer"),
                              expires_in_s=expires_in)

    async def debug_token(self, token: str, counter: CallCounter, *, account_id: str = "") -> TokenDebugInfo:
        """What Meta knows about ``token``: ``GET /{v}/debug_token?input_token={token}`` authenticated with the
        app token ``{app-id}|{app-secret}`` (in the Authorization header, never the URL) (META_GRAPH_API.md §5).

        Needs ``app_id`` and ``app_secret`` (ValueError otherwise). ``expires_at``
        0 means the token does not expire. Raises GraphError subclasses.
        """
        if not self.settings.app_id or not self.settings.app_secret:
            raise ValueError("debug_token needs META_APP_ID and META_APP_SECRET")
        url = httpx.URL(f"{self._base}/{self.settings.api_version}/debug_token", params={"input_token": token})
        app_token = f"{self.settings.app_id}|{self.settings.app_secret}"
        register_secret(app_token)
        body = await self._request(url, account_id, counter, token=app_token)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("is_valid"), bool):
            raise GraphPageError("the debug_token answer has no data.is_valid")
        expires = data.get("expires_at")
        if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
            raise GraphPageError("the debug_token answer has no integer data.expires_at")
        return TokenDebugInfo(
            is_valid=data["is_valid"],
            expires_at=None if expires == 0 else datetime.fromtimestamp(expires, tz=timezone.utc),
            app_id=str(data.get("app_id") or ""), type=str(data.get("type") or ""),
            user_id=str(data.get("user_id") or ""),
            scopes=tuple(str(s) for s in data.get("scopes") or () if isinstance(s, str)))

    # ------------------------------------------------------------------ queries and paging

    def _insights_url(self, account_id: str, params: Mapping[str, str]) -> httpx.URL:
        return httpx.URL(f"{self._base}/{self.settings.api_version}/act_{account_id}/insights", params=dict(params))

    async def _run_query(self, account_id: str, params: Mapping[str, str], counter: CallCounter, token: str | None,
                         reader: "PageReader[T]", *, page_limit: int, fallback: bool = True) -> list[T]:
        """One insights query, paged; below ``min_page_limit`` on shrink errors, as an async report
        (when ``fallback`` and ``async_fallback``; otherwise the shrink error is raised)."""
        url = self._insights_url(account_id, {**params, "limit": str(page_limit)})
        try:
            return await self._collect_pages(url, account_id, counter, token, reader)
        except GraphApiError as exc:
            if exc.error_class is not ErrorClass.SHRINK or not fallback or not self.settings.async_fallback:
                raise
            log.warning("act_%s: Meta cannot answer a query synchronously even at limit=%d (%s); "
                        "running it as an async report", account_id, self.settings.min_page_limit, exc.code_text)
            return await self._run_report(account_id, params, counter, token, reader, page_limit=page_limit)

    async def _run_report(self, account_id: str, params: Mapping[str, str], counter: CallCounter,
                          token: str | None, reader: "PageReader[T]", *, page_limit: int) -> list[T]:
        """POST the query as an async report run, poll it, page its rows (META_GRAPH_API.md §2)."""
        version = self.settings.api_version
        body = await self._request(self._insights_url(account_id, params), account_id, counter, method="POST",
                                   token=token)
        run_id = body.get("report_run_id") if isinstance(body, dict) else None
        if not isinstance(run_id, str) or not run_id.isdigit():
            raise GraphPageError(f"async report for act_{account_id}: no numeric report_run_id in the answer")
        delay = self.settings.async_poll_initial_s
        deadline = time.monotonic() + self.settings.async_timeout_s
        status_url = httpx.URL(f"{self._base}/{version}/{run_id}")
        while True:
            await self._sleep(delay)
            status = await self._request(status_url, account_id, counter, token=token)
            state = status.get("async_status") if isinstance(status, dict) else None
            if state == "Job Completed":
                break
            if state in ("Job Failed", "Job Skipped"):
                raise GraphAsyncJobError(
                    f"async report {run_id} ended '{state}' (code {status.get('error_code')}/"
                    f"{status.get('error_subcode')}: {status.get('error_message') or 'no message'})")
            if time.monotonic() > deadline:
                raise GraphAsyncJobError(
                    f"async report {run_id} not complete after {self.settings.async_timeout_s:g} s "
                    f"({status.get('async_percent_completion') if isinstance(status, dict) else '?'} %)")
            delay = min(delay * 2, self.settings.async_poll_max_s)
        pages = httpx.URL(f"{self._base}/{version}/{run_id}/insights", params={"limit": str(page_limit)})
        return await self._collect_pages(pages, account_id, counter, token, reader)

    async def _collect_pages(self, url: httpx.URL, account_id: str, counter: CallCounter, token: str | None,
                             reader: "PageReader[T]") -> list[T]:
        """Follow ``paging.next`` from ``url``; parse every page; shrink ``limit`` when Meta asks.

        Paging ends when ``paging.next`` is absent, on a page with no rows
        (Meta may send an empty page with a ``next`` link, META_GRAPH_API.md §1),
        or on a page that brings no new key (``reader.key``: an answer that
        keeps repeating rows under new cursors). A repeated cursor, a foreign
        ``next`` host, or more pages than ``reader.page_cap(limit)`` raise
        GraphPagingError (the cap: ``GraphPagingCapError``, naming the account);
        the pages sent until then are all that was spent of the budget.
        """
        limit = int(url.params.get("limit", self.settings.page_limit))
        items: list[T] = []
        keys: set[Any] = set()
        seen: set[str] = set()
        page = 0
        while True:
            page += 1
            cap = reader.page_cap(limit, self.settings.max_pages)
            if page > cap:
                raise GraphPagingCapError(account_id, cap, limit, reader.what)
            try:
                body = await self._request(url, account_id, counter, token=token)
            except GraphApiError as exc:
                if exc.error_class is not ErrorClass.SHRINK or limit // 2 < self.settings.min_page_limit:
                    raise
                limit //= 2
                log.warning("act_%s: Meta asks for less data (%s); retrying page %d with limit=%d",
                            account_id, exc.code_text, page, limit)
                url = url.copy_set_param("limit", str(limit))
                page -= 1
                continue
            try:
                parsed = reader.parse(body, page)
            except PageFormatError as exc:
                raise GraphPageError(str(exc)) from None
            if not parsed:
                break  # an empty page ends the answer, whatever paging.next says
            new = {reader.key(item) for item in parsed} - keys
            if not new:
                log.warning("act_%s: page %d of %s repeats rows already received under a new cursor; "
                            "treating it as the end of the answer", account_id, page, reader.what)
                break
            keys |= new
            items += parsed
            next_link = (body.get("paging") or {}).get("next")
            if not next_link:
                break
            url = self._next_url(next_link, limit)
            marker = url.params.get("after") or str(url)
            if marker in seen:
                raise GraphPagingError(f"paging.next repeated cursor {marker[:40]!r} after page {page}", loop=True)
            seen.add(marker)
        return items

    # ------------------------------------------------------------------ internals

    def _proof(self, token: str) -> dict[str, str]:
        """``appsecret_proof`` = hex HMAC-SHA256(app_secret, token) when an app secret is set (§5)."""
        secret = self.settings.app_secret
        if not secret:
            return {}
        return {"appsecret_proof": hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()}

    def _next_url(self, link: object, limit: int) -> httpx.URL:
        """The ``paging.next`` URL to request: same origin only, secrets stripped, our limit.

        ``appsecret_proof`` is added again when the request is sent.
        """
        if not isinstance(link, str):
            raise GraphPageError(f"paging.next is {type(link).__name__}, not a URL")
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL:
            raise GraphPageError("paging.next is not a valid URL") from None
        if (url.scheme, url.host, url.port) != (self._origin.scheme, self._origin.host, self._origin.port):
            raise GraphPagingError(f"paging.next points at another host ({url.scheme}://{url.host}); "
                                   "refusing to send the token there", loop=True)
        for name in SECRET_QUERY_PARAMS:
            url = url.copy_remove_param(name)
        return url.copy_set_param("limit", str(limit))

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, GraphError):
            return False
        if exc.error_class is ErrorClass.RETRY:
            return True
        if exc.error_class is ErrorClass.THROTTLED and isinstance(exc, GraphApiError):
            return exc.retry_after_s is None or exc.retry_after_s <= self.settings.throttle_max_wait_s
        return False

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = _jitter_wait(self.settings, state.attempt_number)
        if isinstance(exc, GraphApiError) and exc.error_class is ErrorClass.THROTTLED:
            delay = max(delay, exc.retry_after_s or self.settings.throttle_min_wait_s)
        return delay

    async def _request(self, url: httpx.URL, account_id: str, counter: CallCounter, method: str = "GET", *,
                       token: str | None = None, authenticate: bool = True) -> Any:
        """One logical request with retries; returns the decoded JSON body. Raises GraphError subclasses.

        ``token`` (default ``settings.access_token``) goes in the Authorization
        header with its ``appsecret_proof``; ``authenticate=False`` sends neither.
        """
        bearer = (token or self.settings.access_token) if authenticate else None
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda s: log.warning(
                "act_%s: Meta call failed (%s); retry %d/%d in %.2f s", account_id,
                redact(str(s.outcome.exception()), self.settings.secrets), s.attempt_number, self.settings.retries,
                s.next_action.sleep if s.next_action else 0.0),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await self._send_once(url, account_id, counter, method, bearer)
        except GraphError as exc:
            exc.attempts = attempts
            if exc.error_class is ErrorClass.THROTTLED and exc.retry_after_s is None:
                exc.retry_after_s = self.settings.throttle_default_retry_s
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(self, url: httpx.URL, account_id: str, counter: CallCounter, method: str,
                         bearer: str | None) -> Any:
        if self.pacer is not None:
            await self.pacer.before_call(account_id)
        headers: dict[str, str] = {}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
            for name, value in self._proof(bearer).items():
                url = url.copy_set_param(name, value)
        counter.calls += 1
        try:
            response = await self._http.request(method, url, headers=headers)
        except httpx.TimeoutException as exc:
            metrics.request_failed(ErrorClass.RETRY.value)
            raise GraphTransportError(f"timeout talking to Meta ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            metrics.request_failed(ErrorClass.RETRY.value)
            raise GraphTransportError(
                f"no answer from Meta ({type(exc).__name__}: {redact(str(exc), self.settings.secrets)})") from None
        regain_s = self.pacer.observe(account_id, response.headers) if self.pacer is not None else None
        warning = response.headers.get("X-Ad-Api-Version-Warning")
        if warning and warning not in self._version_warnings:
            self._version_warnings.add(warning)
            log.warning("Meta auto-upgraded the Graph API version %s: %s (set --api-version to a current one)",
                        self.settings.api_version, warning)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.status_code != 200 or (isinstance(body, dict) and "error" in body):
            error = GraphApiError.from_response(response.status_code, body, retry_after_s=regain_s)
            # Meta does not know the object (code 100, subcode 33: an unknown ad account id) is the caller's
            # mistake, not a failure of Meta: its own class, left out of the Meta failure-ratio alert
            metrics.request_failed("not_found" if (error.code, error.subcode) == (100, 33) else error.error_class.value)
            raise error
        if body is None:
            metrics.request_failed("page")
            raise GraphPageError(f"Meta answered HTTP 200 with a body that is not JSON for act_{account_id}")
        metrics.requests.add(1, metrics.OK)
        return body


@dataclass(frozen=True)
class PageReader(Generic[T]):
    """How to read the pages of one query: ``parse(body, page)`` -> items (PageFormatError), ``key(item)`` the
    item's identity (``(ad_id, date)``), ``max_rows`` the most rows the query can rightly have (days x
    ``max_ads_per_day``), ``what`` names the query in messages."""

    parse: Callable[[Any, int], list[T]]
    key: Callable[[T], Any]
    max_rows: int
    what: str = ""

    def page_cap(self, limit: int, hard_cap: int) -> int:
        """Pages a query may take at ``limit`` rows per page: every row it can rightly have, plus one page
        (an empty last page), never more than ``hard_cap`` (``max_pages``)."""
        return max(1, min(hard_cap, -(-self.max_rows // max(1, limit)) + 1))


def split_range(since: date, until: date, max_days: int) -> list[tuple[date, date]]:
    """``since..until`` as consecutive inclusive chunks of at most ``max_days`` days (one chunk if <= 0)."""
    if max_days <= 0:
        return [(since, until)]
    out = []
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=max_days - 1))
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def _with_fetched_at(row: InsightRow, fetched_at: datetime) -> InsightRow:
    return dataclasses.replace(row, fetched_at=fetched_at)

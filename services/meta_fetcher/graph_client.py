"""HTTP client for the Graph API Ads Insights edge (httpx, one pooled ``AsyncClient``).

What it does (sources: META_GRAPH_API.md §1 paging, §3 errors and headers, §5 tokens, §6 versions):

- ``GET {graph_url}/{api_version}/act_{id}/insights`` with ``level=ad``,
  ``time_increment=1``, ``time_range`` (JSON), ``fields``, ``limit``; follows
  ``paging.next`` until it is absent, with a hard page cap and loop detection
  (the same ``after`` cursor twice). Every page is parsed at once
  (``graph_parsing``); one bad page fails the whole fetch.
- ``GET {graph_url}/{api_version}/act_{id}?fields=account_id,name,currency,timezone_name``
  for the account's time zone and currency (cached per process).
- The access token goes in the ``Authorization: Bearer`` header, never in a
  URL, so httpx's request log (which prints URLs at INFO) cannot leak it;
  ``access_token``/``appsecret_proof`` are also stripped from ``paging.next``
  links before they are requested. ``appsecret_proof`` (HMAC-SHA256 of the
  token with the app secret, §5) is added when an app secret is configured.
- Retries with tenacity: exponential backoff with jitter, ``retries`` retries,
  on the ``retry`` and (short) ``throttled`` classes of ``graph_errors``;
  ``shrink`` errors halve ``limit`` and ask again, and below ``min_page_limit``
  the query runs as an async report run (§2: POST, poll, page); everything
  else is raised.
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
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Awaitable, Callable, Protocol, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from services.common.insight_row import InsightRow
from services.meta_fetcher.graph_errors import (
    ErrorClass,
    GraphApiError,
    GraphAsyncJobError,
    GraphError,
    GraphPageError,
    GraphPagingError,
    GraphTransportError,
    redact,
)
from services.meta_fetcher.graph_parsing import ID_FIELDS, PageFormatError, parse_insights_page
from services.meta_fetcher.settings import FetcherSettings

log = logging.getLogger(__name__)

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


class GraphClient:
    """One pooled HTTP client to Meta (or the sandbox). Use as ``async with`` or call ``aclose``."""

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

    # ------------------------------------------------------------------ public calls

    def cached_account(self, account_id: str) -> AccountInfo | None:
        """The cached account info, if fresh (no call)."""
        hit = self._accounts.get(account_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    async def account_info(self, account_id: str, counter: CallCounter) -> AccountInfo:
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
            task = asyncio.ensure_future(self._load_account(account_id, counter))
            self._account_lookups[account_id] = task
            task.add_done_callback(lambda t: self._lookup_done(account_id, t))
        return await asyncio.shield(task)

    def _lookup_done(self, account_id: str, task: asyncio.Future[AccountInfo]) -> None:
        self._account_lookups.pop(account_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here so a lookup whose waiters all left never warns

    async def _load_account(self, account_id: str, counter: CallCounter) -> AccountInfo:
        url = httpx.URL(f"{self._base}/{self.settings.api_version}/act_{account_id}",
                        params={"fields": "account_id,name,currency,timezone_name", **self._proof()})
        body = await self._request(url, account_id, counter)
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

    async def fetch_insights(self, account_id: str, since: date, until: date, fields: Sequence[str],
                             counter: CallCounter) -> list[InsightRow]:
        """Every daily ad row of ``act_{account_id}`` in ``since..until`` (inclusive).

        ``fields``: Graph field names (the id fields are always added). Returns
        rows sorted by (date_start, ad_id), ``fetched_at`` set to when the last
        page arrived; the same (ad, day) twice keeps the last. A sync GET with
        paging; when Meta still asks for less data at ``min_page_limit`` and
        ``async_fallback`` is on, the same query runs as an async report
        (META_GRAPH_API.md §2: "go async on timeouts or 1487534"). Raises
        GraphPageError (bad page), GraphPagingError (loop, cap), GraphApiError,
        GraphTransportError, GraphAsyncJobError, CallRefused.
        """
        url = httpx.URL(
            f"{self._base}/{self.settings.api_version}/act_{account_id}/insights",
            params={**self._query_params(since, until, fields), "limit": str(self.settings.page_limit),
                    **self._proof()},
        )
        try:
            return await self._collect_pages(url, account_id, since, until, counter)
        except GraphApiError as exc:
            if exc.error_class is not ErrorClass.SHRINK or not self.settings.async_fallback:
                raise
            log.warning("act_%s: Meta cannot answer %s..%s synchronously even at limit=%d (%s); "
                        "running it as an async report", account_id, since, until, self.settings.min_page_limit,
                        exc.code_text)
            return await self.fetch_insights_async(account_id, since, until, fields, counter)

    async def fetch_insights_async(self, account_id: str, since: date, until: date, fields: Sequence[str],
                                   counter: CallCounter) -> list[InsightRow]:
        """The same rows as ``fetch_insights``, through an async report run (META_GRAPH_API.md §2).

        ``POST act_{id}/insights`` -> ``report_run_id``; ``GET /{run}`` is polled
        (``async_poll_initial_s`` doubling up to ``async_poll_max_s``) until
        ``async_status`` is "Job Completed"; then ``GET /{run}/insights`` is paged.
        Raises GraphAsyncJobError when the run fails, is skipped, or is not done
        within ``async_timeout_s``; otherwise as ``fetch_insights``.
        """
        version = self.settings.api_version
        create = httpx.URL(f"{self._base}/{version}/act_{account_id}/insights",
                           params={**self._query_params(since, until, fields), **self._proof()})
        body = await self._request(create, account_id, counter, method="POST")
        run_id = body.get("report_run_id") if isinstance(body, dict) else None
        if not isinstance(run_id, str) or not run_id.isdigit():
            raise GraphPageError(f"async report for act_{account_id}: no numeric report_run_id in the answer")
        delay = self.settings.async_poll_initial_s
        deadline = time.monotonic() + self.settings.async_timeout_s
        status_url = httpx.URL(f"{self._base}/{version}/{run_id}", params=self._proof())
        while True:
            await self._sleep(delay)
            status = await self._request(status_url, account_id, counter)
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
        pages = httpx.URL(f"{self._base}/{version}/{run_id}/insights",
                          params={"limit": str(self.settings.page_limit), **self._proof()})
        return await self._collect_pages(pages, account_id, since, until, counter)

    async def _collect_pages(self, url: httpx.URL, account_id: str, since: date, until: date,
                             counter: CallCounter) -> list[InsightRow]:
        """Follow ``paging.next`` from ``url``; parse every page; shrink ``limit`` when Meta asks."""
        limit = int(url.params.get("limit", self.settings.page_limit))
        rows: dict[tuple[str, str, date], InsightRow] = {}
        seen: set[str] = set()
        page = 0
        while True:
            page += 1
            if page > self.settings.max_pages:
                raise GraphPagingError(f"more than {self.settings.max_pages} pages of {limit} rows", loop=False)
            try:
                body = await self._request(url, account_id, counter)
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
                parsed = parse_insights_page(body, account_id=account_id, since=since, until=until, page=page)
            except PageFormatError as exc:
                raise GraphPageError(str(exc)) from None
            for row in parsed:
                if row.key in rows:
                    log.warning("act_%s: ad %s on %s came twice while paging; keeping the last",
                                account_id, row.ad_id, row.date_start)
                rows[row.key] = row
            next_link = (body.get("paging") or {}).get("next")
            if not next_link:
                break
            url = self._next_url(next_link, limit)
            marker = url.params.get("after") or str(url)
            if marker in seen:
                raise GraphPagingError(f"paging.next repeated cursor {marker[:40]!r} after page {page}", loop=True)
            seen.add(marker)
        fetched_at = datetime.now(timezone.utc)
        return [_with_fetched_at(r, fetched_at) for r in sorted(rows.values(), key=lambda r: (r.date_start, r.ad_id))]

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _query_params(since: date, until: date, fields: Sequence[str]) -> dict[str, str]:
        return {
            "level": "ad",
            "time_increment": "1",
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}, separators=(",", ":")),
            "fields": ",".join(dict.fromkeys([*ID_FIELDS, *fields])),
        }

    def _proof(self) -> dict[str, str]:
        secret = self.settings.app_secret
        if not secret:
            return {}
        proof = hmac.new(secret.encode(), self.settings.access_token.encode(), hashlib.sha256).hexdigest()
        return {"appsecret_proof": proof}

    def _next_url(self, link: object, limit: int) -> httpx.URL:
        """The ``paging.next`` URL to request: same origin only, secrets stripped, our limit and proof."""
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
        url = url.copy_set_param("limit", str(limit))
        for name, value in self._proof().items():
            url = url.copy_set_param(name, value)
        return url

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.access_token}"}

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

    async def _request(self, url: httpx.URL, account_id: str, counter: CallCounter, method: str = "GET") -> Any:
        """One logical request with retries; returns the decoded JSON body. Raises GraphError subclasses."""
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
                    return await self._send_once(url, account_id, counter, method)
        except GraphError as exc:
            exc.attempts = attempts
            if exc.error_class is ErrorClass.THROTTLED and exc.retry_after_s is None:
                exc.retry_after_s = self.settings.throttle_default_retry_s
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(self, url: httpx.URL, account_id: str, counter: CallCounter, method: str) -> Any:
        if self.pacer is not None:
            await self.pacer.before_call(account_id)
        counter.calls += 1
        try:
            response = await self._http.request(method, url, headers=self._auth_headers())
        except httpx.TimeoutException as exc:
            raise GraphTransportError(f"timeout talking to Meta ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
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
            raise GraphApiError.from_response(response.status_code, body, retry_after_s=regain_s)
        if body is None:
            raise GraphPageError(f"Meta answered HTTP 200 with a body that is not JSON for act_{account_id}")
        return body


def _with_fetched_at(row: InsightRow, fetched_at: datetime) -> InsightRow:
    return dataclasses.replace(row, fetched_at=fetched_at)

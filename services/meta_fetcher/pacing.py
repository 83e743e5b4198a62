"""Pacing calls to Meta: usage headers (pause above 85 %) and a shared app rate budget.

Usage headers (META_GRAPH_API.md §3; each value a JSON string, percentages,
``estimated_time_to_regain_access`` in minutes) are parsed on every response:

- ``X-App-Usage`` ``{"call_count","total_time","total_cputime"}`` -> app pct (max of the three);
- ``X-Business-Use-Case-Usage`` ``{"<id>":[{"type","call_count","total_cputime","total_time",
  "estimated_time_to_regain_access"}]}`` -> account pct (max over entries) and regain time;
- ``X-Ad-Account-Usage`` ``{"acc_id_util_pct","reset_time_duration"}`` -> account pct
  (``reset_time_duration`` seconds is used as the regain time when the pct is at 100);
- ``x-fb-ads-insights-throttle`` ``{"app_id_util_pct","acc_id_util_pct"}`` -> app and account pct.

Pause rule (after Airbyte's ``api.py``, §3): when the last reading for the app or
the account is at or above ``usage_pause_pct`` (85), new calls wait until
``max(usage_pause_s, regain)`` has passed since that reading. A wait up to
``usage_max_inline_wait_s`` is slept inside the call; a longer one refuses the
call at once (``CallRefused`` -> RESOURCE_EXHAUSTED with the time left).
Readings are per process.

Rate budget (DESIGN.md §1: ~200 app calls/hour): the app-wide window of
``services/common/meta_budget.py`` (``budget_calls`` HTTP requests per
``budget_window_s`` seconds, shared by all fetcher replicas through Redis when
``REDIS_URL`` is set). Each HTTP request (page, retry, account lookup) takes one
unit before it is sent; with none left the call is refused with the time until
a unit returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from services.common.meta_budget import CallWindow, open_meta_budget
from services.meta_fetcher.graph_errors import CallRefused
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher import metrics

log = logging.getLogger(__name__)

HARD_PCT = 100.0


# ---------------------------------------------------------------------------- usage headers


@dataclass(frozen=True)
class UsageReading:
    """What one response's headers say. pct values in percent (None = header absent); regain in seconds."""

    app_pct: float | None = None
    account_pct: float | None = None
    regain_s: float = 0.0


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        log.debug("ignoring malformed %s header", name)
        return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _max(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def parse_usage_headers(headers: Mapping[str, str]) -> UsageReading:
    """Read the four usage headers (shapes in the module docstring); malformed ones are ignored."""
    app_pct = account_pct = None
    regain_s = 0.0
    app = _json_header(headers, "X-App-Usage")
    if isinstance(app, dict):
        app_pct = _max(*(_num(app.get(k)) for k in ("call_count", "total_time", "total_cputime")))
    buc = _json_header(headers, "X-Business-Use-Case-Usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                account_pct = _max(account_pct, *(_num(entry.get(k)) for k in
                                                  ("call_count", "total_time", "total_cputime")))
                regain = _num(entry.get("estimated_time_to_regain_access"))
                if regain:
                    regain_s = max(regain_s, regain * 60)
    ad_account = _json_header(headers, "X-Ad-Account-Usage")
    if isinstance(ad_account, dict):
        pct = _num(ad_account.get("acc_id_util_pct"))
        account_pct = _max(account_pct, pct)
        reset = _num(ad_account.get("reset_time_duration"))
        if pct is not None and pct >= HARD_PCT and reset:
            regain_s = max(regain_s, reset)
    throttle = _json_header(headers, "x-fb-ads-insights-throttle")
    if isinstance(throttle, dict):
        app_pct = _max(app_pct, _num(throttle.get("app_id_util_pct")))
        account_pct = _max(account_pct, _num(throttle.get("acc_id_util_pct")))
    return UsageReading(app_pct=app_pct, account_pct=account_pct, regain_s=regain_s)


class UsageTracker:
    """Latest usage readings for the app and per account; decides pauses (module docstring)."""

    def __init__(self, pause_pct: float, pause_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pause_pct, self.pause_s, self.clock = pause_pct, pause_s, clock
        self._app: tuple[float, float, float] | None = None  # (pct, regain_s, observed_at)
        self._accounts: dict[str, tuple[float, float, float]] = {}

    def observe(self, account_id: str, reading: UsageReading) -> None:
        """Keep ``reading`` as the latest for the app and for the account."""
        now = self.clock()
        if reading.app_pct is not None:
            self._app = (reading.app_pct, 0.0, now)
        if reading.account_pct is not None or reading.regain_s:
            self._accounts[account_id] = (reading.account_pct or 0.0, reading.regain_s, now)

    def pause_remaining(self, account_id: str) -> tuple[float, str]:
        """(seconds to wait before the next call, reason); (0, "") when calls may go ahead."""
        now = self.clock()
        worst, reason = 0.0, ""
        for scope, entry in (("app", self._app), (f"act_{account_id}", self._accounts.get(account_id))):
            if entry is None:
                continue
            pct, regain_s, at = entry
            if pct < self.pause_pct and not regain_s:
                continue
            left = max(self.pause_s if pct >= self.pause_pct else 0.0, regain_s) - (now - at)
            if left > worst:
                worst = left
                if pct >= self.pause_pct:
                    reason = (f"Meta usage for {scope} is at {pct:.0f} % "
                              f"(pausing new calls above {self.pause_pct:.0f} %)")
                else:
                    reason = f"Meta asked to wait {regain_s / 60:.0f} min before calling for {scope} again"
        return worst, reason


# ---------------------------------------------------------------------------- pacer


class Pacer:
    """``GraphClient`` hook: before each HTTP request check pauses and take a budget unit; read every response."""

    def __init__(self, settings: FetcherSettings, budget: CallWindow, usage: UsageTracker | None = None,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.settings = settings
        self.budget = budget
        self.usage = usage or UsageTracker(settings.usage_pause_pct, settings.usage_pause_s)
        self._sleep = sleep

    async def before_call(self, account_id: str) -> None:
        """Wait briefly or raise CallRefused (usage pause, budget spent). No unit is taken when paused."""
        pause, reason = self.usage.pause_remaining(account_id)
        if pause > 0:
            if pause > self.settings.usage_max_inline_wait_s:
                metrics.budget_acquisitions.add(1, metrics.REFUSED)
                raise CallRefused(reason, pause)
            log.info("%s; waiting %.1f s", reason, pause)
            await self._sleep(pause)
        granted, retry_after = await self.budget.try_acquire()
        metrics.budget_acquisitions.add(1, metrics.GRANTED if granted else metrics.REFUSED)
        if not granted:
            raise CallRefused(
                f"the app's Meta call budget ({self.settings.budget_calls} calls per "
                f"{self.settings.budget_window_s / 60:g} min) is spent", retry_after)

    def observe(self, account_id: str, headers: Mapping[str, str]) -> float | None:
        """Record usage headers; return the account's regain time in seconds when Meta gave one."""
        reading = parse_usage_headers(headers)
        self.usage.observe(account_id, reading)
        pct = max((p for p in (reading.app_pct, reading.account_pct) if p is not None), default=None)
        if pct is not None:
            metrics.usage_seen(account_id, pct / 100.0)
        return reading.regain_s or None

    async def aclose(self) -> None:
        await self.budget.aclose()


def build_pacer(settings: FetcherSettings) -> Pacer:
    """Pacer on the app-wide Meta budget (shared through Redis when ``settings.redis_url`` is set)."""
    return Pacer(settings, open_meta_budget(settings))

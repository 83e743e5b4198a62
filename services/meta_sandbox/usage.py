"""Rate-limit usage the sandbox reports and enforces, moving with load.

Headers and their shapes follow META_GRAPH_API.md §3 (every value a JSON
string; percentages; ``estimated_time_to_regain_access`` in **minutes**):

- ``X-App-Usage``: ``{"call_count","total_time","total_cputime"}`` app-wide pct;
- ``X-Business-Use-Case-Usage``: ``{"<id>":[{"type":"ads_insights","call_count",
  "total_cputime","total_time","estimated_time_to_regain_access"}]}`` (keyed
  here by the ad account id, standing in for the business object id);
- ``X-Ad-Account-Usage``: ``{"acc_id_util_pct","reset_time_duration","ads_api_access_tier"}``;
- ``x-fb-ads-insights-throttle``: ``{"app_id_util_pct","acc_id_util_pct","ads_api_access_tier"}``
  (insights responses only).

Model: every answered Graph call is counted in a sliding window (default one
hour). Account capacity per window defaults to the dev-tier ``ads_insights``
BUC formula ``600 + 400 × active_ads`` [3p, unverified; §3]; app capacity
defaults to 10,000 calls. ``pct = 100 × calls_in_window / capacity``. At
100 % and with enforcement on, calls are refused with Meta's throttling errors
(``80000/2446079`` for the account, ``4/1504039`` for the app) and HTTP 400.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from typing import Callable

ACCESS_TIER = "development_access"


class UsageModel:
    """Sliding-window call counts per ad account and for the whole app."""

    def __init__(
        self,
        *,
        window_s: float = 3600.0,
        app_capacity: int = 10_000,
        account_capacity: int | None = None,
        enforce: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.app_capacity = app_capacity
        self.account_capacity = account_capacity
        self.enforce = enforce
        self.clock = clock
        self._app: deque[float] = deque()
        self._accounts: dict[str, deque[float]] = {}

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def capacity(self, active_ads: int) -> int:
        """Calls per window allowed for an account with ``active_ads`` ads."""
        if self.account_capacity is not None:
            return max(1, self.account_capacity)
        return 600 + 400 * active_ads

    def record(self, account_id: str | None) -> None:
        """Count one answered call (app-wide, and for the account when given)."""
        now = self.clock()
        self._app.append(now)
        if account_id is not None:
            self._accounts.setdefault(account_id, deque()).append(now)

    def app_pct(self) -> float:
        """App-wide usage in percent of ``app_capacity`` over the window (may exceed 100)."""
        now = self.clock()
        self._trim(self._app, now)
        return 100.0 * len(self._app) / max(1, self.app_capacity)

    def account_pct(self, account_id: str, active_ads: int) -> float:
        """The account's usage in percent of its capacity over the window (may exceed 100)."""
        now = self.clock()
        q = self._accounts.setdefault(account_id, deque())
        self._trim(q, now)
        return 100.0 * len(q) / self.capacity(active_ads)

    def _regain_s(self, q: deque[float], capacity: int) -> float:
        """Seconds until the window holds fewer than ``capacity`` calls."""
        now = self.clock()
        self._trim(q, now)
        excess = len(q) - capacity + 1
        if excess <= 0:
            return 0.0
        return max(0.0, q[excess - 1] + self.window_s - now)

    def regain_minutes(self, account_id: str, active_ads: int) -> int:
        """Meta's ``estimated_time_to_regain_access`` (minutes, rounded up) for the account."""
        q = self._accounts.setdefault(account_id, deque())
        return math.ceil(self._regain_s(q, self.capacity(active_ads)) / 60)

    def app_regain_minutes(self) -> int:
        """Minutes (rounded up) until the app is below its capacity again."""
        return math.ceil(self._regain_s(self._app, self.app_capacity) / 60)

    def refusal(self, account_id: str | None, active_ads: int) -> str | None:
        """``"account"`` or ``"app"`` when enforcement refuses the next call, else None."""
        if not self.enforce:
            return None
        if self.app_pct() >= 100:
            return "app"
        if account_id is not None and self.account_pct(account_id, active_ads) >= 100:
            return "account"
        return None

    def headers(
        self,
        account_id: str | None,
        active_ads: int,
        *,
        insights: bool,
        regain_minutes: int | None = None,
    ) -> dict[str, str]:
        """Usage headers for one response (see module docstring for shapes)."""
        app = self.app_pct()
        app_int = min(100, round(app))
        out = {"X-App-Usage": json.dumps({"call_count": app_int, "total_time": app_int, "total_cputime": app_int})}
        if account_id is None:
            return out
        acc = self.account_pct(account_id, active_ads)
        acc_int = min(100, round(acc))
        regain = self.regain_minutes(account_id, active_ads) if regain_minutes is None else regain_minutes
        out["X-Business-Use-Case-Usage"] = json.dumps(
            {
                account_id: [
                    {
                        "type": "ads_insights",
                        "call_count": acc_int,
                        "total_cputime": acc_int,
                        "total_time": acc_int,
                        "estimated_time_to_regain_access": regain,
                    }
                ]
            }
        )
        out["X-Ad-Account-Usage"] = json.dumps(
            {
                "acc_id_util_pct": round(min(100.0, acc), 2),
                "reset_time_duration": int(regain * 60),
                "ads_api_access_tier": ACCESS_TIER,
            }
        )
        if insights:
            out["x-fb-ads-insights-throttle"] = json.dumps(
                {"app_id_util_pct": round(min(100.0, app), 2), "acc_id_util_pct": round(min(100.0, acc), 2),
                 "ads_api_access_tier": ACCESS_TIER}
            )
        return out

    def reset(self) -> None:
        """Forget every counted call."""
        self._app.clear()
        self._accounts.clear()

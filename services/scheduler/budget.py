"""How much of Meta's app budget the scheduler may spend (DESIGN.md §1: ~200 calls/hour).

A *call* is one HTTP request to Meta - the unit meta_fetcher's rate budget
counts. Both windows come from the one Meta budget module
(``services/common/meta_budget.py``), which alone knows where they live. Two
sources (see ``settings.py`` for the reasoning):

- ``RedisBudget`` (``REDIS_URL`` set): how much of the fetchers' shared window
  is used (``open_meta_budget(settings).used()``) and the scheduler's own
  spending in a shared window of its own at ``<lease_key>:spent``, so a new
  leader knows what the old one spent.
- ``LocalBudget`` (``REDIS_URL`` unset): the app's usage is not visible; the
  scheduler counts its own calls against its configured share in process.

``allowance`` turns a snapshot into per-tier limits for ``planning.plan_cycle``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from services.common.meta_budget import CallWindow, LocalCallWindow, RedisCallWindow, open_meta_budget
from services.scheduler.planning import Allowance
from services.scheduler.settings import SchedulerSettings

SOURCE_REDIS = "redis-shared"
SOURCE_LOCAL = "configured-share"


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """The budget at one moment. Calls per ``window_s`` seconds; ``app_used`` None = not visible."""

    source: str
    app_limit: int
    window_s: float
    app_used: int | None
    scheduler_used: int
    share: int
    reserve: int

    @property
    def app_left(self) -> int | None:
        return None if self.app_used is None else max(0, self.app_limit - self.app_used)

    @property
    def ondemand_used(self) -> int | None:
        """Calls by everyone but the scheduler in the window (on-demand reads), when visible."""
        return None if self.app_used is None else max(0, self.app_used - self.scheduler_used)

    @property
    def scheduler_left(self) -> int:
        """What the scheduler may still spend now: what is left of its share, and never the app's last
        ``reserve`` calls of the window - they stay free for on-demand reads (people waiting for an answer)."""
        left = max(0, self.share - self.scheduler_used)
        if self.app_used is not None:
            left = min(left, max(0, self.app_limit - self.app_used - self.reserve))
        return left


def allowance(snapshot: BudgetSnapshot, pace_calls: int, burst_cycles: float, interval_s: float) -> Allowance:
    """Per-tier limits of one cycle: live-page work may use all that is left; recently read work
    ``burst_cycles`` × the pace; the rest one pace (share × interval / window); see ``plan_cycle`` for
    the part set aside for live pages. Raises ValueError on a negative pace, a burst below 1 or a
    non-positive interval.
    """
    if pace_calls < 0 or burst_cycles < 1 or interval_s <= 0:
        raise ValueError("pace_calls must be >= 0, burst_cycles >= 1 and interval_s > 0")
    hard = snapshot.scheduler_left
    return Allowance(hard=hard, burst=min(hard, math.ceil(pace_calls * burst_cycles)), paced=min(hard, pace_calls),
                     cycles_per_window=max(1.0, snapshot.window_s / interval_s))


class BudgetSource(Protocol):
    async def snapshot(self) -> BudgetSnapshot: ...
    async def record(self, calls: int) -> None:
        """The scheduler spent ``calls`` Meta calls just now."""


class SchedulerBudget:
    """The scheduler's view of the budget: the app-wide window (None: not visible) and its own spending."""

    def __init__(self, settings: SchedulerSettings, own: CallWindow, app: CallWindow | None = None):
        self.settings = settings
        self.own = own
        self.app = app

    async def snapshot(self) -> BudgetSnapshot:
        s = self.settings
        app_used = await self.app.used() if self.app is not None else None
        return BudgetSnapshot(SOURCE_REDIS if self.app is not None else SOURCE_LOCAL, s.budget_calls,
                              s.budget_window_s, app_used, await self.own.used(), s.share_calls, s.reserve)

    async def record(self, calls: int) -> None:
        await self.own.record(calls)


class LocalBudget(SchedulerBudget):
    """The configured share, counted in this process (sliding window; ``clock`` in seconds)."""

    def __init__(self, settings: SchedulerSettings, clock: Callable[[], float] = time.monotonic):
        super().__init__(settings, LocalCallWindow(settings.share_calls, settings.budget_window_s, clock))


class RedisBudget(SchedulerBudget):
    """The fetchers' shared window plus the scheduler's own spending, both in Redis (``client``)."""

    def __init__(self, client, settings: SchedulerSettings):
        super().__init__(settings,
                         RedisCallWindow(client, settings.share_calls, settings.budget_window_s,
                                         f"{settings.lease_key}:spent"),
                         open_meta_budget(settings, client))

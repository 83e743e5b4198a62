"""How much of Meta's app budget the scheduler may spend (DESIGN.md §1: ~200 calls/hour).

A *call* is one HTTP request to Meta - the unit meta_fetcher's rate budget
counts. Two sources (see ``settings.py`` for the reasoning):

- ``RedisBudget`` (``REDIS_URL`` set): reads the fetchers' shared sliding
  window - the sorted set ``{META_BUDGET_KEY_PREFIX}:calls`` whose members
  are grants scored by the Redis server clock in ms (services/meta_fetcher/pacing.py)
  - and keeps the scheduler's own spending in ``<lease_key>:spent`` (same
  clock), so a new leader knows what the old one spent.
- ``LocalBudget`` (``REDIS_URL`` unset): the app's usage is not visible; the
  scheduler counts its own calls against its configured share.

``allowance`` turns a snapshot into per-tier limits for ``planning.plan_cycle``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

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


class LocalBudget:
    """The configured share, counted in this process (sliding window; ``clock`` in seconds)."""

    def __init__(self, settings: SchedulerSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._spent: deque[tuple[float, int]] = deque()

    def _used(self) -> int:
        cutoff = self.clock() - self.settings.budget_window_s
        while self._spent and self._spent[0][0] <= cutoff:
            self._spent.popleft()
        return sum(c for _, c in self._spent)

    async def snapshot(self) -> BudgetSnapshot:
        s = self.settings
        return BudgetSnapshot(SOURCE_LOCAL, s.budget_calls, s.budget_window_s, None, self._used(), s.share_calls,
                              s.reserve)

    async def record(self, calls: int) -> None:
        if calls > 0:
            self._spent.append((self.clock(), calls))


_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local app = redis.call('ZCOUNT', KEYS[1], '(' .. (now - window), '+inf')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local mine = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  mine = mine + tonumber(string.match(member, ':(%d+)$'))
end
return {app, mine}
"""

_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[2] .. ':' .. ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return now
"""


class RedisBudget:
    """The fetchers' shared window plus the scheduler's own spending, both read in one Lua call."""

    def __init__(self, client, settings: SchedulerSettings):
        self.client = client
        self.settings = settings
        prefix = settings.budget_key_prefix
        self.app_key = f"{{{prefix}}}:calls"
        self.spent_key = f"{settings.lease_key}:spent"

    async def snapshot(self) -> BudgetSnapshot:
        s = self.settings
        app, mine = await self.client.eval(_SNAPSHOT, 2, self.app_key, self.spent_key, int(s.budget_window_s * 1000))
        return BudgetSnapshot(SOURCE_REDIS, s.budget_calls, s.budget_window_s, int(app), int(mine), s.share_calls,
                              s.reserve)

    async def record(self, calls: int) -> None:
        if calls > 0:
            await self.client.eval(_RECORD, 1, self.spent_key, int(calls), uuid.uuid4().hex[:8],
                                   int(self.settings.budget_window_s * 1000))

"""The Meta call budget: sliding windows of calls, in Redis when ``REDIS_URL`` is set, in process otherwise.

DESIGN.md §1: Meta allows about 200 calls an hour for the whole app. A *call*
is one HTTP request to Meta (a page, a retry, an account lookup). This module
owns the window and its Redis key layout; everyone else goes through it:

- meta_fetcher takes one unit before each HTTP request (``try_acquire``;
  ``services/meta_fetcher/pacing.py``) from the app-wide window of
  ``open_meta_budget(settings)``;
- the scheduler reads how much of that window is used (``used``) and keeps
  its own spending in a window of its own (``record``/``used``;
  ``services/scheduler/budget.py``).

A window holds grants of ``n`` calls at a time; a grant leaves the window
``window_s`` seconds after it was taken. In Redis one atomic Lua script per
operation uses the Redis server clock (replicas' clocks do not matter); keys
are ``{<key_prefix>}:calls`` (a sorted set, member ``<ms>-<seq>:<n>`` scored by
ms) and ``{<key_prefix>}:seq`` (the braces keep both in one cluster slot).
If Redis fails, ``try_acquire`` falls back to an in-process window (logged), so
an outage can let each replica spend up to a full budget; ``record`` and
``used`` raise the Redis error (the caller decides).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)


class CallWindow(Protocol):
    """At most ``limit`` calls per ``window_s`` seconds."""

    limit: int
    window_s: float

    async def try_acquire(self, calls: int = 1) -> tuple[bool, float]:
        """Take ``calls`` units if they fit: (granted, seconds until a unit returns when not granted)."""
        ...

    async def record(self, calls: int) -> None:
        """Count ``calls`` already made (never refused; ``calls`` <= 0 is ignored)."""
        ...

    async def used(self) -> int:
        """Calls taken or recorded in the last ``window_s`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections this window opened."""
        ...


class LocalCallWindow:
    """A sliding window in this process (``clock`` in seconds, monotonic by default)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._grants: deque[tuple[float, int]] = deque()
        self._used = 0

    def _expire(self) -> float:
        now = self.clock()
        while self._grants and self._grants[0][0] <= now - self.window_s:
            self._used -= self._grants.popleft()[1]
        return now

    async def try_acquire(self, calls: int = 1) -> tuple[bool, float]:
        now = self._expire()
        if self._used + calls <= self.limit:
            self._grants.append((now, calls))
            self._used += calls
            return True, 0.0
        if not self._grants:
            return False, self.window_s
        return False, max(0.0, self._grants[0][0] + self.window_s - now)

    async def record(self, calls: int) -> None:
        if calls > 0:
            self._grants.append((self._expire(), calls))
            self._used += calls

    async def used(self) -> int:
        self._expire()
        return self._used

    async def aclose(self) -> None:
        return None


# ARGV: limit (-1: no limit, record), window ms, calls (0: only count). Returns {granted, used, retry_ms}.
_WINDOW_LUA = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local calls = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_ms)
local used = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(member, ':(%d+)$'))
end
if calls <= 0 then
  return {1, used, 0}
end
if limit >= 0 and used + calls > limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] == nil then
    return {0, used, window_ms}
  end
  return {0, used, tonumber(oldest[2]) + window_ms - now}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, tostring(now) .. '-' .. tostring(seq) .. ':' .. tostring(calls))
redis.call('PEXPIRE', KEYS[1], window_ms)
redis.call('PEXPIRE', KEYS[2], window_ms)
return {1, used + calls, 0}
"""


class RedisCallWindow:
    """A sliding window shared through Redis (module docstring: keys, clock, failure).

    ``redis``: a ``redis.asyncio`` client (kept open by ``aclose``) or a URL (a client with 2 s
    timeouts is opened, and closed by ``aclose``).
    """

    def __init__(self, redis: Any, limit: int, window_s: float, key_prefix: str) -> None:
        if isinstance(redis, str):
            import redis.asyncio as aioredis

            self._redis, self._owned = aioredis.from_url(redis, socket_connect_timeout=2, socket_timeout=2), True
        else:
            self._redis, self._owned = redis, False
        self.limit, self.window_s = limit, window_s
        self.keys = [f"{{{key_prefix}}}:calls", f"{{{key_prefix}}}:seq"]
        self._script = self._redis.register_script(_WINDOW_LUA)
        self._fallback = LocalCallWindow(limit, window_s)
        self._failing = False

    async def _run(self, limit: int, calls: int) -> tuple[bool, int, float]:
        granted, used, retry_ms = await self._script(keys=self.keys, args=[limit, int(self.window_s * 1000), calls])
        return bool(int(granted)), int(used), max(0.0, int(retry_ms) / 1000)

    async def try_acquire(self, calls: int = 1) -> tuple[bool, float]:
        try:
            granted, _, retry_after = await self._run(self.limit, calls)
        except Exception as exc:  # redis errors of any kind: keep serving on the local window
            if not self._failing:
                log.error("Meta call budget: Redis unavailable (%s); using the in-process window until it is back",
                          type(exc).__name__)
                self._failing = True
            return await self._fallback.try_acquire(calls)
        if self._failing:
            log.warning("Meta call budget: Redis is back; using the shared window again")
            self._failing = False
        return granted, retry_after

    async def record(self, calls: int) -> None:
        if calls > 0:
            await self._run(-1, calls)

    async def used(self) -> int:
        return (await self._run(-1, 0))[1]

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()


def open_meta_budget(settings: Any, redis_client: Any = None) -> CallWindow:
    """The app-wide window of ``settings`` (``MetaBudgetSettings`` and ``RedisSettings`` parts):
    ``budget_calls`` per ``budget_window_s`` at ``budget_key_prefix``, through ``redis_client`` or
    ``settings.redis_url`` when either is given, else in this process."""
    if redis_client is not None or settings.redis_url:
        return RedisCallWindow(redis_client if redis_client is not None else settings.redis_url,
                               settings.budget_calls, settings.budget_window_s, settings.budget_key_prefix)
    return LocalCallWindow(settings.budget_calls, settings.budget_window_s)

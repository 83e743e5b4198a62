"""Exactly one active scheduler (DESIGN.md R6): a lease in Redis with a fencing token, and a shared schedule.

``RedisLease``: ``SET key holder NX PX ttl`` acquires; a Lua check-and-extend
renews only while we still hold it; every acquisition takes the next fencing
token from the lease's durable record in MongoDB (``LeaseRecords``,
``services/common/lease_record.py``: strictly increasing even when Redis
restarts empty) and publishes it to ``key:fence`` for the schedule's claims.
The gateway accepts only the record's token, so work stamped with an older
token is refused (``services/cache_gateway/demand_fencing.py``). ``holds()`` is
the local view: true only while the last successful renewal is younger than
the ttl (minus a margin), so a leader cut off from Redis stops working before
its lease can pass to another replica.

``RedisSchedule``: cycle numbers and start times live in Redis
(``key:schedule``), claimed with one Lua script that checks the caller's
token is still the latest issued (``key:fence``) and that the interval has
passed since the last cycle began. A new leader therefore continues the
schedule where the old one left it - no cycle runs twice, none is repeated
after a failover - and a deposed leader cannot claim one. Each finished cycle
is appended to ``key:cycles`` (the latest 200, JSON).

``LocalLease`` / ``LocalSchedule``: the single-machine fallback when
``REDIS_URL`` is unset: this process always leads, with a token taken from the
record at its first acquisition (1 without a record).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

import redis.asyncio as aioredis

from services.common.lease_record import LeaseRecords
from services.common.settings import lease_key_for

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_PUBLISH_FENCE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""
_CLAIM = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) ~= current then
  return {-1, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'started_ms') or '0')
local n = tonumber(redis.call('HGET', KEYS[2], 'cycle') or '0')
local interval = tonumber(ARGV[2])
if ARGV[3] ~= '1' and last > 0 and now < last + interval then
  return {0, last + interval - now, now}
end
n = n + 1
redis.call('HSET', KEYS[2], 'cycle', n, 'started_ms', now, 'holder', ARGV[4], 'token', ARGV[1])
redis.call('HDEL', KEYS[2], 'finished_ms', 'summary')
return {n, 0, now}
"""
_FINISH = """
if redis.call('HGET', KEYS[1], 'cycle') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'finished_ms', ARGV[2], 'summary', ARGV[3])
end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, 199)
return 1
"""

DEFAULT_LEASE_KEY = lease_key_for()


class Lease(Protocol):
    holder_id: str
    fencing_token: int

    async def try_acquire_or_renew(self) -> bool: ...
    def holds(self) -> bool: ...
    async def leader(self) -> str: ...
    async def release(self) -> None: ...


class LocalLease:
    """Single-machine fallback: always the leader; its token comes from ``records`` (1 without)."""

    def __init__(self, holder_id: str, records: LeaseRecords | None = None, key: str = DEFAULT_LEASE_KEY):
        self.holder_id = holder_id
        self.records = records
        self.key = key
        self.fencing_token = 0 if records is not None else 1

    async def try_acquire_or_renew(self) -> bool:
        if self.fencing_token == 0:
            self.fencing_token = await self.records.take_token(self.key, self.holder_id)
        return True

    def holds(self) -> bool:
        return self.fencing_token > 0

    async def leader(self) -> str:
        return self.holder_id

    async def release(self) -> None:
        return None


class RedisLease:
    """A lease of ``ttl_ms`` milliseconds at ``key``; renew well within the ttl (every ttl/3).

    ``clock``: monotonic seconds (tests inject one). Redis and MongoDB errors propagate from
    ``try_acquire_or_renew``; ``holds()`` then turns false once the ttl margin passes.
    ``records``: the durable record the tokens come from (the servers always pass it); without it
    tokens come from ``INCR key:fence`` and start again at 1 when Redis restarts empty.
    """

    def __init__(self, client: aioredis.Redis, holder_id: str, key: str = DEFAULT_LEASE_KEY,
                 ttl_ms: int = 30_000, clock: Callable[[], float] = time.monotonic,
                 records: LeaseRecords | None = None):
        if ttl_ms < 1000:
            raise ValueError("ttl_ms must be >= 1000")
        self.client = client
        self.holder_id = holder_id
        self.key = key
        self.ttl_ms = ttl_ms
        self.clock = clock
        self.records = records
        self.fencing_token = 0
        self._held = False
        self._valid_until = 0.0

    async def try_acquire_or_renew(self) -> bool:
        started = self.clock()
        if self._held and await self.client.eval(_RENEW, 1, self.key, self.holder_id, self.ttl_ms):
            self._valid_until = started + self.ttl_ms / 1000 * 0.8
            return True
        self._held = bool(await self.client.set(self.key, self.holder_id, nx=True, px=self.ttl_ms))
        if self._held:
            try:
                if self.records is None:
                    self.fencing_token = int(await self.client.incr(f"{self.key}:fence"))
                else:
                    self.fencing_token = await self.records.take_token(self.key, self.holder_id)
                    await self.client.eval(_PUBLISH_FENCE, 1, f"{self.key}:fence", self.fencing_token)
            except BaseException:
                self._held = False  # no token, no leadership: give the lease back so a replica can take it
                try:
                    await self.client.eval(_RELEASE, 1, self.key, self.holder_id)
                except Exception:
                    pass  # it lapses after ttl_ms
                raise
            self._valid_until = started + self.ttl_ms / 1000 * 0.8
        return self._held

    def holds(self) -> bool:
        """Whether this process may act as leader now (held, and renewed within 80 % of the ttl)."""
        return self._held and self.clock() < self._valid_until

    async def leader(self) -> str:
        value = await self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else (value or "")

    async def release(self) -> None:
        if self._held:
            await self.client.eval(_RELEASE, 1, self.key, self.holder_id)
        self._held = False


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to ``claim``: ``cycle`` > 0 claimed; 0 not yet (``wait_s`` to go); -1 deposed."""

    cycle: int
    wait_s: float
    started: datetime


@dataclass(frozen=True, slots=True)
class ScheduleState:
    cycle: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    holder: str = ""
    token: int = 0
    summary: dict | None = None


def _ms(ms: int | float | None) -> datetime | None:
    return None if not ms else datetime.fromtimestamp(int(ms) / 1000, timezone.utc)


class LocalSchedule:
    """The schedule in process (one machine). ``clock``: aware UTC datetimes."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.clock = clock
        self.state_ = ScheduleState()
        self.log: list[dict] = []

    async def claim(self, token: int, interval_s: float, force: bool, holder: str) -> Claim:
        now = self.clock()
        last = self.state_.started
        if not force and last is not None and (now - last).total_seconds() < interval_s:
            return Claim(0, interval_s - (now - last).total_seconds(), now)
        self.state_ = ScheduleState(self.state_.cycle + 1, now, None, holder, token)
        return Claim(self.state_.cycle, 0.0, now)

    async def finish(self, cycle: int, finished: datetime, summary: dict) -> None:
        if self.state_.cycle == cycle:
            s = self.state_
            self.state_ = ScheduleState(s.cycle, s.started, finished, s.holder, s.token, summary)
        self.log.insert(0, summary)
        del self.log[200:]

    async def state(self) -> ScheduleState:
        return self.state_


class RedisSchedule:
    """The schedule shared by every scheduler replica (module docstring)."""

    def __init__(self, client: aioredis.Redis, lease_key: str = DEFAULT_LEASE_KEY):
        self.client = client
        self.fence_key = f"{lease_key}:fence"
        self.key = f"{lease_key}:schedule"
        self.log_key = f"{lease_key}:cycles"

    async def claim(self, token: int, interval_s: float, force: bool, holder: str) -> Claim:
        cycle, wait_ms, now_ms = await self.client.eval(_CLAIM, 2, self.fence_key, self.key, token,
                                                        int(interval_s * 1000), "1" if force else "0", holder)
        return Claim(int(cycle), int(wait_ms) / 1000, _ms(now_ms) or datetime.now(timezone.utc))

    async def finish(self, cycle: int, finished: datetime, summary: dict) -> None:
        await self.client.eval(_FINISH, 2, self.key, self.log_key, cycle, int(finished.timestamp() * 1000),
                               json.dumps(summary, sort_keys=True, default=str))

    async def state(self) -> ScheduleState:
        raw = await self.client.hgetall(self.key)
        if not raw:
            return ScheduleState()
        get = lambda k: (raw.get(k.encode()) or raw.get(k) or b"")
        text = lambda k: get(k).decode() if isinstance(get(k), bytes) else str(get(k))
        summary = text("summary")
        return ScheduleState(int(text("cycle") or 0), _ms(text("started_ms") or 0), _ms(text("finished_ms") or 0),
                             text("holder"), int(text("token") or 0), json.loads(summary) if summary else None)

    async def history(self, limit: int = 200) -> list[dict]:
        """The latest finished cycles, newest first."""
        return [json.loads(x) for x in await self.client.lrange(self.log_key, 0, limit - 1)]

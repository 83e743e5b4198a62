"""Exactly one active scheduler (DESIGN.md R6): a lease in Redis with a fencing token.

``RedisLease``: ``SET key holder NX PX ttl`` acquires; a Lua check-and-extend
renews only while we still hold it; every acquisition takes a new fencing
token from ``INCR key:fence``, so work stamped with an older token can be
refused by whoever receives it. ``LocalLease`` is the single-machine
fallback when ``REDIS_URL`` is unset: this process always leads.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aioredis

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


class Lease(Protocol):
    holder_id: str
    fencing_token: int

    async def try_acquire_or_renew(self) -> bool: ...
    async def leader(self) -> str: ...
    async def release(self) -> None: ...


class LocalLease:
    """Single-machine fallback: always the leader, token 1."""

    def __init__(self, holder_id: str):
        self.holder_id = holder_id
        self.fencing_token = 1

    async def try_acquire_or_renew(self) -> bool:
        return True

    async def leader(self) -> str:
        return self.holder_id

    async def release(self) -> None:
        return None


class RedisLease:
    """A lease of ``ttl_ms`` milliseconds at ``key``; renew well within the ttl (e.g. every ttl/3)."""

    def __init__(self, client: aioredis.Redis, holder_id: str, key: str = "adfatigue:scheduler:leader",
                 ttl_ms: int = 15_000):
        self.client = client
        self.holder_id = holder_id
        self.key = key
        self.ttl_ms = ttl_ms
        self.fencing_token = 0
        self._held = False

    async def try_acquire_or_renew(self) -> bool:
        if self._held and await self.client.eval(_RENEW, 1, self.key, self.holder_id, self.ttl_ms):
            return True
        self._held = bool(await self.client.set(self.key, self.holder_id, nx=True, px=self.ttl_ms))
        if self._held:
            self.fencing_token = int(await self.client.incr(f"{self.key}:fence"))
        return self._held

    async def leader(self) -> str:
        value = await self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else (value or "")

    async def release(self) -> None:
        if self._held:
            await self.client.eval(_RELEASE, 1, self.key, self.holder_id)
        self._held = False

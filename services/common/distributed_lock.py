"""A short mutual-exclusion lock shared by replicas through Redis, with an in-process fallback.

``SET key token NX PX ttl`` takes it; a compare-and-delete Lua script
releases it only if still ours; it expires by itself if its holder dies.
Waiters poll every ``poll_s``. Without Redis (``REDIS_URL`` unset) the lock
is an ``asyncio.Lock`` per key: correct for one process, which is all a
single machine runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import AsyncIterator

from services.common.telemetry import meter

#: acquisitions that had to wait for another holder (in this process or another replica)
lock_waits = meter(__name__).create_counter("adfatigue.lock.waits", unit="{wait}",
                                            description="Lock acquisitions that waited for another holder")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LockTimeout(TimeoutError):
    """The lock was not free within the wait limit."""


class DistributedLock:
    def __init__(self, redis_client=None, prefix: str = "adfatigue:lock:", ttl_ms: int = 60_000,
                 poll_s: float = 0.02, wait_s: float = 120.0):
        self.redis = redis_client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.poll_s = poll_s
        self.wait_s = wait_s
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock ``name``; raises LockTimeout after ``wait_s``."""
        local = self._local.setdefault(name, asyncio.Lock())
        if local.locked():
            lock_waits.add(1)
        async with local:  # one holder per process first, then one across processes
            if self.redis is None:
                yield
                return
            key, token = self.prefix + name, secrets.token_hex(8)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait_s
            first = True
            while not await self.redis.set(key, token, nx=True, px=self.ttl_ms):
                if first:
                    lock_waits.add(1)
                    first = False
                if loop.time() > deadline:
                    raise LockTimeout(f"lock {name} still held by another replica after {self.wait_s:.0f}s")
                await asyncio.sleep(self.poll_s)
            try:
                yield
            finally:
                await self.redis.eval(_RELEASE, 1, key, token)

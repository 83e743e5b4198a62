"""A short mutual-exclusion lock shared by replicas through Redis, with an in-process fallback.

``SET key token NX PX ttl`` takes it; a compare-and-delete Lua script
releases it only if still ours; it expires by itself if its holder dies.
Waiters poll every ``poll_s``. Without Redis (``REDIS_URL`` unset) the lock
is an ``asyncio.Lock`` per key: correct for one process, which is all a
single machine runs. When Redis is set but unreachable, the lock degrades to
that per-process lock (fetching goes on; replicas may repeat each other's
Meta calls), logs it once per outage, counts ``degraded`` acquisitions, and
logs again when Redis is back (issue 16).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import AsyncIterator

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

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
        self.waited = 0  # acquisitions that had to wait for another holder
        self.degraded = 0  # acquisitions made without Redis (unreachable): in-process only
        self.redis_down_since: float | None = None  # time.time() of the first failure of the current outage

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock ``name``; raises LockTimeout after ``wait_s``."""
        local = self._local.setdefault(name, asyncio.Lock())
        if local.locked():
            self.waited += 1
        async with local:  # one holder per process first, then one across processes
            if self.redis is None:
                yield
                return
            key, token = self.prefix + name, secrets.token_hex(8)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait_s
            first = True
            shared = True
            try:
                while not await self.redis.set(key, token, nx=True, px=self.ttl_ms):
                    if first:
                        self.waited += 1
                        first = False
                    if loop.time() > deadline:
                        raise LockTimeout(f"lock {name} still held by another replica after {self.wait_s:.0f}s")
                    await asyncio.sleep(self.poll_s)
            except (RedisError, OSError) as exc:  # Redis down: this process still coalesces its own callers
                shared = False
                self._redis_down(exc)
            if shared and self.redis_down_since is not None:
                log.warning("Redis is back: fetches are coalesced across replicas again")
                self.redis_down_since = None
            try:
                yield
            finally:
                if shared:
                    try:
                        await self.redis.eval(_RELEASE, 1, key, token)
                    except (RedisError, OSError) as exc:  # it expires by itself after ttl_ms
                        self._redis_down(exc)

    def _redis_down(self, exc: BaseException) -> None:
        self.degraded += 1
        if self.redis_down_since is None:
            self.redis_down_since = time.time()
            log.error("Redis unreachable (%s): fetch locks fall back to in-process single-flight; replicas may "
                      "fetch the same days from Meta until it is back", type(exc).__name__)

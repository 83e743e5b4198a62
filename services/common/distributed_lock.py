"""A mutual-exclusion lock shared by replicas through Redis that lasts as long as its holder works.

redis-py's own ``Lock`` takes it (``SET NX PX`` with a random token; release and
extend are Lua scripts that act only while the token is still ours). Its TTL
(``ttl_s``) is short so a dead holder frees it quickly; while the holder is
alive a background task extends it back to the full TTL every ``ttl_s / 3``
seconds, for as long as the work takes (a fetch may run for minutes). If an
extension finds the lock no longer ours (the key expired or was taken - a
paused process, a Redis restart) the hold is marked *lost*: the holder must
call ``held.confirm()`` right before it commits, which extends once more and
raises ``LockLost`` unless the lock is still ours, so a fetch whose lock
lapsed never commits (another replica may be fetching the same account).

Without Redis (``REDIS_URL`` unset) the lock is an ``asyncio.Lock`` per key:
correct for one process, which is all a single machine runs. When Redis is
set but unreachable (at acquisition, or while extending), the lock degrades to
that per-process lock (fetching goes on; replicas may repeat each other's Meta
calls, as every replica is degraded too), logs it once per outage, counts
``degraded`` acquisitions, and logs again when Redis is back (issue 16). If
Redis comes back without our key, the next extension finds it lost.

    async with lock.hold(f"fetch:{account_id}") as held:
        rows = await upstream.fetch(...)        # may outlive ttl_s: the lock is extended meanwhile
        await held.confirm()                    # LockLost: do not commit
        await store.apply_fetch(...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Callable

from redis.exceptions import LockError, RedisError

from services.common.telemetry import meter

log = logging.getLogger(__name__)

#: acquisitions that had to wait for another holder (in this process or another replica)
lock_waits = meter(__name__).create_counter("adfatigue.lock.waits", unit="{wait}",
                                            description="Lock acquisitions that waited for another holder")
#: acquisitions made without Redis (unreachable): fetches coalesced in this process only
lock_degraded = meter(__name__).create_counter("adfatigue.lock.degraded", unit="{acquisition}",
                                               description="Lock acquisitions made without Redis (unreachable)")


class LockTimeout(TimeoutError):
    """The lock was not free within the wait limit."""


class LockLost(RuntimeError):
    """The lock stopped being ours while we held it (it could not be extended); nothing may be committed."""


class HeldLock:
    """One holding of a lock: ``confirm()`` before committing. ``lost``: why it is no longer ours (or None)."""

    def __init__(self, name: str, redis_lock=None, ttl_s: float = 0.0,
                 on_redis_down: Callable[[BaseException], None] | None = None) -> None:
        self.name = name
        self._lock = redis_lock
        self.ttl_s = ttl_s
        self.lost: str | None = None
        self._on_redis_down = on_redis_down

    async def extend(self) -> bool:
        """Extend the lock back to the full TTL; False (and ``lost`` set) when it is no longer ours.

        Redis unreachable: True (degraded, module docstring) - the next extension tries again."""
        if self._lock is None or self.lost is not None:
            return self.lost is None
        try:
            await self._lock.extend(self.ttl_s, replace_ttl=True)
            return True
        except LockError as exc:  # LockNotOwnedError: expired or taken by another holder
            self.lost = f"{type(exc).__name__}: {exc}"
            log.warning("lock %s could not be extended (%s): its work will not be committed", self.name, self.lost)
            return False
        except (RedisError, OSError) as exc:
            if self._on_redis_down is not None:
                self._on_redis_down(exc)
            return True

    async def confirm(self) -> None:
        """Raise LockLost unless the lock is still ours (extending it once more for the commit)."""
        if not await self.extend():
            raise LockLost(f"lock {self.name} was lost while held ({self.lost}); the work was not committed "
                           "(another replica may hold it now): retry")


class DistributedLock:
    """Locks by name, shared through ``redis_client`` (``redis.asyncio``) or in process when it is None.

    ``ttl_s``: lifetime of the Redis key without extension (a dead holder's lock frees after it);
    ``wait_s``: longest wait for a held lock (LockTimeout); ``poll_s``: how often a waiter retries.
    """

    def __init__(self, redis_client=None, prefix: str = "adfatigue:lock:", ttl_s: float = 15.0,
                 poll_s: float = 0.02, wait_s: float = 120.0):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.redis = redis_client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.wait_s = wait_s
        self._local: dict[str, asyncio.Lock] = {}
        self.degraded = 0  # acquisitions made without Redis (unreachable): in-process only
        self.redis_down_since: float | None = None  # time.time() of the first failure of the current outage

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[HeldLock]:
        """Hold the lock ``name`` (extended in the background); raises LockTimeout after ``wait_s``."""
        local = self._local.setdefault(name, asyncio.Lock())
        if local.locked():
            lock_waits.add(1)
        async with local:  # one holder per process first, then one across processes
            if self.redis is None:
                yield HeldLock(name)
                return
            lock = self.redis.lock(self.prefix + name, timeout=self.ttl_s, sleep=self.poll_s,
                                   blocking_timeout=self.wait_s, thread_local=False, raise_on_release_error=False)
            try:
                if await lock.locked():
                    lock_waits.add(1)
                acquired = await lock.acquire()
            except (RedisError, OSError) as exc:  # Redis down: this process still coalesces its own callers
                self._redis_down(exc)
                yield HeldLock(name)
                return
            if not acquired:
                raise LockTimeout(f"lock {name} still held by another replica after {self.wait_s:.0f}s")
            if self.redis_down_since is not None:
                log.warning("Redis is back: fetches are coalesced across replicas again")
                self.redis_down_since = None
            held = HeldLock(name, lock, self.ttl_s, self._redis_down)
            renewer = asyncio.create_task(self._keep_extending(held), name=f"extend-lock-{name}")
            try:
                yield held
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
                with contextlib.suppress(LockError, RedisError, OSError):  # expired or unreachable: frees by itself
                    await lock.release()

    async def _keep_extending(self, held: HeldLock) -> None:
        while await held.extend():
            await asyncio.sleep(self.ttl_s / 3)

    def _redis_down(self, exc: BaseException) -> None:
        self.degraded += 1
        lock_degraded.add(1)
        if self.redis_down_since is None:
            self.redis_down_since = time.time()
            log.error("Redis unreachable (%s): fetch locks fall back to in-process single-flight; replicas may "
                      "fetch the same days from Meta until it is back", type(exc).__name__)

"""A mutual-exclusion lock shared by replicas through Redis that lasts as long as its holder works.

redis-py's own ``Lock`` takes it (``SET NX PX`` with a random token; release and
extend are Lua scripts that act only while the token is still ours). Its TTL
(``ttl_s``) is short so a dead holder frees it quickly; while the holder is
alive a background task extends it back to the full TTL every ``ttl_s / 3``
seconds, for as long as the work takes (a fetch may run for minutes). If an
extension fails (the key expired or was taken - a paused process, a Redis
restart - or Redis is unreachable) the hold is marked *lost*: the holder must
call ``held.confirm()`` right before it commits, which extends once more and
raises ``LockLost`` unless the lock is still ours, so a fetch whose lock
lapsed never commits (another replica may be fetching the same account).

Without Redis (``REDIS_URL`` unset) the lock is an ``asyncio.Lock`` per key:
correct for one process, which is all a single machine runs.

    async with lock.hold(f"fetch:{account_id}") as held:
        rows = await upstream.fetch(...)        # may outlive ttl_s: the lock is extended meanwhile
        await held.confirm()                    # LockLost: do not commit
        await store.apply_fetch(...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)


class LockTimeout(TimeoutError):
    """The lock was not free within the wait limit."""


class LockLost(RuntimeError):
    """The lock stopped being ours while we held it (it could not be extended); nothing may be committed."""


class HeldLock:
    """One holding of a lock: ``confirm()`` before committing. ``lost``: why it is no longer ours (or None)."""

    def __init__(self, name: str, redis_lock=None, ttl_s: float = 0.0) -> None:
        self.name = name
        self._lock = redis_lock
        self.ttl_s = ttl_s
        self.lost: str | None = None

    async def extend(self) -> bool:
        """Extend the lock back to the full TTL; False (and ``lost`` set) when it is no longer ours."""
        if self._lock is None or self.lost is not None:
            return self.lost is None
        try:
            await self._lock.extend(self.ttl_s, replace_ttl=True)
            return True
        except (LockError, RedisError) as exc:  # LockNotOwnedError: expired or taken; RedisError: unreachable
            self.lost = f"{type(exc).__name__}: {exc}"
            log.warning("lock %s could not be extended (%s): its work will not be committed", self.name, self.lost)
            return False

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
        self.waited = 0  # acquisitions that had to wait for another holder

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[HeldLock]:
        """Hold the lock ``name`` (extended in the background); raises LockTimeout after ``wait_s``."""
        local = self._local.setdefault(name, asyncio.Lock())
        if local.locked():
            self.waited += 1
        async with local:  # one holder per process first, then one across processes
            if self.redis is None:
                yield HeldLock(name)
                return
            lock = self.redis.lock(self.prefix + name, timeout=self.ttl_s, sleep=self.poll_s,
                                   blocking_timeout=self.wait_s, thread_local=False, raise_on_release_error=False)
            if await lock.locked():
                self.waited += 1
            if not await lock.acquire():
                raise LockTimeout(f"lock {name} still held by another replica after {self.wait_s:.0f}s")
            held = HeldLock(name, lock, self.ttl_s)
            renewer = asyncio.create_task(self._keep_extending(held), name=f"extend-lock-{name}")
            try:
                yield held
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
                with contextlib.suppress(LockError, RedisError):  # expired or unreachable: it frees by itself
                    await lock.release()

    async def _keep_extending(self, held: HeldLock) -> None:
        while await held.extend():
            await asyncio.sleep(self.ttl_s / 3)

"""L1: the hot accounts' replicas, bounded in bytes, least recently used account evicted first (issue 14).

``get(account_id)`` returns the account's ``AccountReplica``, loading it with
one consistent L2 read on first use (concurrent callers share the load), or
``None`` when the caller must read L2 instead: the change feed is not
connected (the replica could be behind), the load could not be consistent,
or the account alone is larger than the budget.

The change feed keeps replicas current: ``on_change`` applies a committed
change's rows in memory, ``on_freshness`` a day's new ``fetched_at``,
``on_resync`` (history lost) drops every replica. Any gap — a skipped
version, a lost row, events of an account while it loads that do not follow
the loaded version — drops that replica; the next ``get`` loads it again.
Events that arrive while an account loads are buffered and applied after the
load, so nothing committed between the read and the install is missed.

A replica stays valid until a change arrives (applied) — freshness is decided
per request from its ``fetched_at`` — and ``ttl_s`` (minutes) is only a
safety net: an older replica is dropped and reloaded.

Read-your-writes: after this gateway writes version V of an account
(``expect``), ``get`` waits up to ``catch_up_s`` for the feed to bring the
replica to V; if it does not, the replica is dropped and the caller reads L2.

``bytes_used`` (the replicas' ``size_bytes``) never exceeds ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import date, datetime
from typing import Callable

from services.cache_gateway.account_replica import AccountReplica, FeedGap
from services.cache_gateway.change_feed import Change
from services.cache_gateway.l2_store import InsightsStore

log = logging.getLogger(__name__)

#: Rows serialized per slice by the background warm-up (between slices the loop serves others).
WARM_SLICE_ROWS = 200


class ReplicaCache:
    """``connected()`` says whether the change feed is live; ``clock`` is monotonic seconds."""

    def __init__(self, store: InsightsStore, max_bytes: int, ttl_s: float = 300.0,
                 connected: Callable[[], bool] = lambda: True, clock: Callable[[], float] = time.monotonic,
                 catch_up_s: float = 1.0, retry_after_s: float = 5.0):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.store = store
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.connected = connected
        self.clock = clock
        self.catch_up_s = catch_up_s
        self.retry_after_s = retry_after_s
        self._replicas: OrderedDict[str, AccountReplica] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}
        self._buffers: dict[str, list[tuple]] = {}
        self._expected: dict[str, int] = {}
        self._not_before: dict[str, float] = {}   # account -> no load before (a failed or oversized load)
        self._advanced = asyncio.Event()
        self._generation = 0                        # bumped by a resync: loads started before are void
        self._background: set[asyncio.Task] = set()
        self.bytes_used = 0
        self.loads = self.gaps = self.evictions = 0
        self.listeners: list[Callable[[str], None]] = []  # called with an account id when its replica changes

    # -- serving -------------------------------------------------------------------------------
    async def get(self, account_id: str) -> AccountReplica | None:
        if not self.connected():
            return None
        replica = self._replicas.get(account_id)
        if replica is not None and self.clock() - replica.loaded_at > self.ttl_s:
            self.drop(account_id)
            replica = None
        if replica is None:
            if self.clock() < self._not_before.get(account_id, 0.0):
                return None
            future = self._loading.get(account_id)
            if future is None:
                future = self._loading[account_id] = asyncio.ensure_future(self._load(account_id))
                future.add_done_callback(lambda _f, a=account_id: self._loading.pop(a, None))
            replica = await asyncio.shield(future)
            if replica is None:
                return None
        self._replicas.move_to_end(account_id)
        expected = self._expected.get(account_id)
        if expected is not None:
            if replica.version < expected and not await self._catch_up(replica, expected):
                self._expected.pop(account_id, None)
                self.drop(account_id)
                return None
            self._expected.pop(account_id, None)
        return replica

    async def _catch_up(self, replica: AccountReplica, version: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.catch_up_s
        while replica.version < version:
            left = deadline - loop.time()
            if left <= 0 or self._replicas.get(replica.account_id) is not replica:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    def peek(self, account_id: str) -> AccountReplica | None:
        """The resident replica, without loading, waiting or touching the LRU order."""
        return self._replicas.get(account_id) if self.connected() else None

    def expect(self, account_id: str, version: int) -> None:
        """This gateway committed ``version`` of the account: answers from memory must include it."""
        if version > self._expected.get(account_id, 0):
            self._expected[account_id] = version

    # -- loading -------------------------------------------------------------------------------
    async def _load(self, account_id: str) -> AccountReplica | None:
        generation = self._generation
        self._buffers[account_id] = []
        try:
            image = await self.store.account_image(account_id)
        except Exception as exc:  # the store failed: the caller's L2 read reports it
            log.warning("loading the replica of act_%s failed: %s", account_id, exc)
            image = None
        if image is None or generation != self._generation:
            self._buffers.pop(account_id, None)
            self._not_before[account_id] = self.clock() + (self.retry_after_s if image is None else 0)
            return None
        # decoding a whole account takes tens of milliseconds: off the loop, so small requests go on
        # (events keep being buffered meanwhile)
        replica = await asyncio.to_thread(AccountReplica.from_image, image, self.clock())
        buffered = self._buffers.pop(account_id, [])
        if generation != self._generation:
            return None
        try:
            for event in buffered:
                self._apply(replica, event)
        except FeedGap as exc:
            self.gaps += 1
            log.info("replica of act_%s: %s while loading; loading again on next use", account_id, exc)
            return None
        self.loads += 1
        if replica.size_bytes > self.max_bytes:
            log.warning("act_%s needs %d bytes, more than L1_MAX_BYTES=%d: served from L2",
                        account_id, replica.size_bytes, self.max_bytes)
            self._not_before[account_id] = self.clock() + self.ttl_s
            return None
        self._not_before.pop(account_id, None)
        self._replicas[account_id] = replica
        self.bytes_used += replica.size_bytes
        self._evict(keep=account_id)
        self._warm(replica)
        return replica

    def _warm(self, replica: AccountReplica) -> None:
        """Serialize the replica's rows in the background, a slice at a time (no stall of small requests)."""
        async def run() -> None:
            pending = replica.unencoded()
            for i in range(0, len(pending), WARM_SLICE_ROWS):
                if self._replicas.get(replica.account_id) is not replica:
                    return
                for entry in pending[i:i + WARM_SLICE_ROWS]:
                    if entry.row is not None:
                        entry.as_rows_element()
                await asyncio.sleep(0)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the change feed -----------------------------------------------------------------------
    def on_change(self, change: Change) -> None:
        self._event(change.account_id, ("change", change))

    def on_freshness(self, account_id: str, day: date, fetched_at: datetime, attribution: str = "") -> None:
        self._event(account_id, ("fetched", day, fetched_at, attribution))

    def on_resync(self) -> None:
        """The feed lost history: nothing in memory can be trusted."""
        self._generation += 1
        self._buffers.clear()
        for account_id in list(self._replicas):
            self.drop(account_id)

    def _event(self, account_id: str, event: tuple) -> None:
        buffer = self._buffers.get(account_id)
        if buffer is not None:
            buffer.append(event)
            return
        replica = self._replicas.get(account_id)
        if replica is None:
            return
        before = replica.size_bytes
        try:
            self._apply(replica, event)
        except FeedGap as exc:
            self.gaps += 1
            log.info("replica of act_%s dropped: %s", account_id, exc)
            self.drop(account_id)
            return
        self.bytes_used += replica.size_bytes - before
        if replica.size_bytes > self.max_bytes:
            self.drop(account_id)
        else:
            self._evict(keep=account_id)
        for listener in self.listeners:
            listener(account_id)
        self._advanced.set()
        self._advanced = asyncio.Event()

    @staticmethod
    def _apply(replica: AccountReplica, event: tuple) -> None:
        if event[0] == "fetched":
            replica.note_fetched(event[1], event[2], event[3])
            return
        change: Change = event[1]
        for result, first, last in change.scores:
            replica.note_score(result, first, last)
        if change.rows or change.removed or change.incomplete:
            replica.apply(change)

    # -- bounds --------------------------------------------------------------------------------
    def drop(self, account_id: str) -> None:
        replica = self._replicas.pop(account_id, None)
        if replica is not None:
            self.bytes_used -= replica.size_bytes
            for listener in self.listeners:
                listener(account_id)

    def _evict(self, keep: str) -> None:
        while self.bytes_used > self.max_bytes:
            victim = next((a for a in self._replicas if a != keep), None)
            if victim is None:
                break
            self.drop(victim)
            self.evictions += 1

    def clear(self) -> None:
        for account_id in list(self._replicas):
            self.drop(account_id)

    def __contains__(self, account_id: str) -> bool:
        return account_id in self._replicas

    def __len__(self) -> int:
        return len(self._replicas)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

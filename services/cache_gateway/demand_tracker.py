"""What people look at, per account, shared by every gateway replica (DESIGN.md R6).

The gateway calls ``record_read`` on every GetInsights/GetFatigue (L1 hits
included) and ``subscribed``/``unsubscribed`` around every Subscribe stream.
Those calls only touch memory (O(1), never wait, never raise on the serving
path once arguments are valid); a background task flushes the aggregate every
``flush_interval_s`` (10 s) to the MongoDB collection ``demand``. The
scheduler reads it with ``load_demand`` to rank its work.

Documents in ``demand``:

- one per account, ``_id`` = account id (digits, no ``act_``), ``kind: "account"``:
  ``last_read_at`` (UTC, ``$max``), ``last_since``/``last_until`` (the last
  range read, ``YYYY-MM-DD``), ``reads``: a ring of ``RING_SLOTS`` (12) slots of
  ``bucket_s`` (300 s) each, ``{"<slot>": {"b": bucket number, "n": reads}}``
  - so "reads in the last hour" is the sum of the slots whose bucket is among
  the last 12 (a 55-60 min window at 5-min granularity) and the document never grows -,
  ``subscribers``: ``{"<instance id>": live Subscribe streams on that replica}``;
- one per gateway replica, ``_id`` = ``"instance:<id>"``, ``kind: "instance"``,
  ``heartbeat`` (UTC, rewritten at every flush), ``started_at``.

A replica's subscriber counts only count while its heartbeat is younger than
``heartbeat_ttl_s`` (60 s: six missed flushes), so a replica that died without
cleaning up stops counting within a minute. A closing replica removes its
counts and its instance document; ``start`` also prunes instances silent for
more than ``prune_after_s`` (1 h).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from pymongo import UpdateOne
from services.cache_gateway import metrics

log = logging.getLogger(__name__)

#: Slots in the reads ring; with ``bucket_s`` = 300 they cover one hour.
RING_SLOTS = 12
DEFAULT_BUCKET_S = 300
DEFAULT_FLUSH_INTERVAL_S = 10.0
DEFAULT_HEARTBEAT_TTL_S = 60.0
DEFAULT_PRUNE_AFTER_S = 3600.0
INSTANCE_PREFIX = "instance:"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _safe_instance_id(value: str) -> str:
    """Instance ids become MongoDB field names: keep [A-Za-z0-9_-] only."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:100]
    if not cleaned:
        raise ValueError("instance_id must contain letters or digits")
    return cleaned


@dataclass(frozen=True, slots=True)
class AccountDemand:
    """Demand for one account across all live gateway replicas (what the scheduler ranks by)."""

    account_id: str
    subscribers: int = 0                 # live Subscribe streams
    reads_last_hour: int = 0             # GetInsights + GetFatigue calls, 5-min granularity
    last_read_at: datetime | None = None
    last_since: str = ""
    last_until: str = ""


@dataclass(slots=True)
class _Pending:
    reads: dict[int, int]
    last_read_at: datetime | None = None
    last_since: date | str = ""  # the dates as read (written as YYYY-MM-DD at flush, off the serving path)
    last_until: date | str = ""


class DemandTracker:
    """Aggregates reads and subscriptions of this gateway replica in memory; flushes them to ``demand``.

    ``collection``: a pymongo ``AsyncCollection`` (``store.db["demand"]``).
    ``clock``: returns an aware UTC datetime (tests inject one).
    Raises ValueError for non-positive intervals.
    """

    def __init__(self, collection, instance_id: str | None = None, flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 bucket_s: int = DEFAULT_BUCKET_S, prune_after_s: float = DEFAULT_PRUNE_AFTER_S,
                 clock: Callable[[], datetime] = _utcnow):
        if flush_interval_s <= 0 or bucket_s <= 0 or prune_after_s <= 0:
            raise ValueError("flush_interval_s, bucket_s and prune_after_s must be > 0")
        self.collection = collection
        default_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.instance_id = _safe_instance_id(instance_id or default_id)
        self.flush_interval_s = flush_interval_s
        self.bucket_s = bucket_s
        self.prune_after_s = prune_after_s
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._subscribers: dict[str, int] = {}
        self._dirty_subscribers: set[str] = set()
        self._task: asyncio.Task | None = None

    # -- the serving path (memory only) -------------------------------------------------------
    def record_read(self, account_id: str, since: date, until: date) -> None:
        """Count one read of ``account_id`` over ``since..until`` (account-zone dates).

        Raises ValueError for an empty account id or ``until < since`` (the
        gateway validates requests before calling this).
        """
        if not account_id:
            raise ValueError("account_id must not be empty")
        if until < since:
            raise ValueError(f"until {until} is before since {since}")
        now = self.clock()
        pending = self._pending.get(account_id)
        if pending is None:
            pending = self._pending[account_id] = _Pending({})
        bucket = int(now.timestamp() // self.bucket_s)
        pending.reads[bucket] = pending.reads.get(bucket, 0) + 1
        pending.last_read_at = now
        pending.last_since, pending.last_until = since, until

    def subscribed(self, account_id: str) -> None:
        """A Subscribe stream of ``account_id`` started on this replica."""
        if not account_id:
            raise ValueError("account_id must not be empty")
        self._subscribers[account_id] = self._subscribers.get(account_id, 0) + 1
        self._dirty_subscribers.add(account_id)

    def unsubscribed(self, account_id: str) -> None:
        """A Subscribe stream of ``account_id`` ended (never below zero)."""
        count = self._subscribers.get(account_id, 0) - 1
        if count > 0:
            self._subscribers[account_id] = count
        else:
            self._subscribers.pop(account_id, None)
        self._dirty_subscribers.add(account_id)

    def live_subscribers(self, account_id: str) -> int:
        return self._subscribers.get(account_id, 0)

    # -- background flushing ------------------------------------------------------------------
    async def start(self) -> None:
        """Prune long-dead replicas, write the first heartbeat, start flushing every ``flush_interval_s``."""
        try:
            await self.prune_dead_instances()
            await self.flush()
        except Exception:  # the store may be down at start-up: flushing retries later
            log.exception("demand tracker: first flush failed; retrying every %.0f s", self.flush_interval_s)
        self._task = asyncio.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving; the counts stay pending until the store is back
                metrics.demand_flushes.add(1, {"outcome": "error"})
                log.exception("demand tracker: flush failed; the counts stay pending")

    async def flush(self) -> None:
        """Write pending reads, changed subscriber counts and this replica's heartbeat.

        Pending counts are taken out first and merged back if the write fails, so
        nothing is lost and reads recorded meanwhile go to the next flush.
        """
        now = self.clock()
        pending, self._pending = self._pending, {}
        dirty, self._dirty_subscribers = self._dirty_subscribers, set()
        current = int(now.timestamp() // self.bucket_s)
        ops: list[UpdateOne] = []
        field = f"subscribers.{self.instance_id}"
        for account_id in sorted(set(pending) | dirty):
            item = pending.get(account_id)
            update: dict = {"$set": {"kind": "account"}}
            if account_id in dirty:
                update["$set"][field] = self._subscribers.get(account_id, 0)
            if item is not None and item.last_read_at is not None:
                update["$max"] = {"last_read_at": item.last_read_at}
                update["$set"].update({"last_since": str(item.last_since), "last_until": str(item.last_until)})
            ops.append(UpdateOne({"_id": account_id}, update, upsert=True))
            for bucket, count in sorted((item.reads if item else {}).items()):
                if bucket <= current - RING_SLOTS:
                    continue  # older than the ring: it would not count anyway
                slot = f"reads.{bucket % RING_SLOTS}"
                ops.append(UpdateOne({"_id": account_id, f"{slot}.b": {"$ne": bucket}},
                                     {"$set": {slot: {"b": bucket, "n": 0}}}))
                ops.append(UpdateOne({"_id": account_id, f"{slot}.b": bucket}, {"$inc": {f"{slot}.n": count}}))
        ops.append(UpdateOne({"_id": INSTANCE_PREFIX + self.instance_id},
                             {"$set": {"kind": "instance", "heartbeat": now}, "$setOnInsert": {"started_at": now}},
                             upsert=True))
        try:
            await self.collection.bulk_write(ops, ordered=True)
        except BaseException:
            self._merge_back(pending, dirty)
            raise
        metrics.demand_flushes.add(1, {"outcome": "ok"})

    def _merge_back(self, pending: dict[str, _Pending], dirty: set[str]) -> None:
        for account_id, item in pending.items():
            now_item = self._pending.get(account_id)
            if now_item is None:
                self._pending[account_id] = item
                continue
            for bucket, count in item.reads.items():
                now_item.reads[bucket] = now_item.reads.get(bucket, 0) + count
            if now_item.last_read_at is None:
                now_item.last_read_at, now_item.last_since, now_item.last_until = \
                    item.last_read_at, item.last_since, item.last_until
        self._dirty_subscribers |= dirty

    async def prune_dead_instances(self) -> int:
        """Remove replicas silent for more than ``prune_after_s`` and their subscriber counts; returns how many."""
        cutoff = self.clock() - timedelta(seconds=self.prune_after_s)
        dead = [d["_id"] async for d in self.collection.find({"kind": "instance", "heartbeat": {"$lt": cutoff}},
                                                              {"_id": 1})]
        for doc_id in dead:
            instance = doc_id[len(INSTANCE_PREFIX):]
            await self.collection.update_many({f"subscribers.{instance}": {"$exists": True}},
                                              {"$unset": {f"subscribers.{instance}": ""}})
            await self.collection.delete_one({"_id": doc_id})
        return len(dead)

    async def close(self) -> None:
        """Stop flushing, write what is pending, and withdraw this replica's subscribers and heartbeat."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        self._subscribers.clear()
        try:
            await self.flush()
            field = f"subscribers.{self.instance_id}"
            await self.collection.update_many({field: {"$exists": True}}, {"$unset": {field: ""}})
            await self.collection.delete_one({"_id": INSTANCE_PREFIX + self.instance_id})
        except Exception:
            log.exception("demand tracker: final flush failed")


async def load_demand(collection, now: datetime | None = None, heartbeat_ttl_s: float = DEFAULT_HEARTBEAT_TTL_S,
                      bucket_s: int = DEFAULT_BUCKET_S) -> dict[str, AccountDemand]:
    """Demand per account id from ``demand``: subscribers of replicas alive within ``heartbeat_ttl_s``,
    reads of the last ``RING_SLOTS`` buckets, last read time and range. Accounts never read are absent.
    """
    now = now or _utcnow()
    alive_after = now - timedelta(seconds=heartbeat_ttl_s)
    alive: set[str] = set()
    accounts: list[dict] = []
    async for doc in collection.find({}):
        if doc.get("kind") == "instance":
            heartbeat = doc.get("heartbeat")
            if heartbeat is not None and heartbeat.tzinfo is None:
                heartbeat = heartbeat.replace(tzinfo=timezone.utc)
            if heartbeat is not None and heartbeat >= alive_after:
                alive.add(str(doc["_id"])[len(INSTANCE_PREFIX):])
        else:
            accounts.append(doc)
    current = int(now.timestamp() // bucket_s)
    out: dict[str, AccountDemand] = {}
    for doc in accounts:
        subs = sum(max(0, int(n)) for inst, n in (doc.get("subscribers") or {}).items() if inst in alive)
        reads = sum(int(slot.get("n", 0)) for slot in (doc.get("reads") or {}).values()
                    if isinstance(slot, dict) and current - RING_SLOTS < int(slot.get("b", -1)) <= current)
        last = doc.get("last_read_at")
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        account_id = str(doc["_id"])
        out[account_id] = AccountDemand(account_id, subs, reads, last, doc.get("last_since", ""),
                                        doc.get("last_until", ""))
    return out

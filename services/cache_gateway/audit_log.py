"""The audit log of every access (DESIGN.md R9): kept 30 days by a TTL index.

An entry: ``at`` (UTC), ``subject`` (the JWT ``sub``), ``method`` (gRPC
method name), ``account_id``, ``since``/``until``, ``status`` (gRPC status
name). Never a token, a secret or a row of data. Entries are queued and
written in batches by a background task, so the serving path never waits on
the audit store.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from pymongo import ASCENDING
from services.cache_gateway import metrics

log = logging.getLogger(__name__)

RETENTION_DAYS = 30
_WRITTEN, _DROPPED = {"outcome": "written"}, {"outcome": "dropped"}


class AuditLog:
    def __init__(self, collection, retention_days: int = RETENTION_DAYS, max_queue: int = 100_000,
                 batch_window_s: float = 0.5):
        self.collection = collection
        self.batch_window_s = batch_window_s  # gather entries this long, then write them in one insert
        self.retention_days = retention_days
        self._queue: asyncio.Queue[dict] = asyncio.Queue(max_queue)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.collection.create_index([("at", ASCENDING)], name="ttl_at",
                                           expireAfterSeconds=self.retention_days * 86400)
        self._task = asyncio.create_task(self._flush_forever())

    def record(self, subject: str, method: str, account_id: str, status: str, since: str = "", until: str = "") -> None:
        entry = {"at": datetime.now(timezone.utc), "subject": subject, "method": method,
                 "account_id": account_id, "since": since, "until": until, "status": status}
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            metrics.audit_entries.add(1, _DROPPED)
            log.error("audit queue full: entry dropped (adfatigue.audit.entries{outcome=dropped})")

    async def _flush_once(self, wait: bool = True) -> None:
        batch = [await self._queue.get()]
        if wait and self.batch_window_s > 0:
            await asyncio.sleep(self.batch_window_s)  # one write per window, not one per request
        while not self._queue.empty() and len(batch) < 1000:
            batch.append(self._queue.get_nowait())
        try:
            await self.collection.insert_many(batch, ordered=False)
        except Exception:  # keep serving; the failure is logged without the entries' content
            metrics.audit_entries.add(len(batch), _DROPPED)
            log.exception("writing %d audit entries failed", len(batch))
        else:
            metrics.audit_entries.add(len(batch), _WRITTEN)

    async def _flush_forever(self) -> None:
        while True:
            await self._flush_once()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task:
            self._task.cancel()
        while not self._queue.empty():
            await self._flush_once(wait=False)

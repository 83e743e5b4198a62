"""The audit log of every access (DESIGN.md R9): one MongoDB collection, kept 30 days by a TTL index.

Every service that acts for a caller writes to it: the gateway (every RPC),
the scheduler (GetStatus, RunNow), the BFF, ``token_admin``. An entry:

    at          UTC datetime (the TTL index ``ttl_at`` removes it RETENTION_DAYS later)
    service     "cache_gateway", "scheduler", "token_admin", ...
    subject     the caller (``Principal.caller``: JWT ``sub``, or ``bff>alice`` for a user the BFF acts for)
    method      gRPC method name (``Subscribe`` twice: ``phase`` "start" and "end")
    account_id  numeric id as sent (may be ""), ``since`` / ``until``: the range as sent
    status      gRPC status name (``OK``, ``PERMISSION_DENIED``, ... ``CANCELLED`` when a stream's client left)
    + extras    e.g. ``phase``, ``events`` (events a Subscribe delivered)
    count       accesses this entry stands for: identical accesses (every field above equal) within one
                batch window (``batch_window_s``, 0.5 s) are stored as one entry; ``at`` is the first,
    last_at     the last of them

Never a token, a secret or a row of data; caller-supplied strings are cut to
200 characters. Entries are queued and written in batches by one background
task, so the serving path does not wait on each insert; a page polling the same widget stores one
entry per window with its ``count`` instead of one per call (an L1 hit is otherwise dominated by
encoding its audit entry). Nothing is dropped
silently: when the queue is full ``record`` waits for room (back-pressure);
a failed insert is retried (with back-off, duplicates ignored) until it
succeeds. ``dropped`` counts entries that could not be written before
``close`` gave up (tests require 0); each such loss is logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from datetime import datetime, timezone

import grpc
from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, PyMongoError

from services.common.auth import Principal
from services.common.error_boundary import classify
from services.common.input_echo import MAX_ECHO_CHARS
from services.common.telemetry import meter

_METER = meter(__name__)
_WRITTEN, _DROPPED = {"outcome": "written"}, {"outcome": "dropped"}
#: the counts above as OpenTelemetry instruments (alert AuditEntriesDropped: dropped must stay 0)
_ENTRIES = _METER.create_counter("adfatigue.audit.entries", unit="{entry}",
                                 description="Audit entries stored, or dropped (must stay 0)")
_FAILURES = _METER.create_counter("adfatigue.audit.insert_failures", unit="{insert}",
                                  description="Audit batch inserts that failed and were retried")
log = logging.getLogger(__name__)

RETENTION_DAYS = 30
COLLECTION = "audit"
_DUPLICATE_KEY = 11000

#: The caller of the RPC being served (set by the service once it authenticated the call).
current_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("audit_caller", default=None)


def _cut(value) -> str:
    text = str(value)
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…"


class AuditLog:
    """``collection``: a pymongo async collection (``db["audit"]``); ``service``: who writes the entries."""

    def __init__(self, collection, retention_days: int = RETENTION_DAYS, max_queue: int = 10_000,
                 batch_window_s: float = 0.5, service: str = "cache_gateway", retry_max_s: float = 5.0):
        self.collection = collection
        self.service = service
        self.batch_window_s = batch_window_s  # gather entries this long, then write them in one insert
        self.retention_days = retention_days
        self.retry_max_s = retry_max_s
        self._queue: asyncio.Queue[tuple] = asyncio.Queue(max_queue)  # accesses as ``record`` queues them
        self._task: asyncio.Task | None = None
        self._pending: list = []  # taken from the queue (accesses, then entries), not yet stored
        self.written = 0
        self.dropped = 0
        self.failed_inserts = 0

    async def start(self) -> None:
        await self.collection.create_index([("at", ASCENDING)], name="ttl_at",
                                           expireAfterSeconds=self.retention_days * 86400)
        self._task = asyncio.create_task(self._flush_forever(), name="audit-flush")

    async def record(self, subject: str, method: str, account_id: str, status: str, since: str = "",
                     until: str = "", **extra) -> None:
        """Queue one entry; waits while the queue is full (back-pressure), never drops it.

        What is queued is the raw access (a tuple: UTC seconds, the fields as given, ``extra``'s items); cutting
        caller-supplied strings and building the stored document happen at flush, off the serving path."""
        access = (time.time(), subject, method, account_id, status, since, until,
                  tuple(extra.items()) if extra else ())
        try:
            self._queue.put_nowait(access)
        except asyncio.QueueFull:
            await self._queue.put(access)

    def _document(self, access: tuple) -> dict:
        """The stored entry of one queued access (module docstring)."""
        at, subject, method, account_id, status, since, until, extra = access
        return {"at": datetime.fromtimestamp(at, timezone.utc), "service": self.service, "subject": _cut(subject),
                "method": method, "account_id": _cut(account_id), "since": _cut(since), "until": _cut(until),
                "status": status, **dict(extra)}

    def _coalesce(self, accesses: list[tuple]) -> list[dict]:
        """Identical accesses (every field but the time) as one entry each: the first one's ``at``, ``count`` and
        ``last_at``; order of first appearance kept."""
        merged: dict[tuple, dict] = {}
        for access in accesses:
            key = access[1:]
            try:
                first = merged.get(key)
            except TypeError:  # an unhashable extra: kept as its own entry
                key = (id(access),)
                first = None
            if first is None:
                entry = merged[key] = self._document(access)
                entry["count"], entry["last_at"] = 1, entry["at"]
            else:
                first["count"] += 1
                first["last_at"] = datetime.fromtimestamp(access[0], timezone.utc)
        return list(merged.values())

    async def _insert(self, batch: list[dict]) -> None:
        """Store ``batch``, retrying until it is stored; entries already stored by an earlier try are skipped."""
        delay = 0.05
        while True:
            try:
                await self.collection.insert_many(batch, ordered=False)
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if errors and all(e.get("code") == _DUPLICATE_KEY for e in errors):
                    return  # stored by the try that seemed to fail
                failed = {e.get("index") for e in errors if e.get("code") != _DUPLICATE_KEY}
                batch = [d for i, d in enumerate(batch) if i in failed] or batch
                self.failed_inserts += 1
                _FAILURES.add(1)
                log.warning("writing %d audit entries failed (%s); retrying", len(batch), type(exc).__name__)
            except PyMongoError as exc:
                self.failed_inserts += 1
                _FAILURES.add(1)
                log.warning("writing %d audit entries failed (%s); retrying in %.2f s", len(batch),
                            type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(self.retry_max_s, delay * 2)

    async def _flush_once(self, wait: bool = True) -> None:
        self._pending = [await self._queue.get()]
        if wait and self.batch_window_s > 0:
            await asyncio.sleep(self.batch_window_s)  # one write per window, not one per request
        while not self._queue.empty() and len(self._pending) < 10_000:
            self._pending.append(self._queue.get_nowait())
        accesses = len(self._pending)
        self._pending = self._coalesce(self._pending)
        for entry in self._pending:  # ids given once per stored entry (not per access), before the first try
            entry.setdefault("_id", ObjectId())
        await self._insert(self._pending)
        self.written += accesses
        _ENTRIES.add(accesses, _WRITTEN)
        self._pending = []

    async def _flush_forever(self) -> None:
        while True:
            await self._flush_once()

    async def flush(self) -> None:
        """Wait until every entry queued so far is stored (tests, shutdown)."""
        while not self._queue.empty() or self._pending:
            await asyncio.sleep(0.01)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Store what is queued (for up to ``timeout_s``), then stop; entries left are counted in ``dropped``."""
        if self._task:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = self._pending + [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        self._pending = []
        lost = sum(e.get("count", 1) if isinstance(e, dict) else 1 for e in left)
        if lost:
            self.dropped += lost
            _ENTRIES.add(lost, _DROPPED)
            log.error("audit store unreachable at shutdown: %d audit entries were not stored", lost)


def status_of(exc: BaseException | None, context) -> str:
    """The gRPC status name a call ended with (``exc``: what ended it, None when it returned)."""
    if exc is None:
        return "OK"
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    code = context.code() if context is not None else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    failure = classify(exc) if isinstance(exc, Exception) else None
    return failure.code.name if failure else "UNKNOWN"


class audit_call:
    """``async with audit_call(audit, name, request, context, **extra):`` — one audit entry for what runs inside:
    the caller (``current_caller``), account, range, final status. (A class, not ``contextlib``'s generator-based
    manager: the serving path makes one per call.)"""

    __slots__ = ("audit", "name", "request", "context", "extra")

    def __init__(self, audit: AuditLog, name: str, request, context, **extra) -> None:
        self.audit, self.name, self.request, self.context, self.extra = audit, name, request, context, extra

    async def __aenter__(self) -> None:
        current_caller.set(None)

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        principal = current_caller.get()
        request = self.request
        await self.audit.record(principal.caller if principal else "", self.name, getattr(request, "account_id", ""),
                                status_of(exc, self.context), getattr(request, "since", ""),
                                getattr(request, "until", ""), **self.extra)
        return False


def audited(method):
    """Audit every call of a unary servicer method (``self.audit``; see ``audit_call``)."""
    name = method.__name__

    @functools.wraps(method)
    async def handler(self, request, context):
        async with audit_call(self.audit, name, request, context):
            return await method(self, request, context)
    return handler

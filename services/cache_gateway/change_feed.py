"""One MongoDB change stream per gateway process: the source of every change (R5, issue 5).

It watches ``insights`` (row writes, each tagged with the version that wrote
it), ``accounts`` (a writer's commit, ``$max version``) and ``scores`` (a
fatigue result stored for an insights version; released at once) and
``freshness`` (a day marked fetched: ``freshness_listeners(account_id, day,
fetched_at, attribution)``, so the gateway's in-memory replicas follow per-day freshness
too). Row events are
buffered per account and version and released as one ``Change`` when the
account's commit arrives, so a subscriber sees each committed version whole.
The stream's position is recorded from the moment it first reaches the store
(its operation time, then the resume token the server reports with every
batch, events or not); after a store connection loss the stream is reopened
from there (nothing is lost, even before the first event); when the token can no longer be resumed, listeners are told
to resynchronise from L2 (``on_resync``).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable

from pymongo.errors import OperationFailure, PyMongoError

from services.cache_gateway.row_document import CorruptDocument, decode_row
from services.common.l2_schema import check
from services.common.insight_row import InsightRow
from services.cache_gateway import metrics

log = logging.getLogger(__name__)

#: Server error codes meaning the resume point is gone (ChangeStreamHistoryLost, InvalidResumeToken...).
_HISTORY_LOST = {280, 286, 260}


@dataclass(slots=True)
class Change:
    """Everything one committed version changed for one account."""

    account_id: str
    version: int
    rows: list[InsightRow] = field(default_factory=list)
    removed: list[tuple[str, date]] = field(default_factory=list)  # (ad_id, date)
    committed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # serialized FatigueResult with the first and last day of the ad's history it scored
    scores: list[tuple[bytes, date, date]] = field(default_factory=list)
    # serialized SubscribeEvent per (range, fields), shared by every subscriber asking the same
    encoded: dict = field(default_factory=dict, compare=False, repr=False)
    # a row of this version could not be decoded (not streamed): whoever mirrors the data must re-read it
    incomplete: bool = False

    def dates(self) -> set[date]:
        return {r.date_start for r in self.rows} | {d for _, d in self.removed}

    def touches(self, since: date, until: date) -> bool:
        """Whether a subscriber of [since, until] should hear of this change."""
        return self.toucher()(since, until)

    def toucher(self) -> Callable[[date, date], bool]:
        """``touches`` for many subscribers of one committed change: its dates sorted once, each range then
        checked by bisection (a fan-out to N subscribers built the set of the change's dates N times)."""
        days = sorted(self.dates())
        spans = [(first, last) for _, first, last in self.scores]

        def touches(since: date, until: date) -> bool:
            i = bisect_left(days, since)
            return (i < len(days) and days[i] <= until) or any(first <= until and since <= last
                                                               for first, last in spans)
        return touches


class ChangeFeed:
    """Runs the stream; calls ``on_change(Change)`` and ``on_resync()`` listeners in order."""

    def __init__(self, db, retry_s: float = 0.5):
        self.db = db
        self.retry_s = retry_s
        self.resume_token = None
        self.start_time = None  # the store's operation time when the feed first opened (bson Timestamp)
        self.listeners: list[Callable[[Change], None]] = []
        self.resync_listeners: list[Callable[[], None]] = []
        # (account_id, day, fetched_at, attribution: the comma-joined setting the day was fetched with)
        self.freshness_listeners: list[Callable[[str, date, datetime, str], None]] = []
        self._pending: dict[str, dict[int, Change]] = defaultdict(dict)
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()
        self.connected = False  # a stream is open right now
        self.reconnects = 0     # also exported as adfatigue.change_feed.reconnects

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        pipeline = [{"$match": {"ns.coll": {"$in": ["insights", "accounts", "scores", "freshness"]},
                                "operationType": {"$in": ["insert", "update", "replace"]}}}]
        while True:
            try:
                async with await self.db.watch(pipeline, full_document="updateLookup", max_await_time_ms=1000,
                                               **await self._position()) as stream:
                    # the position is known from the open on (postBatchResumeToken), not from the first event
                    self.resume_token = stream.resume_token or self.resume_token
                    self.ready.set()
                    self.connected = True
                    while True:
                        event = await stream.try_next()
                        if event is not None:
                            self._handle(event)
                        self.resume_token = stream.resume_token or self.resume_token
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in _HISTORY_LOST and self.resume_token is not None:
                    log.warning("change stream history lost (%s): resynchronising listeners from L2", exc.code)
                    self.resume_token = self.start_time = None
                    self._pending.clear()
                    for listener in self.resync_listeners:
                        listener()
                else:
                    log.warning("change stream failed: %s; reopening", exc)
            except PyMongoError as exc:
                log.warning("change stream lost its connection (%s); resuming", type(exc).__name__)
            self.connected = False
            self.reconnects += 1
            metrics.change_feed_reconnects.add(1)
            await asyncio.sleep(self.retry_s)

    async def _position(self) -> dict:
        """Where the stream (re)opens: after the last recorded resume token, else at the operation time
        recorded when the feed first reached the store, so an outage before the first event loses nothing."""
        if self.resume_token is not None:
            return {"resume_after": self.resume_token}
        if self.start_time is None:
            self.start_time = (await self.db.command("ping")).get("operationTime")
        return {"start_at_operation_time": self.start_time} if self.start_time is not None else {}

    def _handle(self, event: dict) -> None:
        doc = event.get("fullDocument")
        if not doc:
            return
        reason = check(event["ns"]["coll"], doc)
        if reason is not None:  # readers quarantine it and fetch its days again; nothing malformed is streamed
            account_id, version = doc.get("account_id"), doc.get("version")
            if event["ns"]["coll"] == "insights" and isinstance(account_id, str) and isinstance(version, int):
                # the version is released without the row: mirrors of the data must re-read it
                self._pending[account_id].setdefault(version, Change(account_id, version)).incomplete = True
            log.warning("%s document %r failed the schema check (%s); not streamed", event["ns"]["coll"],
                        doc.get("_id"), reason)
            return
        if event["ns"]["coll"] == "scores":
            try:
                score = (bytes(doc["result"]), date.fromisoformat(doc["first"]), date.fromisoformat(doc["last"]))
            except (KeyError, TypeError, ValueError):
                return
            change = Change(doc["account_id"], doc["insights_version"], scores=[score])
            for listener in self.listeners:
                listener(change)
            return
        if event["ns"]["coll"] == "freshness":
            try:
                account_id, day, fetched_at = doc["account_id"], date.fromisoformat(doc["date"]), doc["fetched_at"]
            except (KeyError, TypeError, ValueError):
                return
            for listener in self.freshness_listeners:
                listener(account_id, day, fetched_at, doc.get("attribution", ""))
            return
        if event["ns"]["coll"] == "insights":
            version = doc.get("version")
            if not isinstance(version, int):
                return
            change = self._pending[doc["account_id"]].setdefault(version, Change(doc["account_id"], version))
            if doc.get("deleted"):
                change.removed.append((doc["ad_id"], date.fromisoformat(doc["date"])))
            else:
                try:
                    change.rows.append(decode_row(doc))
                except CorruptDocument as exc:
                    change.incomplete = True
                    log.warning("%s; not streamed", exc)
            return
        committed = doc.get("version", 0)
        pending = self._pending.get(doc["_id"])
        if not pending:
            return
        for version in sorted(v for v in pending if v <= committed):
            change = pending.pop(version)
            change.committed_at = datetime.now(timezone.utc)
            for listener in self.listeners:
                listener(change)

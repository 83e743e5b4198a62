"""L2: MongoDB, the source of truth the gateway reads and writes (DESIGN.md R2).

Collections (database ``adfatigue`` by default):

- ``insights``: one document per account x ad x day, ``_id`` =
  ``"{account_id}:{ad_id}:{date}"`` and a unique index on
  ``(account_id, ad_id, date)``; ``row`` (the values, see row_document),
  ``content_hash``, ``fetched_at``, ``version`` (the account version at which
  the row last changed) and ``deleted`` (a tombstone when a re-read no longer
  has the row, so subscribers can be told).
- ``freshness``: one document per account x day that was fetched (rows or
  not): ``fetched_at``.
- ``accounts``: ``version`` (last committed change), ``seq`` (last claimed
  version), ``timezone``, ``currency``.

Writes are idempotent upserts guarded by ``fetched_at``: an older fetch can
never overwrite a newer one. A batch of changes claims a version with
``$inc seq``, writes its rows tagged with it, then commits with
``$max version`` — no multi-document transaction. Readers take a consistent
snapshot by reading the account document before and after the rows and
retrying while a write is in flight (``seq > version``) or the version moved.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Sequence

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.cache_gateway.row_document import CorruptDocument, content_hash, decode_row, encode_row
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from services.cache_gateway import metrics

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    version: int = 0
    seq: int = 0
    timezone: str = ""
    currency: str = ""


@dataclass(slots=True)
class Snapshot:
    """A consistent read of one account's rows in a range.

    ``version`` is the range's version: the highest account version at which
    any row of the range (tombstones included) last changed, so it moves only
    when this range's data moves, and equal versions mean equal data.
    """

    account_id: str
    version: int
    rows: list[InsightRow]
    fetched_at: dict[date, datetime]
    timezone: str = ""
    quarantined: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteResult:
    version: int          # account version after the write
    rows_changed: int     # rows inserted, updated or tombstoned
    changed_ads: frozenset[str] = frozenset()  # ad ids with a changed row


def _day_key(d: date) -> str:
    return d.isoformat()


class InsightsStore:
    """Async access to the L2 collections. ``await ensure_indexes()`` once at start-up."""

    def __init__(self, client: AsyncMongoClient, database: str = "adfatigue", read_retry_s: float = 2.0):
        self.client = client
        self.db = client[database]
        self.insights = self.db["insights"]
        self.freshness = self.db["freshness"]
        self.accounts = self.db["accounts"]
        self.quarantine = self.db["quarantine"]
        self.scores = self.db["scores"]
        self.read_retry_s = read_retry_s

    async def ensure_indexes(self) -> None:
        await self.insights.create_index(
            [("account_id", ASCENDING), ("ad_id", ASCENDING), ("date", ASCENDING)], unique=True, name="row_key"
        )
        await self.insights.create_index([("account_id", ASCENDING), ("date", ASCENDING)], name="account_date")
        await self.insights.create_index([("account_id", ASCENDING), ("version", ASCENDING)], name="account_version")
        await self.freshness.create_index([("account_id", ASCENDING), ("date", ASCENDING)], unique=True, name="day_key")

    # -- accounts -----------------------------------------------------------------------------
    async def account(self, account_id: str) -> AccountState | None:
        doc = await self.accounts.find_one({"_id": account_id})
        if doc is None:
            return None
        return AccountState(account_id, doc.get("version", 0), doc.get("seq", 0),
                            doc.get("timezone", ""), doc.get("currency", ""))

    async def set_account_info(self, account_id: str, timezone: str, currency: str) -> None:
        update = {k: v for k, v in (("timezone", timezone), ("currency", currency)) if v}
        await self._ensure_account(account_id)
        await self.accounts.update_one({"_id": account_id}, {"$set": update})

    async def _ensure_account(self, account_id: str) -> None:
        """Create the account document if absent (concurrent creators: one wins, the rest see it)."""
        try:
            await self.accounts.update_one(
                {"_id": account_id}, {"$setOnInsert": {"version": 0, "seq": 0}}, upsert=True
            )
        except DuplicateKeyError:
            pass

    async def list_accounts(self) -> list[AccountState]:
        return [AccountState(d["_id"], d.get("version", 0), d.get("seq", 0), d.get("timezone", ""), d.get("currency", ""))
                async for d in self.accounts.find({})]

    # -- reads --------------------------------------------------------------------------------
    async def fetched_at(self, account_id: str, days: DateRange) -> dict[date, datetime]:
        """When each day of ``days`` was last fetched (days never fetched are absent)."""
        cursor = self.freshness.find(
            {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            {"date": 1, "fetched_at": 1},
        )
        return {date.fromisoformat(d["date"]): d["fetched_at"] async for d in cursor}

    async def range_version(self, account_id: str, days: DateRange) -> int:
        """The range's version (see Snapshot.version) without reading its rows."""
        doc = await self.insights.find_one(
            {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            {"version": 1}, sort=[("version", -1)])
        return doc.get("version", 0) if doc else 0

    async def _consistent(self, account_id: str, read):
        """Run ``read()`` until the account's version and claim did not move around it (no write in
        flight); after ``read_retry_s`` the last read is returned as is. Returns (result, account state)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_retry_s
        while True:
            before = await self.account(account_id) or AccountState(account_id)
            if before.seq > before.version and loop.time() < deadline:
                await asyncio.sleep(0.01)
                continue
            result = await read()
            after = await self.account(account_id) or AccountState(account_id)
            if (after.version, after.seq) == (before.version, before.seq) or loop.time() >= deadline:
                return result, after

    async def snapshot(self, account_id: str, days: DateRange, fetched: dict[date, datetime] | None = None) -> Snapshot:
        """A consistent snapshot of the range: rows ordered by (date, ad_id), at one version.

        ``fetched``: the range's fetch times when the caller has just read them
        (saves a round trip); read here otherwise. Corrupt documents are moved
        to ``quarantine`` and their day's freshness dropped, so the next plan
        re-fetches them (R11).
        """
        async def read():
            docs = [d async for d in self.insights.find(
                {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            ).sort([("date", ASCENDING), ("ad_id", ASCENDING)])]
            return docs, dict(fetched) if fetched is not None else await self.fetched_at(account_id, days)

        (docs, fetched), after = await self._consistent(account_id, read)
        version = max((d.get("version", 0) for d in docs), default=0)
        rows, bad = [], []
        for doc in docs:
            if doc.get("deleted"):
                continue
            try:
                rows.append(decode_row(doc))
            except CorruptDocument as exc:
                log.warning("%s; quarantined, the day will be re-fetched", exc)
                bad.append(doc)
        if bad:
            await self._quarantine(bad)
            metrics.quarantined.add(len(bad))
            for doc in bad:
                fetched.pop(date.fromisoformat(doc["date"]), None)
        return Snapshot(account_id, version, rows, fetched, after.timezone, [d["_id"] for d in bad])

    async def _quarantine(self, docs: Sequence[dict]) -> None:
        for doc in docs:
            await self.quarantine.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            await self.insights.delete_one({"_id": doc["_id"], "content_hash": doc.get("content_hash")})
            await self.freshness.delete_one({"account_id": doc["account_id"], "date": doc["date"]})

    async def ad_series(self, account_id: str, ad_ids: Iterable[str]) -> tuple[int, dict[str, list[InsightRow]]]:
        """Every stored day of each ad, read consistently: (version of what was read, rows per ad by date)."""
        ids = sorted(set(ad_ids))

        async def read():
            return [d async for d in self.insights.find({"account_id": account_id, "ad_id": {"$in": ids}})
                    .sort([("ad_id", ASCENDING), ("date", ASCENDING)])]

        docs, _ = await self._consistent(account_id, read)
        series: dict[str, list[InsightRow]] = {ad: [] for ad in ids}
        for doc in docs:
            if not doc.get("deleted"):
                try:
                    series[doc["ad_id"]].append(decode_row(doc))
                except CorruptDocument as exc:
                    log.warning("%s; left out of scoring", exc)
        return max((d.get("version", 0) for d in docs), default=0), series

    async def save_score(self, account_id: str, ad_id: str, insights_version: int, result: bytes,
                         first: date, last: date) -> bool:
        """Store an ad's fatigue result computed from ``insights_version``; a newer stored one wins."""
        try:
            update = await self.scores.update_one(
                {"_id": f"{account_id}:{ad_id}", "insights_version": {"$not": {"$gte": insights_version}}},
                {"$set": {"account_id": account_id, "ad_id": ad_id, "insights_version": insights_version,
                          "result": result, "first": _day_key(first), "last": _day_key(last)}},
                upsert=True,
            )
            return bool(update.upserted_id or update.modified_count)
        except DuplicateKeyError:
            return False

    async def stored_scores(self, account_id: str, ad_ids: Iterable[str]) -> list[dict]:
        return [d async for d in self.scores.find({"account_id": account_id, "ad_id": {"$in": sorted(set(ad_ids))}})
                .sort("ad_id", ASCENDING)]

    # -- writes -------------------------------------------------------------------------------
    async def apply_fetch(
        self, account_id: str, days: DateRange, rows: Iterable[InsightRow], fetched_at: datetime
    ) -> WriteResult:
        """Upsert what one fetch of ``days`` returned, read at ``fetched_at``.

        Rows that did not change keep their version; rows the fetch no longer
        has become tombstones; rows stored from a newer fetch are left alone.
        Every day of ``days`` is marked fetched (``$max`` on fetched_at).
        Raises ValueError when a row lies outside ``days`` or belongs to another account.
        """
        incoming: dict[str, tuple[InsightRow, dict, str]] = {}
        for row in rows:
            if row.account_id != account_id or not (days.since <= row.date_start <= days.until):
                raise ValueError(f"row {row.key} is outside account {account_id} range {days}")
            body = encode_row(row)
            incoming[f"{account_id}:{row.ad_id}:{_day_key(row.date_start)}"] = (row, body, content_hash(body))
        existing = {d["_id"]: d async for d in self.insights.find(
            {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            {"content_hash": 1, "fetched_at": 1, "deleted": 1},
        )}

        def newer_stored(doc: dict | None) -> bool:
            return doc is not None and doc.get("fetched_at") is not None and doc["fetched_at"] > fetched_at

        changed = [k for k, (_, _, h) in incoming.items()
                   if not newer_stored(existing.get(k))
                   and (k not in existing or existing[k].get("content_hash") != h or existing[k].get("deleted"))]
        gone = [k for k, doc in existing.items()
                if k not in incoming and not doc.get("deleted") and not newer_stored(doc)]

        version = (await self.account(account_id) or AccountState(account_id)).version
        if changed or gone:
            await self._ensure_account(account_id)
            claimed = await self.accounts.find_one_and_update(
                {"_id": account_id}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER,
            )
            version = claimed["seq"]
            # "stored fetched_at is missing or older": $not/$gte keeps the _id index in use (an $or does not)
            older_than_this_fetch = {"fetched_at": {"$not": {"$gte": fetched_at}}}
            try:
                ops = []
                for key in changed:
                    row, body, digest = incoming[key]
                    ops.append(UpdateOne(
                        {"_id": key, **older_than_this_fetch},
                        {"$set": {"account_id": account_id, "ad_id": row.ad_id, "date": _day_key(row.date_start),
                                  "row": body, "content_hash": digest, "fetched_at": fetched_at,
                                  "version": version, "deleted": False}},
                        upsert=True,
                    ))
                for key in gone:
                    ops.append(UpdateOne(
                        {"_id": key, **older_than_this_fetch},
                        {"$set": {"deleted": True, "fetched_at": fetched_at, "version": version}},
                    ))
                await self._bulk(self.insights, ops)
            finally:
                await self.accounts.update_one({"_id": account_id}, {"$max": {"version": version}})
        await self._bulk(self.freshness, [
            UpdateOne({"_id": f"{account_id}:{_day_key(d)}"},
                      {"$max": {"fetched_at": fetched_at},
                       "$setOnInsert": {"account_id": account_id, "date": _day_key(d)}}, upsert=True)
            for d in days.days()
        ])
        changed_ads = frozenset(k.split(":")[1] for k in (*changed, *gone))
        return WriteResult(version=version, rows_changed=len(changed) + len(gone), changed_ads=changed_ads)

    @staticmethod
    async def _bulk(collection, ops: list) -> None:
        """Unordered bulk write; a duplicate key means a newer fetch won the race, which is fine."""
        if not ops:
            return
        try:
            await collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            real = [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
            if real:
                raise
        except DuplicateKeyError:
            pass


async def changes_since(store: InsightsStore, account_id: str, days: DateRange,
                        from_version: int) -> tuple[int, list[InsightRow], list[tuple[str, date]]]:
    """Rows of the range that changed after ``from_version``: (latest version, rows, removed (ad_id, date)).

    Tombstones are kept, so every change since any version is still known.
    """
    docs = [d async for d in store.insights.find(
        {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)},
         "version": {"$gt": from_version}},
    ).sort([("date", ASCENDING), ("ad_id", ASCENDING)])]
    rows, removed = [], []
    for doc in docs:
        if doc.get("deleted"):
            removed.append((doc["ad_id"], date.fromisoformat(doc["date"])))
        else:
            try:
                rows.append(decode_row(doc))
            except CorruptDocument as exc:
                log.warning("%s; skipped in change replay", exc)
    return max((d["version"] for d in docs), default=from_version), rows, removed

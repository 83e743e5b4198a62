"""L2: MongoDB, the source of truth the gateway reads and writes (DESIGN.md R2).

Collections (database ``adfatigue`` by default):

- ``insights``: one document per account x ad x day, ``_id`` =
  ``"{account_id}:{ad_id}:{date}"`` and a unique index on
  ``(account_id, ad_id, date)``; ``row`` (the values, see row_document),
  ``content_hash``, ``fetched_at``, ``version`` (the account version at which
  the row last changed) and ``deleted`` (a tombstone when a re-read no longer
  has the row, so subscribers can be told).
- ``freshness``: one document per account x day that was fetched (rows or
  not): ``fetched_at``, ``attribution`` and ``row_count`` (the insights
  documents the day held, tombstones included, when it was marked fetched).
- ``accounts``: ``version`` (last committed change), ``seq`` (last claimed
  version), ``timezone``, ``currency``.

Writes are idempotent upserts guarded by ``fetched_at``: an older fetch can
never overwrite a newer one. A batch of changes claims a version with
``$inc seq`` (recording ``claimed_at``), writes its rows tagged with it, then
commits with ``$max version`` — no multi-document transaction. Readers take a
consistent snapshot by reading the account document before and after the rows
and retrying while a write is in flight (``seq > version``) or the version moved.

Rows that leave the range queries (issue 16): a row whose ``account_id`` or
``date`` is edited by hand, or that is deleted, no longer matches the queries
on ``(account_id, date)``, so no schema check ever sees it. The day's
``row_count`` catches it: a read (``snapshot``, ``account_image``) that finds
fewer documents of a fetched day than recorded treats the day as corrupt —
looks the day's documents up by ``_id`` (which still names the account and
day), quarantines those failing the check (their ``_id`` no longer matches),
quarantines the freshness record when rows are missing altogether, and drops
the day's freshness, so the day is answered stale and fetched again, never
FRESH with a row missing. A row moved to *another valid* account or day is
read there and fails the ``_id`` check, so it is never served in the wrong
place, and both its places are fetched again. ``row_count`` only grows
(``$max``) while the day's record lives: documents leave a day only by
quarantine, which drops the record too. Records written before ``row_count``
existed are not checked until their day is fetched again.

Write protocol when a writer dies or its commit fails (issue 16): its rows
carry the version it claimed, and its days' freshness was never marked
(freshness is written only after the commit). Such a claim is *abandoned*:
a reader that still sees it after ``read_retry_s`` (or whose claim is older
than that) gets a ``Snapshot`` with ``pending=True`` — the gateway answers it
stale, never FRESH, and repairs in the background; the account's next
writer, which holds the account's fetch lock and so knows no other write is
in flight, repairs first (``repair_version``: commit ``$max version`` to the
claim, reporting the abandoned rows as changed so they are rescored and
streamed). Nothing written is lost, and the commit is an ordinary
``accounts`` update, so the change feed releases the abandoned rows to
subscribers as one CHANGE of that version.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable, Sequence

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.cache_gateway.row_document import CorruptDocument, content_hash, decode_row, encode_row
from services.common.l2_schema import check, quarantine_record
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
    claimed_at: datetime | None = None  # when ``seq`` was last claimed
    name: str = ""  # the provider's name of the ad account

    @property
    def pending(self) -> bool:
        """A claimed version is not committed yet (a write in flight, or one that died)."""
        return self.seq > self.version


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
    pending: bool = False  # a write was still uncommitted after the read's retries (see the module doc)


@dataclass(frozen=True, slots=True)
class WriteResult:
    version: int          # account version after the write
    rows_changed: int     # rows inserted, updated or tombstoned
    changed_ads: frozenset[str] = frozenset()  # ad ids with a changed row


@dataclass(frozen=True, slots=True)
class AccountImage:
    """One consistent read of everything stored for an account (see ``InsightsStore.account_image``)."""

    state: AccountState                                           # version = last committed change
    entries: list[tuple[str, date, int, InsightRow | None]]       # (ad_id, day, version, row; None = tombstone)
    fetched_at: dict[date, datetime]                              # per-day freshness
    scores: list[dict]                                            # stored fatigue results (``scores`` documents)
    attribution: dict[date, str] = field(default_factory=dict)    # per day: the setting it was last fetched with


def _account_state(doc: dict) -> AccountState:
    return AccountState(doc["_id"], doc.get("version", 0), doc.get("seq", 0), doc.get("timezone", ""),
                        doc.get("currency", ""), doc.get("claimed_at"), doc.get("name", ""))


def _places_of(doc: dict) -> set[tuple[str, date]]:
    """The (account, day) an insights document claims to be for, by its fields and by its ``_id``: both when
    they disagree (a row moved by hand is missing from one place and misplaced in the other)."""
    places = set()
    key = str(doc.get("_id", ""))
    for account, text in ((doc.get("account_id"), doc.get("date")),
                          (key.partition(":")[0], key.rpartition(":")[2])):
        if not isinstance(account, str):
            account = key.partition(":")[0]
        try:
            places.add((account, date.fromisoformat(text)))
        except (TypeError, ValueError):
            continue
    return places


class DayFetches(dict):
    """``InsightsStore.fetched_at``'s answer, ``{day: fetched_at}``; ``records`` keeps each day's freshness
    document (its ``row_count`` is what ``snapshot`` checks the rows it reads against)."""

    __slots__ = ("records",)

    def __init__(self, *args, records: dict[date, dict] | None = None):
        super().__init__(*args)
        self.records = records or {}


def _short_days(docs: list[dict], records: dict[date, dict]) -> dict[date, tuple[int, int]]:
    """Days whose freshness record counts more insights documents than ``docs`` (all a read found, valid or
    not) hold for them: ``{day: (recorded, found)}``. Pure: safe in a worker thread."""
    counted = {day.isoformat(): doc["row_count"] for day, doc in records.items()
               if isinstance(doc.get("row_count"), int) and doc["row_count"] > 0}
    if not counted:
        return {}
    found: dict[str, int] = {}
    for doc in docs:
        text = doc.get("date")
        if type(text) is str and text in counted:
            found[text] = found.get(text, 0) + 1
    return {date.fromisoformat(text): (n, found.get(text, 0)) for text, n in counted.items()
            if found.get(text, 0) < n}


def _sort_checked(docs: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Split insights documents into those passing the schema check and content hash (``deleted`` filled
    in) and (document, reason) of the others. Pure: safe in a worker thread."""
    good, bad = [], []
    for doc in docs:
        reason = check("insights", doc)
        if reason is None and content_hash(doc["row"]) != doc["content_hash"]:
            reason = "row: the values do not match the row's content_hash (edited or damaged)"
        if reason is None:
            try:
                if not doc.get("deleted"):
                    decode_row(doc)
                doc.setdefault("deleted", False)
                good.append(doc)
                continue
            except CorruptDocument as exc:
                reason = str(exc)
        bad.append((doc, reason))
    return good, bad


def _image_parts(docs: list[dict], freshness: list[dict], scores: list[dict], raw: list[dict]):
    """(fetched_at per day, entries, valid scores, attribution per day, valid freshness documents per day, short
    days) of an AccountImage from checked documents; ``raw``: all the insights documents read, to count the
    days' rows (``_short_days``). Worker thread."""
    valid = {date.fromisoformat(d["date"]): d for d in freshness if check("freshness", d) is None}
    fetched = {day: d["fetched_at"] for day, d in valid.items()}
    attribution = {day: d.get("attribution", "") for day, d in valid.items()}
    entries = [(d["ad_id"], date.fromisoformat(d["date"]), d["version"], None if d["deleted"] else decode_row(d))
               for d in docs]
    return (fetched, entries, [d for d in scores if check("scores", d) is None], attribution, valid,
            _short_days(raw, valid))


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
        """The account document; one that fails the schema check is quarantined and rebuilt from the rows."""
        doc = await self.accounts.find_one({"_id": account_id})
        if doc is None:
            return None
        reason = check("accounts", doc)
        if reason is not None:
            return await self._rebuild_account(doc, reason)
        return _account_state(doc)

    async def _rebuild_account(self, doc: dict, reason: str) -> AccountState:
        """Quarantine a malformed account document and write a valid one: version and claim = the highest
        valid row version (every stored row is then committed), time zone and currency kept when valid."""
        account_id = doc["_id"]
        await self.quarantine.replace_one({"_id": f"accounts:{account_id}"},
                                          quarantine_record("accounts", doc, reason), upsert=True)
        metrics.quarantined.add(1, {"collection": "accounts"})
        versions = [d.get("version") async for d in self.insights.find({"account_id": account_id}, {"version": 1})]
        top = max((v for v in versions if isinstance(v, int) and not isinstance(v, bool) and v >= 0), default=0)
        keep = {k: doc[k] for k in ("timezone", "currency")
                if check("accounts", {"_id": account_id, k: doc.get(k)}) is None and k in doc}
        rebuilt = {"_id": account_id, "version": top, "seq": top, **keep}
        await self.accounts.replace_one({"_id": account_id}, rebuilt, upsert=True)
        log.warning("act_%s: account document failed the schema check (%s); quarantined and rebuilt at version %d",
                    account_id, reason, top)
        return _account_state(rebuilt)

    async def set_account_info(self, account_id: str, timezone: str, currency: str, name: str = "") -> None:
        update = {k: v for k, v in (("timezone", timezone), ("currency", currency), ("name", name)) if v}
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
        states = []
        async for doc in self.accounts.find({}):
            reason = check("accounts", doc)
            states.append(_account_state(doc) if reason is None else await self._rebuild_account(doc, reason))
        return states

    # -- reads --------------------------------------------------------------------------------
    async def fetched_at(self, account_id: str, days: DateRange,
                         attribution: Sequence[str] | None = None) -> DayFetches:
        """When each day of ``days`` was last fetched (days never fetched are absent), with the days'
        freshness documents in ``records`` (pass the answer to ``snapshot(fetched=)``).

        ``attribution``: only days last fetched with that setting count as fetched
        (a day fetched with another setting is absent, so it is fetched again
        before it is answered, issue 17); None: any setting."""
        cursor = self.freshness.find(
            {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
        )
        known, bad = DayFetches(), []
        async for doc in cursor:
            reason = check("freshness", doc)
            if reason is None:
                if attribution is None or doc.get("attribution", "") == ",".join(attribution):
                    day = date.fromisoformat(doc["date"])
                    known[day] = doc["fetched_at"]
                    known.records[day] = doc
            else:
                bad.append((doc, reason))
        for doc, reason in bad:  # the day counts as never fetched: it is fetched again before answering
            await self.quarantine.replace_one({"_id": f"freshness:{doc['_id']}"},
                                              quarantine_record("freshness", doc, reason), upsert=True)
            metrics.quarantined.add(1, {"collection": "freshness"})
            await self.freshness.delete_one({"_id": doc["_id"]})
            log.warning("freshness %r failed the schema check (%s); quarantined, the day will be re-fetched",
                        doc["_id"], reason)
        return known

    async def stored_days(self, account_id: str) -> DateRange | None:
        """First and last day with a (not deleted) row of the account, whatever the range; None when none.

        Two index reads (``account_date``); used to tell a caller where an account's data lies.
        """
        query = {"account_id": account_id, "deleted": {"$ne": True}}
        first = await self.insights.find_one(query, {"date": 1}, sort=[("date", ASCENDING)])
        if first is None:
            return None
        last = await self.insights.find_one(query, {"date": 1}, sort=[("date", DESCENDING)])
        return DateRange(date.fromisoformat(first["date"]), date.fromisoformat(last["date"]))

    async def range_version(self, account_id: str, days: DateRange) -> int:
        """The range's version (see Snapshot.version) without reading its rows."""
        doc = await self.insights.find_one(
            {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            {"version": 1}, sort=[("version", -1)])
        version = doc.get("version", 0) if doc else 0
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:  # a malformed document: the snapshot quarantines it
            return (await self.snapshot(account_id, days)).version
        return version

    async def _consistent(self, account_id: str, read):
        """Run ``read()`` until the account's version and claim did not move around it (no write in
        flight); after ``read_retry_s`` the last read is returned as is. Returns (result, account state, settled:
        whether the read was consistent rather than returned as is)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_retry_s
        while True:
            before = await self.account(account_id) or AccountState(account_id)
            if before.pending and self._abandoned(before):
                deadline = loop.time()  # no point waiting for a writer that is gone
            if before.pending and loop.time() < deadline:
                await asyncio.sleep(0.01)
                continue
            result = await read()
            after = await self.account(account_id) or AccountState(account_id)
            settled = (after.version, after.seq) == (before.version, before.seq) and not after.pending
            if settled or loop.time() >= deadline:
                return result, after, settled

    async def snapshot(self, account_id: str, days: DateRange, fetched: dict[date, datetime] | None = None) -> Snapshot:
        """A consistent snapshot of the range: rows ordered by (date, ad_id), at one version.

        ``fetched``: the range's fetch times when the caller has just read them
        (saves a round trip; a ``DayFetches`` also lets the rows be counted, see
        the module doc); read here otherwise. Corrupt documents are moved
        to ``quarantine`` and their day's freshness dropped, so the next plan
        re-fetches them (R11); so is a day holding fewer rows than its
        freshness record counts. Those days are listed in ``quarantined``.
        """
        async def read():
            docs = [d async for d in self.insights.find(
                {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)}},
            ).sort([("date", ASCENDING), ("ad_id", ASCENDING)])]
            return docs, DayFetches(fetched, records=dict(getattr(fetched, "records", {}))) \
                if fetched is not None else await self.fetched_at(account_id, days)

        (docs, fetched), after, settled = await self._consistent(account_id, read)
        # (a read overlapping a write may see the write's freshness without its rows: only a settled one counts)
        short = _short_days(docs, fetched.records) if settled else {}
        lost = await self._recover_short_days(account_id, short, fetched.records, docs) if short else set()
        docs, bad = await self._checked(docs)
        bad |= lost
        version = max((d["version"] for d in docs), default=0)
        rows = [decode_row(doc) for doc in docs if not doc["deleted"]]
        for day in bad:
            fetched.pop(day, None)
        quarantined = sorted(d.isoformat() for d in bad if days.since <= d <= days.until)
        return Snapshot(account_id, version, rows, fetched, after.timezone, quarantined, after.pending)

    async def _checked(self, docs: list[dict], off_loop: bool = False) -> tuple[list[dict], set[date]]:
        """The insights documents that pass the schema check and whose values still match their
        ``content_hash`` (``deleted`` filled in), and the days of those
        that did not: those are moved to ``quarantine`` with the reason and their day's freshness dropped, so
        the day is fetched again (R11). ``off_loop``: check in a worker thread (a whole account's documents
        take long enough to stall small requests)."""
        good, bad = await asyncio.to_thread(_sort_checked, docs) if off_loop else _sort_checked(docs)
        days: set[date] = set()
        for doc, reason in bad:
            log.warning("L2 document %r failed the schema check (%s); quarantined, its day will be re-fetched",
                        doc.get("_id"), reason)
            await self.quarantine.replace_one({"_id": f"insights:{doc.get('_id')}"},
                                              quarantine_record("insights", doc, reason), upsert=True)
            metrics.quarantined.add(1, {"collection": "insights"})
            await self.insights.delete_one({"_id": doc["_id"], "content_hash": doc.get("content_hash")})
            for account, day in _places_of(doc):
                days.add(day)
                await self.freshness.delete_many({"account_id": account, "date": day.isoformat()})
        return good, days

    async def _recover_short_days(self, account_id: str, short: dict[date, tuple[int, int]],
                                  records: dict[date, dict], seen: list[dict]) -> set[date]:
        """Days whose read found fewer documents than their freshness record counts (``_short_days``): the
        documents the read missed are looked up by ``_id`` (``account:ad:day``, an index range) and those
        failing the schema check (an ``_id`` naming another account or day than the fields) quarantined;
        the record itself is quarantined when rows are missing altogether (deleted by hand). Every short
        day's freshness is dropped, so it is answered stale and fetched again. Returns the days dropped
        (those of the quarantined documents' other place too)."""
        seen_ids = {d.get("_id") for d in seen}
        pattern = f"^{re.escape(account_id)}:[^:]*:({'|'.join(re.escape(d.isoformat()) for d in short)})$"
        strays = [d async for d in self.insights.find({"_id": {"$regex": pattern}}) if d["_id"] not in seen_ids]
        _, dropped = await self._checked(strays)
        for day, (recorded, found) in short.items():
            record = records[day]
            located = sum(1 for d in strays if d["_id"].endswith(":" + day.isoformat()))
            if found + located < recorded:
                reason = (f"row_count: the day held {recorded} row(s) when fetched, {found + located} found "
                          f"(removed by hand?); the day is fetched again")
                await self.quarantine.replace_one({"_id": f"freshness:{record.get('_id')}"},
                                                  quarantine_record("freshness", record, reason), upsert=True)
                metrics.quarantined.add(1, {"collection": "freshness"})
            await self.freshness.delete_many({"account_id": account_id, "date": day.isoformat(),
                                              "fetched_at": record["fetched_at"]})
            log.warning("act_%s %s: %d row(s) recorded, %d found by the range read, %d more by _id; the day's "
                        "freshness dropped, it will be re-fetched", account_id, day, recorded, found, located)
        return dropped | set(short)

    async def ad_series(self, account_id: str, ad_ids: Iterable[str]) -> tuple[int, dict[str, list[InsightRow]]]:
        """Every stored day of each ad, read consistently: (version of what was read, rows per ad by date)."""
        ids = sorted(set(ad_ids))

        async def read():
            return [d async for d in self.insights.find({"account_id": account_id, "ad_id": {"$in": ids}})
                    .sort([("ad_id", ASCENDING), ("date", ASCENDING)])]

        docs, _, _ = await self._consistent(account_id, read)
        docs, _ = await self._checked(docs)
        series: dict[str, list[InsightRow]] = {ad: [] for ad in ids}
        for doc in docs:
            if not doc["deleted"]:
                series[doc["ad_id"]].append(decode_row(doc))
        return max((d["version"] for d in docs), default=0), series

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
        """Stored fatigue results of the ads, by ad id. A document failing the schema check is quarantined
        (and left out: the caller rescores ads that have no score)."""
        good = []
        async for doc in self.scores.find({"account_id": account_id, "ad_id": {"$in": sorted(set(ad_ids))}}) \
                .sort("ad_id", ASCENDING):
            reason = check("scores", doc)
            if reason is None:
                good.append(doc)
                continue
            log.warning("score %r failed the schema check (%s); quarantined, the ad will be rescored",
                        doc.get("_id"), reason)
            await self.quarantine.replace_one({"_id": f"scores:{doc.get('_id')}"},
                                              quarantine_record("scores", doc, reason), upsert=True)
            await self.scores.delete_one({"_id": doc["_id"]})
        return good

    async def account_image(self, account_id: str) -> AccountImage | None:
        """Everything stored for one account in one consistent read (what the gateway's replica loads).

        Read while no write is in flight and retried until the account's version and claim did not
        move around the read; ``None`` when that did not happen within ``read_retry_s``, or a claim
        is still uncommitted (the caller answers from L2 meanwhile, which marks it and repairs it).
        Rows come with tombstones (``row`` None) and the version at which each last changed; documents
        failing the schema check are quarantined (their days' freshness dropped) and left out, as
        ``snapshot`` does, and so are days holding fewer documents than their freshness record counts.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_retry_s
        while loop.time() < deadline:
            before = await self.account(account_id) or AccountState(account_id)
            if before.pending:
                if self._abandoned(before):
                    return None
                await asyncio.sleep(0.01)
                continue
            docs = [d async for d in self.insights.find({"account_id": account_id})]
            freshness = [d async for d in self.freshness.find({"account_id": account_id})]
            scores = [d async for d in self.scores.find({"account_id": account_id})]
            after = await self.account(account_id) or AccountState(account_id)
            if (after.version, after.seq) != (before.version, before.seq):
                continue
            raw = docs
            docs, bad_days = await self._checked(docs, off_loop=True)
            fetched, entries, scores, attribution, records, short = await asyncio.to_thread(
                _image_parts, docs, freshness, scores, raw)
            if short:  # rows left the account's query (identity edited or deleted by hand): see the module doc
                bad_days |= await self._recover_short_days(account_id, short, records, raw)
            for day in bad_days:
                fetched.pop(day, None)
            return AccountImage(after, entries, fetched, scores, attribution)
        return None

    # -- writes -------------------------------------------------------------------------------
    def _abandoned(self, state: AccountState) -> bool:
        """Whether the account's uncommitted claim is older than any live write takes."""
        if state.claimed_at is None:
            return False
        claimed = state.claimed_at if state.claimed_at.tzinfo else state.claimed_at.replace(tzinfo=timezone.utc)
        return (datetime.now(timezone.utc) - claimed).total_seconds() > self.read_retry_s

    async def repair_version(self, account_id: str) -> WriteResult:
        """Commit an abandoned claim (see the module doc). Call it only as the account's writer (holding the
        account's fetch lock), so that no other write is in flight. Returns the rows that become visible."""
        state = await self.account(account_id)
        if state is None or not state.pending:
            return WriteResult(version=state.version if state else 0, rows_changed=0)
        docs = [d async for d in self.insights.find(
            {"account_id": account_id, "version": {"$gt": state.version, "$lte": state.seq}}, {"ad_id": 1})]
        await self.accounts.update_one({"_id": account_id}, {"$max": {"version": state.seq}})
        log.warning("act_%s: committed abandoned version %d (%d row(s) written by a writer whose commit failed)",
                    account_id, state.seq, len(docs))
        return WriteResult(version=state.seq, rows_changed=len(docs),
                           changed_ads=frozenset(d["ad_id"] for d in docs if isinstance(d.get("ad_id"), str)))

    async def apply_fetch(
        self, account_id: str, days: DateRange, rows: Iterable[InsightRow], fetched_at: datetime,
        attribution: Sequence[str] = (),
    ) -> WriteResult:
        """Upsert what one fetch of ``days`` returned, read at ``fetched_at``.

        Rows that did not change keep their version; rows stored from a newer
        fetch are left alone. A stored row the fetch does not contain is kept
        as it is: an answer that omits an ad (archived, deleted, filtered out,
        a page Meta lost) never deletes its history (issue 17); a row changes
        only when the provider returns a newer row for the same key.
        Every day of ``days`` is marked fetched (``$max`` on fetched_at) with the
        ``attribution`` setting the fetch used (``fetched_at(..., attribution=)``)
        and the documents the day holds (``$max`` on row_count, see the module doc),
        unless a newer fetch of the day is stored.
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
            {"content_hash": 1, "fetched_at": 1, "deleted": 1, "date": 1},
        )}
        # the documents each day holds once this write is done (for its freshness record's row_count)
        held: dict[str, set] = {}
        for key, doc in existing.items():
            if type(doc.get("date")) is str:
                held.setdefault(doc["date"], set()).add(key)
        for key, (row, _, _) in incoming.items():
            held.setdefault(_day_key(row.date_start), set()).add(key)

        def newer_stored(doc: dict | None) -> bool:  # (a malformed stored fetched_at is overwritten)
            return doc is not None and isinstance(doc.get("fetched_at"), datetime) and doc["fetched_at"] > fetched_at

        changed = [k for k, (_, _, h) in incoming.items()
                   if not newer_stored(existing.get(k))
                   and (k not in existing or existing[k].get("content_hash") != h or existing[k].get("deleted"))]

        state = await self.account(account_id) or AccountState(account_id)
        repaired = await self.repair_version(account_id) if state.pending else WriteResult(state.version, 0)
        version = repaired.version
        if changed:
            await self._ensure_account(account_id)
            claimed = await self.accounts.find_one_and_update(
                {"_id": account_id}, {"$inc": {"seq": 1}, "$currentDate": {"claimed_at": True}},
                return_document=ReturnDocument.AFTER,
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
                await self._bulk(self.insights, ops)
            finally:
                await self.accounts.update_one({"_id": account_id}, {"$max": {"version": version}})
        await self._bulk(self.freshness, [
            UpdateOne({"_id": f"{account_id}:{_day_key(d)}", "fetched_at": {"$not": {"$gt": fetched_at}}},
                      {"$max": {"fetched_at": fetched_at, "row_count": len(held.get(_day_key(d), ()))},
                       "$set": {"attribution": ",".join(attribution)},
                       "$setOnInsert": {"account_id": account_id, "date": _day_key(d)}}, upsert=True)
            for d in days.days()
        ])
        changed_ads = frozenset(k.split(":")[1] for k in changed) | repaired.changed_ads
        return WriteResult(version=version, rows_changed=len(changed) + repaired.rows_changed,
                           changed_ads=changed_ads)

    async def days_of_other_attribution(self, account_id: str, attribution: Sequence[str]) -> list[date]:
        """Stored days of the account last fetched with another attribution setting, most recent first."""
        cursor = self.freshness.find({"account_id": account_id, "attribution": {"$ne": ",".join(attribution)}},
                                     {"date": 1})
        out = []
        async for doc in cursor:
            try:
                out.append(date.fromisoformat(doc["date"]))
            except (KeyError, TypeError, ValueError):
                continue  # a malformed document: the schema check of fetched_at deals with it
        return sorted(out, reverse=True)

    async def remove_rows(self, account_id: str, keys: Iterable[tuple[str, date]], reason: str,
                          at: datetime) -> WriteResult:
        """Tombstone the stored rows ``(ad_id, date)`` on an explicit signal, recording ``reason``.

        The only way a row leaves L2 (a fetch never removes one, ``apply_fetch``).
        The tombstone keeps ``deleted_reason`` and ``deleted_at`` and gets a new
        version, so subscribers and ``replay_since`` see the removal. Rows
        absent or already removed are skipped. Raises ValueError for an empty reason.
        """
        if not reason.strip():
            raise ValueError("removing rows needs a reason (it is stored with the tombstone)")
        ids = [f"{account_id}:{ad}:{_day_key(d)}" for ad, d in keys]
        live = [d["_id"] async for d in self.insights.find({"_id": {"$in": ids}, "deleted": {"$ne": True}}, {"_id": 1})]
        version = (await self.account(account_id) or AccountState(account_id)).version
        if not live:
            return WriteResult(version=version, rows_changed=0)
        await self._ensure_account(account_id)
        claimed = await self.accounts.find_one_and_update(
            {"_id": account_id}, {"$inc": {"seq": 1}, "$currentDate": {"claimed_at": True}},
            return_document=ReturnDocument.AFTER)
        version = claimed["seq"]
        try:
            await self._bulk(self.insights, [UpdateOne(
                {"_id": key}, {"$set": {"deleted": True, "deleted_reason": reason, "deleted_at": at,
                                        "version": version}}) for key in live])
        finally:
            await self.accounts.update_one({"_id": account_id}, {"$max": {"version": version}})
        log.warning("act_%s: %d row(s) removed: %s", account_id, len(live), reason)
        return WriteResult(version=version, rows_changed=len(live),
                           changed_ads=frozenset(k.split(":")[1] for k in live))

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


@dataclass(slots=True)
class VersionChange:
    """What one committed version changed in a range: rows, removed (ad_id, date), stored score documents."""

    version: int
    rows: list[InsightRow] = field(default_factory=list)
    removed: list[tuple[str, date]] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)


async def replay_since(store: InsightsStore, account_id: str, days: DateRange, from_version: int,
                       up_to: int | None = None) -> list[VersionChange]:
    """Every committed version after ``from_version`` (up to ``up_to``, the account's committed version by
    default) that touched the range, oldest first: its rows and removals, plus the fatigue scores stored
    from it for ads whose scored history overlaps the range. One entry per version, as a live subscriber
    receives them (a score computed from a version with no row of the range gets an entry of its own)."""
    if up_to is None:
        up_to = (await store.account(account_id) or AccountState(account_id)).version
    docs = [d async for d in store.insights.find(
        {"account_id": account_id, "date": {"$gte": _day_key(days.since), "$lte": _day_key(days.until)},
         "version": {"$gt": from_version, "$lte": up_to}},
    ).sort([("date", ASCENDING), ("ad_id", ASCENDING)])]
    docs, _ = await store._checked(docs)
    by_version: dict[int, VersionChange] = {}
    for doc in docs:
        change = by_version.setdefault(doc["version"], VersionChange(doc["version"]))
        if doc["deleted"]:
            change.removed.append((doc["ad_id"], date.fromisoformat(doc["date"])))
        else:
            change.rows.append(decode_row(doc))
    async for doc in store.scores.find({"account_id": account_id,
                                        "insights_version": {"$gt": from_version, "$lte": up_to}}):
        if check("scores", doc) is None and doc["first"] <= _day_key(days.until) \
                and _day_key(days.since) <= doc["last"]:
            by_version.setdefault(doc["insights_version"], VersionChange(doc["insights_version"])).scores.append(doc)
    return [by_version[v] for v in sorted(by_version)]

"""One account's stored state, mirrored in the gateway's memory (issue 14, DESIGN.md R2 L1).

An ``AccountReplica`` holds what L2 holds for one account: every row by day
with the account version at which it last changed (tombstones included, so a
range's version is computed exactly as ``InsightsStore.snapshot`` computes
it), the per-day freshness (``fetched_at``) and the stored fatigue result of
each ad. It is built from one consistent L2 read (``from_image``) and then
kept current by applying committed changes in version order (``apply``): a
change whose version does not follow the replica's (``version + 1``) or that
lost a row cannot be applied — ``FeedGap`` — and the owner drops the replica
and loads it again.

Each live row also keeps its serialized ``InsightRow`` (all fields), so
answers and engine requests are joined from bytes instead of re-encoding
every row on every call (protobuf repeated fields concatenate on the wire).

Memory: ``size_bytes`` is an estimate of the Python objects held (row objects,
decimals, dict slots, the serialized bytes), calibrated with tracemalloc on
the real sample account (bench/micro.py reports bytes per resident account).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from services.cache_gateway.change_feed import Change
from services.common.freshness import FreshnessPolicy
from services.cache_gateway.l2_store import AccountImage, Snapshot
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_pb2, insights_pb2
from services.common.row_proto import row_to_proto

#: Estimated bytes of one stored row beyond its text and actions (InsightRow with 20 slots, two dates,
#: a datetime, ints, a Decimal, the entry object and its dict slot, the serialized copy's framing).
ROW_BASE_BYTES = 940
#: Per action type: the dict slot, the key string, the Decimal value, and its serialized form.
ACTION_BYTES = 220
#: Per day: the day's dict, its freshness entry, its version, its cached due time and freshness bytes.
DAY_BYTES = 700
#: Per stored fatigue result, beyond its serialized length.
SCORE_BYTES = 300
#: The replica's own objects.
ACCOUNT_BYTES = 4096


class FeedGap(Exception):
    """A change cannot be applied to the replica (a version was skipped or a row was lost)."""


def row_size(row: InsightRow) -> int:
    """Estimated bytes one live row costs in memory (see the module docstring)."""
    text = sum(len(v) for v in (row.ad_id, row.ad_name, row.adset_id, row.adset_name, row.campaign_id,
                                row.campaign_name) if v)
    actions = row.actions or {}
    return ROW_BASE_BYTES + 2 * text + ACTION_BYTES * len(actions) + 2 * sum(len(k) for k in actions)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(field_number: int, payload: bytes) -> bytes:
    """``payload`` as one length-delimited field (wire type 2): a repeated message's element."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


#: ``rows`` is field 3 of both GetInsightsResponse and SubscribeEvent (checked in tests).
ROWS_FIELD = 3


@dataclass(slots=True)
class _Entry:
    version: int                 # account version at which this (ad, day) last changed
    row: InsightRow | None       # None: a tombstone
    size: int
    framed: bytes | None = None  # the serialized InsightRow (all fields) as one element of a ``rows`` field
    header: int = 0              # bytes of ``framed`` before the row itself (tag and length)

    def as_rows_element(self) -> bytes:
        """The row as one element of a ``rows`` field (ROWS_FIELD), made on first use and kept."""
        if self.framed is None:
            body = row_to_proto(self.row).SerializeToString(deterministic=True)
            self.framed = frame(ROWS_FIELD, body)
            self.header = len(self.framed) - len(body)
        return self.framed

    def serialized(self) -> bytes:
        """The serialized InsightRow (all fields): a copy out of ``framed`` (one copy kept per row)."""
        return self.as_rows_element()[self.header:]


@dataclass(frozen=True, slots=True)
class StoredScore:
    ad_id: str
    insights_version: int
    result: bytes     # serialized FatigueResult
    first: date       # first and last day of the ad's history it scored
    last: date


class AccountReplica:
    """The in-memory copy of one account; not thread-safe (owned by the event loop)."""

    def __init__(self, account_id: str, version: int = 0, timezone: str = "", loaded_at: float = 0.0):
        self.account_id = account_id
        self.version = version          # the last committed account version applied
        self.timezone = timezone
        self.currency = ""              # ISO 4217, as the account document held it when loaded ("" unknown)
        self.loaded_at = loaded_at      # the owner's clock when loaded (its safety-net TTL)
        self._days: dict[date, dict[str, _Entry]] = {}
        self._day_version: dict[date, int] = {}
        self._sorted_days: list[date] = []          # days holding rows or tombstones, ascending
        self._day_rows: dict[date, list[_Entry]] = {}  # live entries of a day by ad_id (rebuilt on change)
        self.fetched: dict[date, datetime] = {}
        self.attribution: dict[date, str] = {}   # the attribution setting each day was last fetched with
        self.scores: dict[str, StoredScore] = {}
        self.size_bytes = ACCOUNT_BYTES
        # day -> ((fetched_at, today, zone), due_at): when the day falls due depends on nothing else
        self._due: dict[date, tuple[tuple, datetime | None]] = {}
        # day -> ((fetched_at, class, due), serialized DayFreshness)
        self._day_freshness: dict[date, tuple[tuple, bytes]] = {}

    # -- building and applying -----------------------------------------------------------------
    @classmethod
    def from_image(cls, image: AccountImage, loaded_at: float = 0.0) -> "AccountReplica":
        replica = cls(image.state.account_id, image.state.version, image.state.timezone, loaded_at)
        replica.currency = image.state.currency
        touched: set[date] = set()
        for ad_id, day, version, row in image.entries:
            replica._put(ad_id, day, version, row)
            touched.add(day)
        for day, at in image.fetched_at.items():
            replica.note_fetched(day, at, image.attribution.get(day, ""))
        for doc in image.scores:
            try:
                replica.note_score(bytes(doc["result"]), date.fromisoformat(doc["first"]),
                                   date.fromisoformat(doc["last"]), int(doc["insights_version"]), doc["ad_id"])
            except (KeyError, TypeError, ValueError):
                continue
        replica._sorted_days = sorted(replica._days)
        for day in touched:
            replica._reindex(day)
        return replica

    def apply(self, change: Change) -> None:
        """Apply one committed change (rows written and removed at ``change.version``).

        A change at or below ``version`` is already in (ignored); raises FeedGap
        when ``change.version`` skips a version or the change lost a row.
        """
        if change.version <= self.version:
            return
        if change.version != self.version + 1 or change.incomplete:
            raise FeedGap(f"act_{self.account_id}: change {change.version} after {self.version}"
                          + (" lost a row" if change.incomplete else ""))
        touched: set[date] = set()
        for row in change.rows:
            self._put(row.ad_id, row.date_start, change.version, row)
            touched.add(row.date_start)
        for ad_id, day in change.removed:
            self._put(ad_id, day, change.version, None)
            touched.add(day)
        for day in touched:
            self._reindex(day)
        self.version = change.version

    def _put(self, ad_id: str, day: date, version: int, row: InsightRow | None) -> None:
        entries = self._days.get(day)
        if entries is None:
            entries = self._days[day] = {}
            self.size_bytes += DAY_BYTES
            if self._sorted_days and day < self._sorted_days[-1]:
                bisect.insort(self._sorted_days, day)
            elif not self._sorted_days or day != self._sorted_days[-1]:
                self._sorted_days.append(day)
        old = entries.get(ad_id)
        if old is not None:
            self.size_bytes -= old.size
        size = row_size(row) if row is not None else ROW_BASE_BYTES // 4
        entries[ad_id] = _Entry(version, row, size)
        self.size_bytes += size
        if version > self._day_version.get(day, -1):
            self._day_version[day] = version

    def _reindex(self, day: date) -> None:
        entries = self._days[day]
        self._day_rows[day] = [entries[ad] for ad in sorted(entries) if entries[ad].row is not None]

    def note_fetched(self, day: date, fetched_at: datetime, attribution: str = "") -> None:
        """A day was fetched at ``fetched_at`` with ``attribution`` (comma-joined windows): like L2, the newest
        time wins (``$max``) and the setting is the last one written."""
        old = self.fetched.get(day)
        if old is None:
            self.size_bytes += DAY_BYTES // 2
        if old is None or fetched_at > old:
            self.fetched[day] = fetched_at
        self.attribution[day] = attribution

    def note_score(self, result: bytes, first: date, last: date, insights_version: int | None = None,
                   ad_id: str | None = None) -> StoredScore | None:
        """A fatigue result was stored; kept when newer than the ad's one (like L2). Returns it if kept."""
        if ad_id is None or insights_version is None:
            parsed = fatigue_pb2.FatigueResult.FromString(result)
            ad_id, insights_version = parsed.ad_id, parsed.insights_version
        old = self.scores.get(ad_id)
        if old is not None and old.insights_version >= insights_version:
            return None
        self.size_bytes += len(result) + SCORE_BYTES - (len(old.result) + SCORE_BYTES if old else 0)
        score = self.scores[ad_id] = StoredScore(ad_id, insights_version, result, first, last)
        return score

    # -- reading -------------------------------------------------------------------------------
    def _days_in(self, days: DateRange) -> list[date]:
        lo = bisect.bisect_left(self._sorted_days, days.since)
        hi = bisect.bisect_right(self._sorted_days, days.until)
        return self._sorted_days[lo:hi]

    def fetched_at(self, days: DateRange, attribution: Iterable[str] | None = None) -> dict[date, datetime]:
        """When each day of ``days`` was last fetched (never-fetched days absent), like ``InsightsStore.fetched_at``:
        with ``attribution``, only days last fetched with that setting."""
        if len(self.fetched) < len(days):
            out = {d: at for d, at in sorted(self.fetched.items()) if days.since <= d <= days.until}
        else:
            out = {d: at for d in days.days() if (at := self.fetched.get(d)) is not None}
        if attribution is not None:
            setting = ",".join(attribution)
            out = {d: at for d, at in out.items() if self.attribution.get(d, "") == setting}
        return out

    def due_at(self, days: DateRange, policy: FreshnessPolicy, now: datetime, tz: ZoneInfo,
               attribution: Iterable[str] | None = None) -> dict[date, datetime | None]:
        """``policy.due_at`` of every fetched day of the range (as ``fetched_at`` selects them; None: never
        due), memoised per day until its ``fetched_at`` or the account-local date changes (nothing else moves it)."""
        today = now.astimezone(tz).date()
        out = {}
        for d, at in self.fetched_at(days, attribution).items():
            key = (at, today, tz.key)
            cached = self._due.get(d)
            if cached is None or cached[0] != key:
                cached = self._due[d] = (key, policy.due_at(d, at, now, tz))
            out[d] = cached[1]
        return out

    def day_freshness(self, day: date, fetched_at: datetime, freshness_class: int, due: bool) -> bytes:
        """A serialized ``DayFreshness`` (memoised while its inputs stay the same)."""
        key = (fetched_at, freshness_class, due)
        cached = self._day_freshness.get(day)
        if cached is None or cached[0] != key:
            msg = insights_pb2.DayFreshness(date=day.isoformat(), freshness_class=freshness_class, due=due)
            msg.fetched_at.FromDatetime(fetched_at.astimezone(timezone.utc))
            cached = self._day_freshness[day] = (key, msg.SerializeToString(deterministic=True))
        return cached[1]

    def range_version(self, days: DateRange) -> int:
        """The range's version: the highest version at which any of its rows (tombstones too) changed."""
        return max((self._day_version[d] for d in self._days_in(days)), default=0)

    def entries(self, days: DateRange) -> list[_Entry]:
        """Live entries of the range ordered by (date, ad_id)."""
        out: list[_Entry] = []
        for d in self._days_in(days):
            out.extend(self._day_rows[d])
        return out

    def snapshot(self, days: DateRange, attribution: Iterable[str] | None = None) -> Snapshot:
        """What ``InsightsStore.snapshot`` would answer for the range at this replica's version (its freshness
        as ``fetched_at(days, attribution)`` selects it)."""
        return self.read(days, attribution)[0]

    def read(self, days: DateRange, attribution: Iterable[str] | None = None) -> tuple[Snapshot, list[_Entry]]:
        """The range's snapshot and its live entries (whose ``serialized()`` bytes answers are joined from)."""
        entries = self.entries(days)
        return (Snapshot(self.account_id, self.range_version(days), [e.row for e in entries],
                         self.fetched_at(days, attribution), self.timezone), entries)

    def serialized_rows(self, days: DateRange) -> list[bytes]:
        """The range's rows serialized (all fields), ordered by (date, ad_id)."""
        return [e.serialized() for e in self.entries(days)]

    def series_by_ad(self, days: DateRange | None = None) -> dict[str, list[bytes]]:
        """Serialized rows of the range (None: every day held) per ad, each ad's in date order."""
        by_ad: dict[str, list[bytes]] = {}
        if days is None:
            if not self._sorted_days:
                return by_ad
            days = DateRange(self._sorted_days[0], self._sorted_days[-1])
        for e in self.entries(days):
            by_ad.setdefault(e.row.ad_id, []).append(e.serialized())
        return by_ad

    def stored_days(self) -> DateRange | None:
        """First and last day with a live row, like ``InsightsStore.stored_days``; None when none."""
        live = [d for d in self._sorted_days if self._day_rows.get(d)]
        return DateRange(live[0], live[-1]) if live else None

    def stored_scores(self, ad_ids: Iterable[str]) -> list[StoredScore]:
        """Stored fatigue results of ``ad_ids`` ordered by ad_id (like ``InsightsStore.stored_scores``)."""
        return [self.scores[a] for a in sorted(set(ad_ids)) if a in self.scores]

    def unencoded(self) -> list[_Entry]:
        """Live entries whose serialized form is not made yet (warmed in the background)."""
        return [e for rows in self._day_rows.values() for e in rows if e.framed is None]

    def rows_held(self) -> int:
        return sum(len(rows) for rows in self._day_rows.values())

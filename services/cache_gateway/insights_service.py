"""The gateway's business logic: answer a range from L2, fetching from L3 only
what is missing or due (DESIGN.md R1-R4). No transport code here.

Per request:
1. plan the days of the range that are missing or due (freshness policy);
2. *missing* days are fetched before answering (single-flight shares
   overlapping fetches); if that fails the request fails with the upstream's
   status — data never seen cannot be served;
3. *due* days that L2 already holds are answered at once, marked
   STALE_REVALIDATING, while a background refresh runs (stale-while-revalidate);
   if the last refresh of the account failed, they are marked
   STALE_UPSTREAM_ERROR with the reason (stale-if-error) — never silently;
4. the answer is one consistent snapshot at one account version: from the
   account's in-memory replica (``replica_cache``) when it is resident and
   nothing had to be fetched — no L2 round trip — otherwise from L2.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import grpc

from services.common.freshness import FreshnessClass, FreshnessPolicy
from services.cache_gateway.l2_store import InsightsStore, Snapshot
from services.cache_gateway.planner import DEFAULT_MAX_RANGE_DAYS, due_days, merge_ranges
from services.cache_gateway.replica_cache import ReplicaCache
from services.cache_gateway.single_flight import SingleFlight
from services.cache_gateway import metrics
from services.cache_gateway.upstream import InsightsUpstream, UpstreamError
from services.common.attribution import AttributionSettings
from services.common.dates import DateRange, zone
from services.common.distributed_lock import DistributedLock, HeldLock, LockLost, LockTimeout

log = logging.getLogger(__name__)

FRESH, STALE_REVALIDATING, STALE_UPSTREAM_ERROR = 1, 2, 3  # adfatigue.v1.DataStatus

_CALL_OK = {"outcome": "ok"}
#: Meta calls made on behalf of the running Refresh (the shared fetch task inherits the context).
_calls_here: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("meta_calls_here", default=None)


@dataclass(slots=True)
class ReadResult:
    snapshot: Snapshot
    status: int
    reason: str
    due: set[date]
    fetched_ranges: list[DateRange]
    fresh_until: datetime | None = None  # when the first day of the answer becomes due (None: never)
    attribution: tuple[str, ...] = ()  # the setting every row of the answer was produced with (() = not tracked)
    # the replica entries of snapshot.rows, same order (None: read from L2); their serialized() bytes
    entries: list | None = None
    account_version: int = 0  # the replica's account version the entries were read at
    replica: object | None = None  # the AccountReplica answered from (its per-day freshness bytes are memoised)


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    message: str
    code: grpc.StatusCode
    at: datetime


class InsightsService:
    """Reads and refreshes account insights through L2 and the upstream.

    ``on_change(account_id, version, changed_ad_ids)`` is called after every write that changed rows.
    """

    def __init__(
        self,
        store: InsightsStore,
        upstream: InsightsUpstream,
        policy: FreshnessPolicy | None = None,
        max_range_days: int = DEFAULT_MAX_RANGE_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        on_change: Callable[[str, int, frozenset[str]], None] | None = None,
        lock: DistributedLock | None = None,
        replicas: ReplicaCache | None = None,
        attribution: AttributionSettings | None = None,
    ):
        self.store = store
        self.upstream = upstream
        self.policy = policy or FreshnessPolicy()
        self.max_range_days = max_range_days
        self.clock = clock
        self.on_change = on_change
        self.flight = SingleFlight()
        self.last_failure: dict[str, UpstreamFailure] = {}
        self._background: set[asyncio.Task] = set()
        self.lock = lock or DistributedLock()
        self._zones: dict[str, str] = {}
        self.replicas = replicas  # None: every read goes to L2
        self._repairing: set[str] = set()
        #: each account's attribution setting (issue 17); None: not tracked (rows of any setting are served)
        self.attribution = attribution
        self._reattributing: dict[str, tuple[str, ...]] = {}  # account -> setting a re-fetch ran or runs for
        #: (account, since, until) -> the permanent data error its last fetch ended with (see _fetch_range)
        self._data_errors: dict[tuple[str, date, date], UpstreamFailure] = {}
        self.data_error_retry_s = 300.0
        self._currencies: dict[str, str] = {}

    async def timezone_name(self, account_id: str) -> str | None:
        """The account's IANA time zone, or None before the provider has told it (kept in memory once known:
        the serving path must not pay an L2 round trip for it)."""
        name = self._zones.get(account_id)
        if name is None:
            replica = self.replicas.peek(account_id) if self.replicas is not None else None
            if replica is not None and replica.timezone:  # a resident account: no store read for it
                name = self._zones[account_id] = replica.timezone
                return name
            state = await self.store.account(account_id)
            if state and state.timezone:
                name = self._zones[account_id] = state.timezone
        return name

    def known_timezone(self, account_id: str) -> str | None:
        """The account's IANA time zone if this process already knows it (no store read), else None."""
        return self._zones.get(account_id)

    async def currency(self, account_id: str) -> str:
        """The account's ISO 4217 currency, or "" before the provider has told it (kept in memory once known)."""
        code = self._currencies.get(account_id)
        if code is None:
            replica = self.replicas.peek(account_id) if self.replicas is not None else None
            if replica is not None and replica.currency:  # a resident account: no store read for it
                code = self._currencies[account_id] = replica.currency
                return code
            state = await self.store.account(account_id)
            if not (state and state.currency):
                return ""
            code = self._currencies[account_id] = state.currency
        return code

    async def timezone_of(self, account_id: str) -> ZoneInfo:
        return zone(await self.timezone_name(account_id) or "")

    async def read(self, account_id: str, days: DateRange, revalidate: bool = True, _attempt: int = 0) -> ReadResult:
        """Answer ``days`` for the account; raises UpstreamError when missing days cannot be fetched.

        Stored documents failing the schema check (services/common/l2_schema.py) are quarantined and their
        days fetched again before answering; if that fetch fails, the answer leaves them out and says so
        (STALE_UPSTREAM_ERROR with the reason), never FRESH."""
        replica = await self.replicas.get(account_id) if self.replicas is not None else None
        if replica is not None and replica.timezone:
            self._zones.setdefault(account_id, replica.timezone)
        tz_name = await self.timezone_name(account_id) or ""
        if replica is not None and tz_name:
            replica.timezone = tz_name  # told by a fetch after the replica was loaded
        tz = zone(tz_name)
        windows = self.windows(account_id)
        # a day fetched with another attribution setting counts as missing: fetched again before it is answered
        if replica is not None:
            fetched = replica.fetched_at(days, windows)
            due = self._due_from_replica(days, fetched, replica.due_at(days, self.policy, self.clock(), tz, windows),
                                         tz)
        else:
            fetched = await self.store.fetched_at(account_id, days, windows)
            due = set(due_days(days, fetched, self.policy, self.clock(), tz))
        missing = sorted(d for d in due if d not in fetched)
        ranges: list[DateRange] = []
        if missing:
            metrics.cache_reads.add(1, metrics.L2_MISS)
            ranges, _ = await self._fetch_days(account_id, missing)
        else:
            metrics.cache_reads.add(1, metrics.L2_HIT)
            metrics.meta_calls_avoided.add(1, {"reason": "l2_fresh"})
        stale = due.difference(missing)
        status, reason = FRESH, ""
        if stale:
            failure = self.last_failure.get(account_id)
            if failure is not None:
                status, reason = STALE_UPSTREAM_ERROR, f"{failure.message} (at {failure.at:%Y-%m-%d %H:%M} UTC)"
            else:
                status, reason = STALE_REVALIDATING, f"{len(stale)} day(s) due for refresh; refreshing in the background"
            if revalidate:
                self._refresh_in_background(account_id, sorted(stale))
            metrics.stale_answers.add(1)
        entries = None
        if replica is not None and not missing:
            snap, entries = replica.read(days, windows)  # a replica holds committed versions only: never pending
        else:
            # nothing fetched: the freshness just read is current, so the snapshot need not read it again
            snap = await self.store.snapshot(account_id, days, fetched=None if missing else fetched)
            if snap.quarantined:  # malformed documents were dropped: fetch their days again now
                try:
                    if _attempt < 2:
                        return await self.read(account_id, days, revalidate, _attempt + 1)
                    raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "the provider keeps returning rows that "
                                                                     "cannot be stored")
                except UpstreamError as exc:
                    status = STALE_UPSTREAM_ERROR
                    reason = "; ".join(filter(None, [reason, (
                        f"stored data of {len(snap.quarantined)} day(s) failed the store's schema check and was "
                        f"quarantined; fetching it again failed: {exc.message}")]))
            if snap.pending:  # a writer's commit failed: never FRESH until its version is repaired
                if status == FRESH:
                    status, reason = STALE_REVALIDATING, ""
                reason = "; ".join(filter(None, [reason, "the last write to the store did not complete; "
                                                         "repairing it in the background"]))
                self._repair_in_background(account_id)
        if windows is not None:
            held = [r for r in snap.rows if r.action_attribution_windows != windows]
            if held:  # rows Meta no longer returns, kept from an older setting: stored, never mixed into an answer
                snap.rows = [r for r in snap.rows if r.action_attribution_windows == windows]
                if entries is not None:
                    entries = [e for e in entries if e.row.action_attribution_windows == windows]
                reason = "; ".join(filter(None, [reason, (
                    f"{len(held)} stored row(s) of another attribution setting are left out (Meta did not return "
                    f"them under {','.join(windows)})")]))
            if revalidate:
                self._reattribute_in_background(account_id, windows)
        now = self.clock()
        if entries is not None:
            due_times = [t for t in replica.due_at(days, self.policy, now, tz, windows).values() if t is not None]
        else:
            due_times = [t for d, at in snap.fetched_at.items()
                         if (t := self.policy.due_at(d, at, now, tz)) is not None]
        return ReadResult(snap, status, reason, stale, ranges, min(due_times, default=None), windows or (),
                          entries=entries, account_version=replica.version if entries is not None else 0,
                          replica=replica if entries is not None else None)

    def windows(self, account_id: str) -> tuple[str, ...] | None:
        """The account's attribution setting (None when the service does not track attribution)."""
        return self.attribution.for_account(account_id) if self.attribution is not None else None

    async def reattribute(self, account_id: str) -> int:
        """Fetch again, with the account's current attribution setting, every stored day last fetched with another
        one: most recent first, in ranges of at most ``max_range_days``, each through the provider's budget
        (issue 17). Stops at the first failure (e.g. the budget is spent: RESOURCE_EXHAUSTED) and raises it;
        the days left stay due and the next call goes on. Returns rows changed."""
        windows = self.windows(account_id)
        if windows is None:
            return 0
        days = await self.store.days_of_other_attribution(account_id, windows)
        changed = 0
        while days:
            chunk = [days[0]]
            for d in days[1:]:
                if (chunk[-1] - d).days != 1 or len(chunk) >= self.max_range_days:
                    break
                chunk.append(d)
            days = days[len(chunk):]
            changed += (await self._fetch_days(account_id, sorted(chunk)))[1]
        return changed

    def _reattribute_in_background(self, account_id: str, windows: tuple[str, ...]) -> None:
        """Once per account and setting (per process, again after a failure): ``reattribute`` in the background."""
        if self._reattributing.get(account_id) == windows:
            return
        self._reattributing[account_id] = windows

        async def run() -> None:
            try:
                changed = await self.reattribute(account_id)
                if changed:
                    log.info("act_%s: %d row(s) fetched again with attribution %s", account_id, changed,
                             ",".join(windows))
            except Exception as exc:  # the days stay due; the next read starts again
                self._reattributing.pop(account_id, None)
                log.warning("act_%s: fetching stored days again with attribution %s stopped: %s", account_id,
                            ",".join(windows), getattr(exc, "message", exc))

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _due_from_replica(self, days: DateRange, fetched: dict[date, datetime],
                          due_at: dict[date, datetime | None], tz: ZoneInfo) -> set[date]:
        """``due_days`` from a replica's memoised due times: a final day is due exactly when it has a due
        time (``FreshnessPolicy.due_at``); the others by their interval, ``today`` computed once."""
        now = self.clock()
        today = now.astimezone(tz).date()
        due = set()
        for d in days.days():
            at = fetched.get(d)
            if at is None:
                due.add(d)
            elif self.policy.classify(d, today) is FreshnessClass.FINAL:
                if due_at.get(d) is not None:
                    due.add(d)
            elif self.policy.is_due(d, at, now, tz, today):
                due.add(d)
        return due

    async def refresh(self, account_id: str, days: DateRange, force: bool = False) -> tuple[list[DateRange], int]:
        """Fetch the due days of ``days`` now (every day if ``force``); returns (ranges, rows_changed).

        Raises UpstreamError when the provider fails (``counted`` tells how many Meta calls it made).
        """
        if force:
            todo = days.days()
        else:
            tz = await self.timezone_of(account_id)
            fetched = await self.store.fetched_at(account_id, days, self.windows(account_id))
            todo = due_days(days, fetched, self.policy, self.clock(), tz)
        windows = self.windows(account_id)
        if windows is not None:  # the scheduler's refreshes also move stored days to a new setting
            self._reattribute_in_background(account_id, windows)
        return await self._fetch_days(account_id, todo, force=force)

    async def counted(self, work) -> tuple[object, int]:
        """Await ``work`` (a coroutine) and count the Meta calls it started: (its result, calls)."""
        counter = [0]
        token = _calls_here.set(counter)
        try:
            task = asyncio.ensure_future(work)  # copies the context: its fetch tasks count here
        finally:
            _calls_here.reset(token)
        return await task, counter[0]

    async def _fetch_days(self, account_id: str, days: list[date], force: bool = False) -> tuple[list[DateRange], int]:
        """Fetch ``days`` (joining fetches already in flight); returns (ranges started here, rows changed).

        A forced fetch joins nothing: a fetch in flight may have started before the change the caller
        knows of (or may find the days fresh and not ask at all)."""
        own, waits = (list(days), []) if force else self.flight.split(account_id, days)
        if waits:
            metrics.meta_calls_avoided.add(len(waits), {"reason": "single_flight"})
        ranges = merge_ranges(own, self.max_range_days)
        futures = self.flight.run(account_id, ranges, lambda rng: self._fetch_and_store(account_id, rng, force))
        results = await asyncio.gather(*(asyncio.shield(f) for f in futures + waits), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return ranges, sum(results[: len(futures)])

    async def _fetch_and_store(self, account_id: str, rng: DateRange, force: bool = False) -> int:
        """Fetch ``rng`` and write it to L2, holding the account's lock across replicas.

        Inside the lock the days are planned again: when another replica has
        just fetched them they are fresh now and nothing is asked of the
        upstream (single-flight across replicas). One writer per account at a
        time also makes versions commit in order. The lock is extended while the
        fetch runs; if it was lost meanwhile nothing is committed (UNAVAILABLE).
        Returns rows changed.
        """
        try:
            async with self.lock.hold(f"fetch:{account_id}") as held:
                todo = [rng]
                if not force:
                    tz = await self.timezone_of(account_id)
                    fetched = await self.store.fetched_at(account_id, rng, self.windows(account_id))
                    todo = merge_ranges(due_days(rng, fetched, self.policy, self.clock(), tz), self.max_range_days)
                    if not todo:
                        metrics.meta_calls_avoided.add(1, {"reason": "other_replica"})
                        return 0
                return sum([await self._fetch_range(account_id, part, force, held) for part in todo])
        except (LockTimeout, LockLost) as exc:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    async def _fetch_range(self, account_id: str, rng: DateRange, force: bool = False,
                           held: HeldLock | None = None) -> int:
        """Fetch one range and store it. A range whose last answer was a permanent data error (DATA_LOSS: a
        value out of range, a page that does not parse) is not asked again for ``data_error_retry_s``
        seconds: retrying callers get the same error at once instead of a new call to Meta each
        (issue 17); a forced refresh asks again."""
        key = (account_id, rng.since, rng.until)
        known = self._data_errors.get(key)
        if known is not None and not force and (self.clock() - known.at).total_seconds() < self.data_error_retry_s:
            age = int((self.clock() - known.at).total_seconds())
            raise UpstreamError(known.code, f"{known.message} (the same answer {age} s ago; not asked again for "
                                            f"{self.data_error_retry_s:g} s)")
        here = _calls_here.get()
        if here is not None:
            here[0] += 1
        try:
            result = await self.upstream.fetch(account_id, rng)
        except UpstreamError as exc:
            metrics.meta_calls.add(1, {"outcome": "error", "error.type": exc.code.name})
            if exc.code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                self.last_failure[account_id] = UpstreamFailure(exc.message, exc.code, self.clock())
            if exc.code == grpc.StatusCode.DATA_LOSS:
                self._data_errors[key] = UpstreamFailure(exc.message, exc.code, self.clock())
            raise
        self._data_errors.pop(key, None)
        if result.timezone or result.currency or result.name:
            await self.store.set_account_info(account_id, result.timezone, result.currency, result.name)
            if result.timezone:
                self._zones[account_id] = result.timezone
        metrics.meta_calls.add(1, _CALL_OK)
        windows = self.windows(account_id)
        if windows is not None and result.attribution != windows:
            raise UpstreamError(grpc.StatusCode.FAILED_PRECONDITION,
                                f"the provider answered act_{account_id} with attribution "
                                f"{','.join(result.attribution) or 'unknown'}, the account's setting is "
                                f"{','.join(windows)}: configure both from the same setting")
        if held is not None:
            await held.confirm()  # LockLost: another replica may be fetching this account now; do not commit
        write = await self.store.apply_fetch(account_id, rng, result.rows, result.fetched_at,
                                             attribution=result.attribution)
        if self.replicas is not None and write.rows_changed:
            self.replicas.expect(account_id, write.version)  # read-your-writes on this replica
        self.last_failure.pop(account_id, None)
        if write.rows_changed and self.on_change:
            self.on_change(account_id, write.version, write.changed_ads)
        return write.rows_changed

    async def repair(self, account_id: str) -> int:
        """Commit the account's abandoned write, as its writer (under the fetch lock); returns rows it made
        visible (they are rescored and, through the change feed, streamed)."""
        async with self.lock.hold(f"fetch:{account_id}"):
            write = await self.store.repair_version(account_id)
        if write.rows_changed and self.on_change:
            self.on_change(account_id, write.version, write.changed_ads)
        return write.rows_changed

    def _repair_in_background(self, account_id: str) -> None:
        if account_id in self._repairing:
            return
        self._repairing.add(account_id)

        async def run() -> None:
            try:
                await self.repair(account_id)
            except Exception as exc:  # the store is still failing: the next reader or writer tries again
                log.warning("repairing act_%s failed (%s); the next read or write retries", account_id,
                            type(exc).__name__)
            finally:
                self._repairing.discard(account_id)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _refresh_in_background(self, account_id: str, days: list[date]) -> None:
        own, _ = self.flight.split(account_id, days)
        if not own:
            return

        async def run() -> None:
            try:
                await self._fetch_days(account_id, own)
            except UpstreamError as exc:
                log.warning("background refresh of %s failed: %s", account_id, exc.message)
            except Exception:  # never let a background task die silently
                log.exception("background refresh of %s failed", account_id)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background refreshes (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

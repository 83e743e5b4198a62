"""The gateway's in-memory account replicas against a real MongoDB-protocol server and its change stream.

- property: over random sequences of writes (rows added, restated, removed, days re-read with
  nothing new, scores stored), the replica — loaded once, then kept current only by applying the
  change feed's events in memory — equals a fresh L2 read at the same version, for random ranges;
- a gap in the feed (a skipped version, a lost row, lost history) drops the replica and the next
  read loads it again, equal to L2;
- the byte budget: LRU by account, never above ``max_bytes``, an account larger than the budget
  is served from L2.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pymongo import AsyncMongoClient

from services.cache_gateway.account_replica import AccountReplica
from services.cache_gateway.change_feed import Change, ChangeFeed
from services.cache_gateway.l2_store import AccountImage, AccountState, InsightsStore
from services.cache_gateway.replica_cache import ReplicaCache
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_pb2

D0 = date(2026, 4, 1)
T0 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
ADS = ("11", "12", "13")
SETTINGS = (("7d_click", "1d_view"), ("1d_click",))


def row(account: str, ad: str, day: date, impressions: int, leads: int | None) -> InsightRow:
    return InsightRow(account_id=account, ad_id=ad, date_start=day, date_stop=day, ad_name=f"Ad {ad}",
                      impressions=impressions, inline_link_clicks=impressions // 10, spend=Decimal(impressions) / 100,
                      actions=None if leads is None else {"lead": Decimal(leads), "link_click": Decimal(3)})


def view(snap):
    """What a reader sees of a snapshot, fetched_at included (InsightRow equality leaves it out)."""
    return snap.version, [(r, r.fetched_at) for r in snap.rows], dict(sorted(snap.fetched_at.items()))


async def wait_until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "the change feed did not bring the replica up to L2 in time"
        await asyncio.sleep(0.02)


class Env:
    """A store, a running change feed and a ReplicaCache listening to it (as server.py wires them)."""

    def __init__(self, uri: str, db: str):
        self.client = AsyncMongoClient(uri, tz_aware=True)
        self.store = InsightsStore(self.client, db)
        self.feed = ChangeFeed(self.store.db)
        self.replicas = ReplicaCache(self.store, 10_000_000, connected=lambda: self.feed.connected)
        self.feed.listeners.append(self.replicas.on_change)
        self.feed.freshness_listeners.append(self.replicas.on_freshness)
        self.feed.resync_listeners.append(self.replicas.on_resync)

    async def __aenter__(self) -> "Env":
        await self.store.ensure_indexes()
        self.feed.start()
        await asyncio.wait_for(self.feed.ready.wait(), 30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.feed.close()
        await self.replicas.close()
        await self.client.close()

    async def caught_up(self, account: str) -> bool:
        """The resident replica is at L2's committed version with L2's freshness."""
        replica = self.replicas.peek(account)
        state = await self.store.account(account) or AccountState(account)
        everything = DateRange(D0 - timedelta(days=30), D0 + timedelta(days=60))
        return (replica is not None and replica.version == state.version
                and replica.fetched_at(everything) == await self.store.fetched_at(account, everything))


# one write: (first day offset, length in days, {(ad index, day offset in range): (impressions, leads)})
writes = st.lists(st.tuples(
    st.integers(0, 8), st.integers(1, 4),
    st.dictionaries(st.tuples(st.integers(0, 2), st.integers(0, 3)),
                    st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 2))), max_size=8),
    st.booleans(),  # also store a fatigue score for the first ad written
    st.sampled_from(SETTINGS),  # the attribution setting the fetch used
), min_size=1, max_size=6)
ranges = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=writes, probes=ranges)
def test_changes_applied_in_memory_equal_a_fresh_l2_read(mongo_uri, db_name, steps, probes):
    account = str(uuid.uuid4().int % 10**12)

    async def scenario():
        async with Env(mongo_uri, db_name) as env:
            # a first write, then the replica loads once: everything after comes from the feed
            await env.store.apply_fetch(account, DateRange(D0, D0), [row(account, "11", D0, 1, 0)], T0)
            replica = await env.replicas.get(account)
            assert replica is not None
            for i, (start, length, cells, score, setting) in enumerate(steps):
                days = DateRange(D0 + timedelta(days=start), D0 + timedelta(days=start + length - 1))
                rows = [row(account, ADS[ad], days.since + timedelta(days=off), imp, leads)
                        for (ad, off), (imp, leads) in sorted(cells.items()) if off < length]
                at = T0 + timedelta(minutes=i + 1)
                write = await env.store.apply_fetch(account, days, rows, at, attribution=setting)
                if score and rows:
                    result = fatigue_pb2.FatigueResult(ad_id=rows[0].ad_id, insights_version=write.version,
                                                       score=float(i)).SerializeToString(deterministic=True)
                    await env.store.save_score(account, rows[0].ad_id, write.version, result, days.since, days.until)
                await wait_until(lambda: env.caught_up(account))
                assert env.replicas.peek(account) is replica, "the replica was re-read instead of applying the change"
                for a, b in probes:
                    probe = DateRange(D0 + timedelta(days=min(a, b)), D0 + timedelta(days=max(a, b)))
                    assert view(replica.snapshot(probe)) == view(await env.store.snapshot(account, probe))
                    assert replica.range_version(probe) == await env.store.range_version(account, probe)
                    for windows in SETTINGS:
                        assert replica.fetched_at(probe, windows) == await env.store.fetched_at(account, probe, windows)
                assert replica.stored_days() == await env.store.stored_days(account)
            if any(score for _, _, _, score, _ in steps):
                await wait_until(lambda: _scores_equal(env, replica, account))
            assert env.replicas.loads == 1 and env.replicas.gaps == 0

    asyncio.run(scenario())


async def _scores_equal(env: Env, replica: AccountReplica, account: str) -> bool:
    stored = await env.store.stored_scores(account, ADS)
    return [(s.ad_id, s.insights_version, s.result) for s in replica.stored_scores(ADS)] == \
        [(d["ad_id"], d["insights_version"], bytes(d["result"])) for d in stored]


async def test_a_skipped_version_drops_the_replica_and_the_next_read_reloads_it(mongo_uri, db_name):
    account = "2002"
    week = DateRange(D0, D0 + timedelta(days=6))
    async with Env(mongo_uri, db_name) as env:
        await env.store.apply_fetch(account, week, [row(account, "11", D0, 5, 1)], T0)
        first = await env.replicas.get(account)
        # a writer claims and commits a version whose rows never reach the stream (as if lost)
        await env.store.accounts.update_one({"_id": account}, {"$inc": {"seq": 1}})
        await env.store.accounts.update_one({"_id": account}, {"$inc": {"version": 1}})
        await env.store.apply_fetch(account, week, [row(account, "11", D0, 6, 1)], T0 + timedelta(hours=1))
        await wait_until(lambda: asyncio.sleep(0, account not in env.replicas))
        assert env.replicas.gaps == 1
        second = await env.replicas.get(account)
        assert second is not None and second is not first and env.replicas.loads == 2
        assert second.version == 3
        assert view(second.snapshot(week)) == view(await env.store.snapshot(account, week))


async def test_a_lost_row_or_lost_history_drops_replicas(mongo_uri, db_name):
    async with Env(mongo_uri, db_name) as env:
        for account in ("3003", "3004"):
            await env.store.apply_fetch(account, DateRange(D0, D0), [row(account, "11", D0, 5, 1)], T0)
            assert await env.replicas.get(account) is not None
        env.replicas.on_change(Change("3003", 2, rows=[row("3003", "11", D0, 9, 1)], incomplete=True))
        assert "3003" not in env.replicas and "3004" in env.replicas
        env.replicas.on_resync()
        assert len(env.replicas) == 0 and env.replicas.bytes_used == 0
        again = await env.replicas.get("3004")
        assert again is not None and view(again.snapshot(DateRange(D0, D0))) == \
            view(await env.store.snapshot("3004", DateRange(D0, D0)))


async def test_changes_committed_while_loading_are_applied_after_the_load(mongo_uri, db_name):
    account = "4004"
    days = DateRange(D0, D0 + timedelta(days=2))
    async with Env(mongo_uri, db_name) as env:
        await env.store.apply_fetch(account, days, [row(account, "11", D0, 5, 1)], T0)
        load = asyncio.ensure_future(env.replicas.get(account))
        await asyncio.sleep(0)  # the load has started reading
        await env.store.apply_fetch(account, days, [row(account, "12", D0, 7, 2)], T0 + timedelta(hours=1))
        replica = await load
        assert replica is not None
        await wait_until(lambda: env.caught_up(account))
        assert view(replica.snapshot(days)) == view(await env.store.snapshot(account, days))


async def test_no_replica_while_the_feed_is_down(mongo_uri, db_name):
    async with Env(mongo_uri, db_name) as env:
        await env.store.apply_fetch("5005", DateRange(D0, D0), [row("5005", "11", D0, 5, 1)], T0)
        await env.feed.close()
        env.feed.connected = False
        assert await env.replicas.get("5005") is None


# -- the byte budget (a pure unit test of ReplicaCache with an in-memory image source) ------------

class ImageSource:
    """Stands in for InsightsStore.account_image: account -> rows of ``n`` ads x 1 day."""

    def __init__(self, sizes: dict[str, int]):
        self.sizes = sizes
        self.reads = 0

    async def account_image(self, account: str) -> AccountImage:
        self.reads += 1
        entries = [(f"{i}", D0, 1, row(account, f"{i}", D0, 10, 1)) for i in range(self.sizes[account])]
        return AccountImage(AccountState(account, 1, 1), entries, {D0: T0}, [])


def replica_bytes(ads: int) -> int:
    return AccountReplica.from_image(AccountImage(AccountState("x", 1, 1), [
        (f"{i}", D0, 1, row("x", f"{i}", D0, 10, 1)) for i in range(ads)], {D0: T0}, [])).size_bytes


async def test_least_recently_used_account_goes_first_and_the_budget_holds():
    one = replica_bytes(5)
    cache = ReplicaCache(ImageSource({"a": 5, "b": 5, "c": 5, "huge": 500}), max_bytes=2 * one + one // 2)
    await cache.get("a")
    await cache.get("b")
    await cache.get("a")          # a is now the most recently used
    await cache.get("c")          # b goes
    assert "a" in cache and "c" in cache and "b" not in cache and cache.evictions == 1
    assert cache.bytes_used == 2 * one <= cache.max_bytes
    assert await cache.get("huge") is None and "huge" not in cache   # larger than the whole budget: L2
    assert "a" in cache and "c" in cache


@settings(max_examples=60, deadline=None)
@given(budget_ads=st.integers(3, 40), ops=st.lists(st.tuples(
    st.sampled_from(["get", "change", "drop"]), st.sampled_from("abcdef"), st.integers(1, 12)), max_size=60))
def test_never_above_the_byte_budget(budget_ads, ops):
    async def scenario():
        source = ImageSource({a: n for a, n in zip("abcdef", (2, 3, 5, 8, 13, 21))})
        cache = ReplicaCache(source, max_bytes=replica_bytes(budget_ads))
        for op, account, n in ops:
            if op == "get":
                replica = await cache.get(account)
                assert (replica is None) == (replica_bytes(source.sizes[account]) > cache.max_bytes)
            elif op == "change" and account in cache:
                version = cache.peek(account).version + 1
                cache.on_change(Change(account, version, rows=[
                    row(account, f"n{i}", D0 + timedelta(days=i), 10, 1) for i in range(n)]))
            elif op == "drop":
                cache.drop(account)
            assert cache.bytes_used <= cache.max_bytes
            assert cache.bytes_used == sum(cache.peek(a).size_bytes for a in "abcdef" if a in cache)

    asyncio.run(scenario())


# -- serving from the replica -----------------------------------------------------------------------

async def test_steady_state_reads_send_nothing_to_l2_and_answer_the_same_bytes(mongo_uri, db_name):
    from services.common.freshness import FreshnessPolicy
    from services.cache_gateway.insights_service import InsightsService
    from services.cache_gateway.l2_reads import L2ReadCounter
    from zoneinfo import ZoneInfo

    from services.cache_gateway.responses import freshness_bytes, freshness_message, insights_response_bytes, page_token
    from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
    from services.common.row_proto import row_to_proto
    from services.cache_gateway.upstream import FetchResult

    account = "6006"
    now = datetime.now(timezone.utc)
    today = now.date()
    week = DateRange(today - timedelta(days=7), today - timedelta(days=1))

    class Upstream:
        async def fetch(self, account_id, days):
            return FetchResult([row(account_id, ad, d, 40 + i, 1) for i, d in enumerate(days.days()) for ad in ADS],
                               now, timezone="UTC")

    counter = L2ReadCounter()
    async with Env(mongo_uri, db_name) as env:
        client = AsyncMongoClient(mongo_uri, tz_aware=True, event_listeners=[counter])
        store = InsightsStore(client, db_name)
        replicas = ReplicaCache(store, 10_000_000, connected=lambda: env.feed.connected)
        env.feed.listeners.append(replicas.on_change)
        env.feed.freshness_listeners.append(replicas.on_freshness)
        service = InsightsService(store, Upstream(), policy=FreshnessPolicy(), replicas=replicas)
        try:
            first = await service.read(account, week)       # fetches, answers from L2
            assert first.entries is None and first.snapshot.rows
            await wait_until(lambda: _caught_up(replicas, store, account))
            before = counter.reads
            results = [await service.read(account, DateRange(week.since + timedelta(days=i), week.until))
                       for i in range(7)]
            assert counter.reads == before, "a steady-state read went to L2"
            assert all(r.entries is not None for r in results)
            policy = FreshnessPolicy()
            for result in results:
                from_l2 = await store.snapshot(account, DateRange(result.snapshot.rows[0].date_start, week.until))
                result.attribution = SETTINGS[0]  # as a service tracking attribution answers
                l2_result = type(result)(from_l2, result.status, result.reason, result.due, [], result.fresh_until,
                                         result.attribution)
                fresh = freshness_bytes(result, policy, ZoneInfo("UTC"), now)
                assert fresh == freshness_message(l2_result, policy, ZoneInfo("UTC"), now).SerializeToString(
                    deterministic=True)
                for fields, offset, size in (((), 0, 5000), ((), 5, 4), (("spend",), 2, 3)):
                    joined = insights_response_bytes(account, result, fields, offset, size, fresh, "b" * 16)
                    assert joined == insights_response_bytes(account, l2_result, fields, offset, size, fresh, "b" * 16)
                    rows = [row_to_proto(r, fields or None) for r in from_l2.rows[offset:offset + size]]
                    assert joined == gw.GetInsightsResponse(
                        account_id=account, version=from_l2.version, rows=rows,
                        freshness=freshness_message(l2_result, policy, ZoneInfo("UTC"), now),
                        next_page_token=page_token(from_l2.version, offset + size, "b" * 16)
                        if offset + size < len(from_l2.rows) else "").SerializeToString(deterministic=True)
        finally:
            await replicas.close()
            await client.close()


async def _caught_up(replicas: ReplicaCache, store: InsightsStore, account: str) -> bool:
    replica = replicas.peek(account)
    state = await store.account(account)
    return replica is not None and state is not None and replica.version == state.version and \
        len(replica.fetched) == len(await store.fetched_at(account, DateRange(D0 - timedelta(days=3650), D0 + timedelta(days=3650))))

"""InsightsService over a real L2 with a scripted upstream: differential fetch, single-flight, SWR, stale-if-error."""

import asyncio
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import grpc
import pytest
from pymongo import AsyncMongoClient

from services.cache_gateway.insights_service import FRESH, STALE_REVALIDATING, STALE_UPSTREAM_ERROR, InsightsService
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.upstream import FetchResult, UpstreamError
from services.common.dates import DateRange
from services.common.insight_row import InsightRow

ACCOUNT = "1001"


class ScriptedUpstream:
    """An upstream that serves generated rows, records each range asked for, and can fail."""

    def __init__(self, clock):
        self.calls: list[DateRange] = []
        self.clock = clock
        self.fail: UpstreamError | None = None
        self.delay = 0.05
        self.impressions = 100

    async def fetch(self, account_id, days):
        self.calls.append(days)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        rows = [InsightRow(account_id=account_id, ad_id="11", date_start=d, date_stop=d,
                           impressions=self.impressions, spend=Decimal("2.5")) for d in days.days()]
        return FetchResult(rows, self.clock(), timezone="UTC")


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
async def env(mongo_uri, db_name):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    store = InsightsStore(client, db_name)
    await store.ensure_indexes()
    clock = Clock()
    upstream = ScriptedUpstream(clock)
    yield InsightsService(store, upstream, clock=clock), upstream, clock
    await client.drop_database(db_name)
    await client.close()


def rng(a: str, b: str) -> DateRange:
    return DateRange(date.fromisoformat(a), date.fromisoformat(b))


async def test_second_read_is_served_from_l2_and_extension_fetches_only_new_days(env):
    service, upstream, _ = env
    first = await service.read(ACCOUNT, rng("2026-01-01", "2026-01-10"))
    assert first.status == FRESH and len(first.snapshot.rows) == 10
    await service.read(ACCOUNT, rng("2026-01-01", "2026-01-10"))
    assert upstream.calls == [rng("2026-01-01", "2026-01-10")]
    await service.read(ACCOUNT, rng("2025-12-30", "2026-01-12"))
    assert upstream.calls[1:] == [rng("2025-12-30", "2025-12-31"), rng("2026-01-11", "2026-01-12")]


async def test_concurrent_overlapping_requests_share_upstream_calls(env):
    service, upstream, _ = env
    results = await asyncio.gather(*[service.read(ACCOUNT, rng("2026-01-01", "2026-01-10")) for _ in range(20)],
                                   service.read(ACCOUNT, rng("2026-01-05", "2026-01-15")))
    fetched = [d for r in upstream.calls for d in r.days()]
    assert len(fetched) == len(set(fetched)) == 15  # no day asked twice
    assert len({r.snapshot.version for r in results[:20]}) == 1


async def test_cancelling_one_caller_does_not_cancel_the_shared_fetch(env):
    service, upstream, _ = env
    upstream.delay = 0.3
    a = asyncio.ensure_future(service.read(ACCOUNT, rng("2026-01-01", "2026-01-05")))
    await asyncio.sleep(0.05)
    b = asyncio.ensure_future(service.read(ACCOUNT, rng("2026-01-01", "2026-01-05")))
    await asyncio.sleep(0.05)
    a.cancel()
    result = await b
    assert len(result.snapshot.rows) == 5 and len(upstream.calls) == 1


async def test_due_days_are_answered_stale_while_revalidating_then_fresh(env):
    service, upstream, clock = env
    days = rng("2026-11-20", "2026-11-29")  # provisional + today's partial day
    await service.read(ACCOUNT, days)
    clock.now += timedelta(hours=7)  # provisional interval (6 h) passed
    upstream.impressions = 150
    stale = await service.read(ACCOUNT, days)
    assert stale.status == STALE_REVALIDATING and "due" in stale.reason
    assert stale.snapshot.rows[0].impressions == 100  # answered at once from L2
    await service.drain()
    fresh = await service.read(ACCOUNT, days)
    assert fresh.status == FRESH and fresh.snapshot.rows[0].impressions == 150
    assert fresh.snapshot.version > stale.snapshot.version


async def test_upstream_failure_serves_cache_marked_with_the_reason_and_l2_unchanged(env):
    service, upstream, clock = env
    days = rng("2026-11-20", "2026-11-28")
    before = await service.read(ACCOUNT, days)
    clock.now += timedelta(hours=7)
    upstream.fail = UpstreamError(grpc.StatusCode.RESOURCE_EXHAUSTED, "Meta rate limit, retry after 12 min")
    await service.read(ACCOUNT, days)
    await service.drain()
    after = await service.read(ACCOUNT, days)
    assert after.status == STALE_UPSTREAM_ERROR and "Meta rate limit, retry after 12 min" in after.reason
    assert after.snapshot.version == before.snapshot.version and after.snapshot.rows == before.snapshot.rows


async def test_range_never_fetched_fails_with_the_upstream_status(env):
    service, upstream, _ = env
    upstream.fail = UpstreamError(grpc.StatusCode.UNAVAILABLE, "Meta is down")
    with pytest.raises(UpstreamError) as err:
        await service.read(ACCOUNT, rng("2026-01-01", "2026-01-03"))
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert await service.store.insights.count_documents({}) == 0


async def test_a_forced_refresh_fetches_itself_instead_of_joining_a_fetch_in_flight(env):
    service, upstream, clock = env
    days = rng("2026-11-20", "2026-11-22")
    await service.read(ACCOUNT, days)
    clock.now += timedelta(hours=7)
    upstream.delay = 0.3
    await service.read(ACCOUNT, days)           # a background refresh starts...
    await asyncio.sleep(0.1)                    # ...and is now waiting on Meta
    calls = len(upstream.calls)
    upstream.impressions = 999                  # Meta restated the days meanwhile
    ranges, _ = await service.refresh(ACCOUNT, days, force=True)
    assert ranges == [days] and len(upstream.calls) == calls + 1  # its own fetch, not the one in flight
    await service.drain()
    assert (await service.read(ACCOUNT, days)).snapshot.rows[0].impressions == 999

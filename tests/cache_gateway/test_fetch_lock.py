"""The cross-replica fetch lock lasts as long as the fetch (redis-py Lock, extended), and a lost lock commits nothing.

Two gateway replicas (two InsightsServices with their own MongoDB clients and locks) over one L2 and one
Redis; the upstream is slower than the lock's TTL.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import grpc
import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from services.cache_gateway.insights_service import InsightsService
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.upstream import FetchResult, UpstreamError
from services.common.dates import DateRange
from services.common.distributed_lock import DistributedLock
from services.common.insight_row import InsightRow

REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNT = "1002"
DAYS = DateRange(date(2026, 1, 1), date(2026, 1, 7))
TTL_S = 0.5
SLOW_S = 4 * TTL_S  # the upstream takes four lock lifetimes


class SlowUpstream:
    """Answers every range after ``SLOW_S`` seconds and counts the calls."""

    def __init__(self) -> None:
        self.calls: list[DateRange] = []

    async def fetch(self, account_id, days):
        self.calls.append(days)
        await asyncio.sleep(SLOW_S)
        rows = [InsightRow(account_id=account_id, ad_id="11", date_start=d, date_stop=d, impressions=100,
                           spend=Decimal("1.5")) for d in days.days()]
        return FetchResult(rows, datetime.now(timezone.utc), timezone="UTC")


@pytest.fixture
async def replicas(mongo_uri, db_name):
    prefix = f"test-fetch-lock-{uuid.uuid4().hex[:10]}:"
    upstream = SlowUpstream()
    commits: list[str] = []
    opened = []
    services = []
    for name in ("a", "b"):
        client = AsyncMongoClient(mongo_uri, tz_aware=True)
        redis_client = aioredis.from_url(REDIS_URL)
        store = InsightsStore(client, db_name)
        await store.ensure_indexes()
        apply_fetch = store.apply_fetch

        async def counted(*args, _apply=apply_fetch, _name=name, **kwargs):
            commits.append(_name)
            return await _apply(*args, **kwargs)

        store.apply_fetch = counted
        lock = DistributedLock(redis_client, prefix=prefix, ttl_s=TTL_S, poll_s=0.01, wait_s=30)
        services.append(InsightsService(store, upstream, lock=lock))
        opened.append((client, redis_client))
    yield services, upstream, commits, opened[0][1], prefix
    for service in services:
        await service.drain()
    async for key in opened[0][1].scan_iter(f"{prefix}*"):
        await opened[0][1].delete(key)
    await opened[0][0].drop_database(db_name)
    for client, redis_client in opened:
        await redis_client.aclose()
        await client.close()


async def test_two_replicas_and_an_upstream_slower_than_the_lock_ttl_make_one_call_and_one_commit(replicas):
    (a, b), upstream, commits, _, _ = replicas
    first = asyncio.create_task(a.read(ACCOUNT, DAYS))
    await asyncio.sleep(TTL_S / 2)  # a holds the lock and is fetching
    second = asyncio.create_task(b.read(ACCOUNT, DAYS))
    ra, rb = await asyncio.gather(first, second)
    assert upstream.calls == [DAYS]          # b waited past several TTLs, then found the days fresh
    assert commits == ["a"]
    assert len(ra.snapshot.rows) == len(rb.snapshot.rows) == 7


async def test_a_lock_lost_during_the_fetch_commits_nothing(replicas):
    (a, _), upstream, commits, redis_client, prefix = replicas
    read = asyncio.create_task(a.read(ACCOUNT, DAYS))
    await asyncio.sleep(TTL_S / 2)
    assert await redis_client.delete(f"{prefix}fetch:{ACCOUNT}") == 1  # as if it expired while a was paused
    with pytest.raises(UpstreamError) as err:
        await read
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and "was not committed" in err.value.message
    assert upstream.calls == [DAYS] and commits == []
    assert await a.store.fetched_at(ACCOUNT, DAYS) == {}

"""The one Meta budget module: windows of calls, in process or shared through Redis, and nobody else's keys."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.common.meta_budget import LocalCallWindow, RedisCallWindow, open_meta_budget
from services.meta_fetcher.settings import FetcherSettings
from services.scheduler.settings import SchedulerSettings

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def key_prefix():
    prefix = f"test:meta_budget:{uuid.uuid4().hex}"
    yield prefix
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_local_window_counts_grants_and_records_of_several_calls():
    now = [0.0]
    window = LocalCallWindow(5, 60, clock=lambda: now[0])
    await window.record(3)
    assert await window.try_acquire(2) == (True, 0.0)
    assert await window.try_acquire() == (False, 60.0)   # 5 of 5 used, the oldest leaves at t=60
    assert await window.used() == 5
    await window.record(0)
    now[0] = 60.0
    assert await window.used() == 0 and (await window.try_acquire())[0]


async def test_redis_window_is_the_same_window_for_every_holder(key_prefix):
    a = RedisCallWindow(REDIS_URL, 5, 60, key_prefix)
    client = aioredis.from_url(REDIS_URL)
    b = RedisCallWindow(client, 5, 60, key_prefix)        # a client of the caller's: left open by aclose
    try:
        await a.record(3)
        assert (await b.try_acquire(2))[0]
        granted, retry_after = await a.try_acquire()
        assert not granted and 0 < retry_after <= 60
        assert await a.used() == await b.used() == 5
    finally:
        await a.aclose()
        await b.aclose()
        assert await client.ping()
        await client.aclose()


async def test_both_services_open_the_same_window_from_their_settings(key_prefix):
    fetcher = open_meta_budget(FetcherSettings(redis_url=REDIS_URL, budget_key_prefix=key_prefix, budget_calls=9))
    scheduler = open_meta_budget(SchedulerSettings(redis_url=REDIS_URL, budget_key_prefix=key_prefix,
                                                   budget_calls=9, share_calls=5))
    try:
        for _ in range(4):
            assert (await fetcher.try_acquire())[0]
        assert await scheduler.used() == 4
    finally:
        await fetcher.aclose()
        await scheduler.aclose()
    assert isinstance(open_meta_budget(FetcherSettings()), LocalCallWindow)


def test_no_module_but_the_budget_module_knows_the_windows_key_layout():
    layout = re.compile(r"""\}:calls|ZREMRANGEBYSCORE""")
    holders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "services").rglob("*.py")
                     if layout.search(p.read_text()))
    assert holders == ["services/common/meta_budget.py"]

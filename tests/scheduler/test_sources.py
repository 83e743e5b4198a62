"""The scheduler reads L2's freshness (and rows per day for call estimates) from the real store layout."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from services.scheduler.settings import SchedulerSettings
from services.scheduler.sources import MongoFreshnessSource

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
async def store(mongo_uri, db_name):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    store = InsightsStore(client, db_name)
    await store.ensure_indexes()
    yield store
    await client.drop_database(db_name)
    await client.close()


def rows(account: str, days: DateRange, ads: int) -> list[InsightRow]:
    return [InsightRow(account_id=account, ad_id=str(ad), date_start=d, date_stop=d, impressions=10)
            for d in days.days() for ad in range(ads)]


async def test_views_hold_the_restatement_window_in_the_accounts_zone_and_rows_per_day(store):
    today = NOW.date()
    window = DateRange(today - timedelta(days=40), today)
    await store.apply_fetch("1001", window, rows("1001", window, 12), NOW - timedelta(hours=1))
    await store.set_account_info("1001", "Pacific/Kiritimati", "USD")  # already the 5th there
    await store.apply_fetch("1002", DateRange(today - timedelta(days=2), today), [], NOW - timedelta(hours=2))
    await store.set_account_info("1002", "UTC", "EUR")  # the gateway records the zone Meta reported
    views = {v.account_id: v for v in await MongoFreshnessSource(store, SchedulerSettings()).load(NOW)}
    kiritimati_today = date(2026, 3, 5)
    v = views["1001"]
    assert v.timezone == "Pacific/Kiritimati" and v.rows_per_day == 12
    assert min(v.fetched_at) == kiritimati_today - timedelta(days=29) and max(v.fetched_at) == today
    assert set(v.fetched_at.values()) == {NOW - timedelta(hours=1)}
    assert views["1002"].rows_per_day == 1.0 and len(views["1002"].fetched_at) == 3


async def test_no_accounts_no_views(store):
    assert await MongoFreshnessSource(store, SchedulerSettings()).load(NOW) == []

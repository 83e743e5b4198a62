"""The change feed loses its store connection before its first event (failCommand closeConnection on
the stream's aggregate and getMore, scoped to the feed's client): a change committed during the outage is
still delivered once the store answers again, because the feed reopens from its recorded position."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

from pymongo import AsyncMongoClient

from services.cache_gateway.change_feed import ChangeFeed
from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from tests.faults.failpoints import fail_command

DAYS = DateRange(date(2026, 4, 1), date(2026, 4, 2))


async def wait_until(predicate, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_change_made_while_the_feed_is_cut_off_before_its_first_event_is_delivered(mongo_uri, db_name):
    app = f"feed-{uuid.uuid4().hex[:8]}"
    feed_client = AsyncMongoClient(mongo_uri, tz_aware=True, appname=app)
    writer_client = AsyncMongoClient(mongo_uri, tz_aware=True)
    feed = ChangeFeed(feed_client[db_name], retry_s=0.2)
    got = []
    feed.listeners.append(got.append)
    feed.start()
    try:
        await asyncio.wait_for(feed.ready.wait(), 10)
        store = InsightsStore(writer_client, db_name)
        await store.ensure_indexes()
        with fail_command(mongo_uri, app, ["getMore", "aggregate"], times=None, close_connection=True):
            await wait_until(lambda: not feed.connected)  # the feed is cut off, before any event
            rows = [InsightRow(account_id="1001", ad_id="11", date_start=d, date_stop=d, impressions=5,
                               spend=Decimal("1.00")) for d in DAYS.days()]
            write = await store.apply_fetch("1001", DAYS, rows, datetime.now(timezone.utc))
            await asyncio.sleep(0.5)  # the feed retries and fails meanwhile
        await wait_until(lambda: any(c.version == write.version and c.rows for c in got))
        assert [c.version for c in got if c.rows] == [write.version]  # exactly once
        assert feed.reconnects >= 1
    finally:
        await feed.close()
        await feed_client.close()
        await writer_client.drop_database(db_name)
        await writer_client.close()

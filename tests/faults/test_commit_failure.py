"""The account-version commit fails after the rows were written (``failCommand`` on the ``$max version``
update, through the real store): the writer's caller gets an error, no reader is told FRESH about the
half-applied write, the next reader or writer repairs the version, and subscribers receive the change.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from services.cache_gateway.change_feed import ChangeFeed
from services.cache_gateway.insights_service import FRESH, STALE_REVALIDATING, InsightsService
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.upstream import FetchResult
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from tests.faults.failpoints import fail_command

ACCOUNT = "1001"
DAYS = DateRange(date(2026, 4, 1), date(2026, 4, 3))  # FINAL days: never due again once fetched
NOW = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)


class Upstream:
    def __init__(self):
        self.impressions = 100

    async def fetch(self, account_id, days):
        rows = [InsightRow(account_id=account_id, ad_id="11", date_start=d, date_stop=d,
                           impressions=self.impressions, spend=Decimal("2.50")) for d in days.days()]
        return FetchResult(rows, datetime.now(timezone.utc))  # no account info: no extra updates


@pytest.fixture
async def env(mongo_uri, db_name):
    app = f"commit-{uuid.uuid4().hex[:8]}"
    client = AsyncMongoClient(mongo_uri, tz_aware=True, appname=app)
    store = InsightsStore(client, db_name, read_retry_s=0.5)
    await store.ensure_indexes()
    upstream = Upstream()
    service = InsightsService(store, upstream, clock=lambda: NOW)
    changes = []
    service.on_change = lambda account, version, ads: changes.append(("local", version, ads))
    feed = ChangeFeed(store.db)
    committed = []
    feed.listeners.append(committed.append)
    feed.start()
    await asyncio.wait_for(feed.ready.wait(), 10)
    yield service, upstream, mongo_uri, app, committed, changes
    await feed.close()
    await service.drain()
    await client.drop_database(db_name)
    await client.close()


async def wait_until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


#: "update" commands of a write before its commit: the account upsert, then the rows' bulk write
UPDATES_BEFORE_COMMIT = 2


async def test_a_failed_commit_is_never_served_fresh_and_reaches_subscribers(env):
    service, upstream, uri, app, committed, changes = env
    first = await service.read(ACCOUNT, DAYS)
    assert first.status == FRESH and first.snapshot.version == 1
    await wait_until(lambda: any(c.version == 1 for c in committed))

    upstream.impressions = 250  # Meta restated the days
    with fail_command(uri, app, ["update"], skip=UPDATES_BEFORE_COMMIT):
        with pytest.raises(OperationFailure):  # the caller of the write gets an error (the boundary makes it
            await service.refresh(ACCOUNT, DAYS, force=True)  # UNAVAILABLE)
    state = await service.store.account(ACCOUNT)
    assert (state.version, state.seq) == (1, 2), "the failpoint must have hit the commit"

    # the next read does not present the uncommitted rows as FRESH ...
    after = await service.read(ACCOUNT, DAYS)
    assert after.status == STALE_REVALIDATING and "did not complete" in after.reason
    # ... and the background repair commits the version; subscribers get the rows as one CHANGE of it
    await service.drain()
    await wait_until(lambda: any(c.version == 2 for c in committed))
    change = next(c for c in committed if c.version == 2)
    assert sorted(r.impressions for r in change.rows) == [250, 250, 250]
    assert ("local", 2, frozenset({"11"})) in changes  # rescored too
    repaired = await service.read(ACCOUNT, DAYS)
    assert repaired.status == FRESH and repaired.snapshot.version == 2
    assert {r.impressions for r in repaired.snapshot.rows} == {250}


async def test_the_next_writer_repairs_and_reports_the_rows(env):
    """An operator's forced Refresh after the failure reports the rows it made visible (not 0)."""
    service, upstream, uri, app, committed, _ = env
    await service.read(ACCOUNT, DAYS)
    upstream.impressions = 300
    with fail_command(uri, app, ["update"], skip=UPDATES_BEFORE_COMMIT):
        with pytest.raises(OperationFailure):
            await service.refresh(ACCOUNT, DAYS, force=True)
    ranges, rows_changed = await service.refresh(ACCOUNT, DAYS, force=True)
    assert rows_changed == 3
    state = await service.store.account(ACCOUNT)
    assert state.version == state.seq == 2
    await wait_until(lambda: any(c.version == 2 for c in committed))
    assert [c.version for c in committed if c.rows or c.removed] == [1, 2]  # one CHANGE per version, in order


async def test_a_reader_does_not_wait_for_an_abandoned_claim_twice(env):
    """Once the claim is older than the read retry window, reads return at once (stale), not after 2 s each."""
    service, upstream, uri, app, _, _ = env
    await service.read(ACCOUNT, DAYS)
    upstream.impressions = 400
    service.lock = _NeverFree()  # the repair cannot run: the claim stays abandoned
    with fail_command(uri, app, ["update"], skip=UPDATES_BEFORE_COMMIT):
        with pytest.raises(OperationFailure):
            await service._fetch_range(ACCOUNT, DAYS)
    await asyncio.sleep(service.store.read_retry_s + 0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await service.read(ACCOUNT, DAYS, revalidate=False)
    assert result.status != FRESH and result.snapshot.pending
    assert loop.time() - started < service.store.read_retry_s


class _NeverFree:
    import contextlib

    @contextlib.asynccontextmanager
    async def hold(self, name):
        raise OperationFailure("lock unavailable in this test")
        yield

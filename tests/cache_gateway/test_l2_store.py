"""L2 store against a real MongoDB-protocol server: versions, guarded upserts, snapshots, quarantine."""

import asyncio
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import DateRange
from services.common.insight_row import InsightRow

ACCOUNT = "1001"
T0 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
DAYS = DateRange(date(2026, 4, 1), date(2026, 4, 3))


def row(day: int, ad: str = "11", impressions: int = 100, leads: str | None = "2") -> InsightRow:
    d = date(2026, 4, day)
    return InsightRow(account_id=ACCOUNT, ad_id=ad, date_start=d, date_stop=d, ad_name=f"Ad {ad}",
                      impressions=impressions, inline_link_clicks=3, spend=Decimal("1.50"),
                      actions=None if leads is None else {"lead": Decimal(leads)})


@pytest.fixture
async def store(mongo_uri, db_name):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    s = InsightsStore(client, db_name)
    await s.ensure_indexes()
    yield s
    await client.drop_database(db_name)
    await client.close()


async def test_first_write_bumps_version_and_rereading_same_data_does_not(store):
    w1 = await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(2)], T0)
    assert (w1.version, w1.rows_changed) == (1, 2)
    w2 = await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(2)], T0 + timedelta(hours=1))
    assert (w2.version, w2.rows_changed) == (1, 0)
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert snap.version == 1 and [r.date_start.day for r in snap.rows] == [1, 2]
    assert set(snap.fetched_at) == set(DAYS.days())  # day 3 had no rows but is known as fetched
    assert snap.fetched_at[date(2026, 4, 3)] == T0 + timedelta(hours=1)


async def test_restated_row_bumps_version_and_is_stored_exactly(store):
    await store.apply_fetch(ACCOUNT, DAYS, [row(1)], T0)
    w = await store.apply_fetch(ACCOUNT, DAYS, [row(1, leads="5")], T0 + timedelta(hours=1))
    assert (w.version, w.rows_changed) == (2, 1)
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert snap.rows[0].actions == {"lead": Decimal("5")} and snap.rows[0].spend == Decimal("1.50")


async def test_unknown_stays_unknown(store):
    r = InsightRow(account_id=ACCOUNT, ad_id="12", date_start=date(2026, 4, 1), date_stop=date(2026, 4, 1))
    await store.apply_fetch(ACCOUNT, DAYS, [r], T0)
    got = (await store.snapshot(ACCOUNT, DAYS)).rows[0]
    assert got.impressions is None and got.actions is None and got.spend is None


async def test_an_older_fetch_never_overwrites_a_newer_one(store):
    newer = store.apply_fetch(ACCOUNT, DAYS, [row(1, impressions=200)], T0 + timedelta(minutes=5))
    older = store.apply_fetch(ACCOUNT, DAYS, [row(1, impressions=100)], T0)
    await asyncio.gather(newer, older)
    # and the other order: the older one lands second
    await store.apply_fetch(ACCOUNT, DAYS, [row(1, impressions=50)], T0 - timedelta(minutes=5))
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert snap.rows[0].impressions == 200
    assert snap.fetched_at[date(2026, 4, 1)] == T0 + timedelta(minutes=5)


async def test_a_row_missing_from_a_later_answer_keeps_its_history(store):
    await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(1, ad="12")], T0)
    w = await store.apply_fetch(ACCOUNT, DAYS, [row(1)], T0 + timedelta(hours=1))
    assert (w.version, w.rows_changed) == (1, 0)
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert [r.ad_id for r in snap.rows] == ["11", "12"]
    assert await store.insights.count_documents({"deleted": True}) == 0


async def test_rows_are_removed_only_on_an_explicit_signal_with_its_reason(store):
    await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(1, ad="12")], T0)
    w = await store.remove_rows(ACCOUNT, [("12", date(2026, 4, 1))], "ad 12 was a duplicate import",
                                T0 + timedelta(hours=1))
    assert (w.version, w.rows_changed, w.changed_ads) == (2, 1, frozenset({"12"}))
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert [r.ad_id for r in snap.rows] == ["11"]
    doc = await store.insights.find_one({"deleted": True})
    assert doc["deleted_reason"] == "ad 12 was a duplicate import" and doc["version"] == 2
    with pytest.raises(ValueError, match="reason"):
        await store.remove_rows(ACCOUNT, [("11", date(2026, 4, 1))], " ", T0 + timedelta(hours=2))


async def test_rows_outside_the_range_are_refused_and_nothing_is_written(store):
    with pytest.raises(ValueError, match="outside"):
        await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(9)], T0)
    assert await store.insights.count_documents({}) == 0
    assert await store.freshness.count_documents({}) == 0


async def test_corrupt_document_is_quarantined_and_its_day_forgotten(store):
    await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(2)], T0)
    await store.insights.update_one({"date": "2026-04-02"}, {"$set": {"row.impressions": "lots"}})
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert [r.date_start.day for r in snap.rows] == [1]
    assert date(2026, 4, 2) not in snap.fetched_at
    assert await store.quarantine.count_documents({}) == 1
    assert date(2026, 4, 2) not in await store.fetched_at(ACCOUNT, DAYS)


async def test_each_fetched_day_counts_the_rows_it_holds_and_the_count_only_grows(store):
    """``row_count`` (issue 16): every document of the day once the write is done — rows this fetch did not
    return are kept (issue 17) and tombstones stay, so neither lowers it; a day without rows counts 0."""
    await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(1, ad="12"), row(2)], T0)
    await store.apply_fetch(ACCOUNT, DAYS, [row(1)], T0 + timedelta(hours=1))  # ad 12 of day 1 not returned
    await store.remove_rows(ACCOUNT, [("11", date(2026, 4, 2))], "a duplicate import", T0 + timedelta(hours=2))
    counts = {d["date"]: d["row_count"] async for d in store.freshness.find({})}
    assert counts == {"2026-04-01": 2, "2026-04-02": 1, "2026-04-03": 0}
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert set(snap.fetched_at) == set(DAYS.days()) and not snap.quarantined
    assert [(r.ad_id, r.date_start.day) for r in snap.rows] == [("11", 1), ("12", 1)]
    assert await store.quarantine.count_documents({}) == 0


async def test_freshness_written_before_row_count_existed_is_served_as_before(store):
    """No migration: a record without ``row_count`` is not checked, and the day's next fetch adds it."""
    await store.apply_fetch(ACCOUNT, DAYS, [row(1), row(1, ad="12")], T0)
    await store.freshness.update_many({}, {"$unset": {"row_count": ""}})
    await store.insights.delete_one({"_id": f"{ACCOUNT}:12:2026-04-01"})  # undetectable without a count
    snap = await store.snapshot(ACCOUNT, DAYS, fetched=await store.fetched_at(ACCOUNT, DAYS))
    assert set(snap.fetched_at) == set(DAYS.days()) and not snap.quarantined
    image = await store.account_image(ACCOUNT)
    assert set(image.fetched_at) == set(DAYS.days())
    await store.apply_fetch(ACCOUNT, DAYS, [row(1)], T0 + timedelta(hours=1))
    assert (await store.freshness.find_one({"date": "2026-04-01"}))["row_count"] == 1


async def test_a_day_holding_fewer_rows_than_it_counts_is_dropped_and_its_strays_quarantined(store):
    """A row whose date was edited leaves the range query: found by its ``_id``, quarantined, and both days it
    names forgotten (fetched again); a row deleted outright leaves its day's freshness record in quarantine."""
    await store.apply_fetch(ACCOUNT, DateRange(date(2026, 4, 1), date(2026, 4, 9)),
                            [row(1), row(1, ad="12"), row(2), row(3)], T0)
    await store.insights.update_one({"_id": f"{ACCOUNT}:12:2026-04-01"}, {"$set": {"date": "2026-04-09"}})
    await store.insights.delete_one({"_id": f"{ACCOUNT}:11:2026-04-02"})
    snap = await store.snapshot(ACCOUNT, DAYS)
    assert snap.quarantined == ["2026-04-01", "2026-04-02"]  # (of the range; 04-09 is forgotten too, below)
    assert set(snap.fetched_at) == {date(2026, 4, 3)}
    assert [(r.ad_id, r.date_start.day) for r in snap.rows] == [("11", 1), ("11", 3)]
    stray = await store.quarantine.find_one({"collection": "insights"})
    assert stray["_id"] == f"insights:{ACCOUNT}:12:2026-04-01" and "_id does not match" in stray["reason"]
    record = await store.quarantine.find_one({"collection": "freshness"})
    assert record["document"]["date"] == "2026-04-02" and "1 row(s) when fetched, 0 found" in record["reason"]
    left = {d["date"] async for d in store.freshness.find({})}
    assert left == {"2026-04-03", "2026-04-04", "2026-04-05", "2026-04-06", "2026-04-07", "2026-04-08"}

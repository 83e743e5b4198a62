"""The gateway's demand tracker and what the scheduler reads of it, over a real MongoDB-protocol store."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pymongo import AsyncMongoClient

from services.cache_gateway.demand_tracker import DemandTracker, load_demand

D1, D2 = date(2026, 3, 1), date(2026, 3, 4)


class Clock:
    def __init__(self):
        self.now = datetime(2026, 3, 4, 12, 0, 30, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
async def demand(mongo_uri, db_name):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield client[db_name]["demand"]
    await client.drop_database(db_name)
    await client.close()


async def test_reads_and_subscribers_of_every_replica_add_up(demand):
    clock = Clock()
    a = DemandTracker(demand, "gw-a", clock=clock)
    b = DemandTracker(demand, "gw.b/2", clock=clock)  # ids with dots become safe field names
    for _ in range(3):
        a.record_read("1001", D1, D2)
    b.record_read("1001", D2, D2)
    a.record_read("1002", D1, D1)
    a.subscribed("1001")
    a.subscribed("1001")
    b.subscribed("1001")
    b.subscribed("1003")
    b.unsubscribed("1003")
    await a.flush()
    await b.flush()
    got = await load_demand(demand, clock.now)
    assert (got["1001"].reads_last_hour, got["1001"].subscribers, got["1001"].last_read_at) == (4, 3, clock.now)
    assert (got["1001"].last_since, got["1001"].last_until) in {(D2.isoformat(),) * 2, (D1.isoformat(), D2.isoformat())}
    assert (got["1002"].reads_last_hour, got["1002"].subscribers) == (1, 0)
    assert got["1003"].subscribers == 0 and got["1003"].last_read_at is None
    a.unsubscribed("1001")
    await a.flush()
    assert (await load_demand(demand, clock.now))["1001"].subscribers == 2


async def test_reads_leave_the_hour_and_dead_replicas_stop_counting(demand):
    clock = Clock()
    a = DemandTracker(demand, "gw-a", clock=clock)
    b = DemandTracker(demand, "gw-b", clock=clock)
    a.record_read("1001", D1, D2)
    a.subscribed("1001")
    b.subscribed("1001")
    await a.flush()
    await b.flush()
    clock.now += timedelta(minutes=40)
    a.record_read("1001", D1, D2)
    await a.flush()  # a heartbeats; b has died without a word
    got = (await load_demand(demand, clock.now, heartbeat_ttl_s=60))["1001"]
    assert (got.reads_last_hour, got.subscribers) == (2, 1)
    clock.now += timedelta(minutes=30)
    await a.flush()
    got = (await load_demand(demand, clock.now, heartbeat_ttl_s=60))["1001"]
    assert (got.reads_last_hour, got.subscribers) == (1, 1)  # the first read is more than an hour old
    clock.now += timedelta(hours=2)
    assert await DemandTracker(demand, "gw-c", clock=clock, prune_after_s=3600).prune_dead_instances() == 2
    assert (await load_demand(demand, clock.now))["1001"].subscribers == 0
    assert (await load_demand(demand, clock.now))["1001"].last_read_at == clock.now - timedelta(hours=2, minutes=30)


async def test_a_closing_replica_withdraws_its_subscribers(demand):
    clock = Clock()
    a = DemandTracker(demand, "gw-a", clock=clock, flush_interval_s=3600)
    await a.start()
    a.subscribed("1001")
    a.record_read("1001", D1, D2)
    await a.close()
    got = (await load_demand(demand, clock.now))["1001"]
    assert (got.subscribers, got.reads_last_hour) == (0, 1)
    assert await demand.count_documents({"kind": "instance"}) == 0


async def test_nothing_is_lost_when_a_flush_fails():
    class Broken:
        def __init__(self):
            self.fail = True
            self.ops = []

        async def bulk_write(self, ops, ordered):
            if self.fail:
                raise ConnectionError("store down")
            self.ops.extend(ops)

    store = Broken()
    tracker = DemandTracker(store, "gw-a", clock=Clock())
    tracker.record_read("1001", D1, D2)
    tracker.subscribed("1001")
    with pytest.raises(ConnectionError):
        await tracker.flush()
    tracker.record_read("1001", D1, D2)
    store.fail = False
    await tracker.flush()
    incs = [op._doc["$inc"] for op in store.ops if "$inc" in op._doc]
    assert sum(v for inc in incs for v in inc.values()) == 2
    assert any("subscribers.gw-a" in op._doc.get("$set", {}) for op in store.ops)


def test_bad_arguments_are_refused():
    tracker = DemandTracker(None, "gw-a")
    with pytest.raises(ValueError, match="before since"):
        tracker.record_read("1001", D2, D1)
    with pytest.raises(ValueError, match="account_id"):
        tracker.record_read("", D1, D2)
    with pytest.raises(ValueError, match="account_id"):
        tracker.subscribed("")
    with pytest.raises(ValueError):
        DemandTracker(None, "gw-a", flush_interval_s=0)
    assert DemandTracker(None, "host.example/7").instance_id == "host_example_7"  # a safe MongoDB field name
    tracker.unsubscribed("1001")  # never below zero
    assert tracker.live_subscribers("1001") == 0

"""Two gateway replicas sharing MongoDB and Redis: consistency, restatement, Meta down (issue: three tiers)."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import httpx
import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc, insights_pb2

pytestmark = pytest.mark.e2e

SYNTH = "act_900000000001"
Y = datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date() - timedelta(days=1)


def day(n: int) -> str:
    return (Y - timedelta(days=n)).isoformat()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    prefix = f"adfatigue-test-{uuid.uuid4().hex[:8]}:"
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("replicas"), gateway_port=0, scheduler_interval_s=3600,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"replicas_{os.getpid()}", "REDIS_URL": "redis://127.0.0.1:6379/0",
                   "REDIS_KEY_PREFIX": prefix, "META_BUDGET_KEY_PREFIX": prefix + "budget",
                   "META_BACKOFF_INITIAL_S": "0.05", "META_BACKOFF_MAX_S": "0.2"},
    )
    with LocalSystem(config) as running:
        running.add_gateway_replica("cache_gateway_b")
        # a replica whose provisional days are due after 1 s, to see stale answers
        running.add_gateway_replica("cache_gateway_eager", {"FRESHNESS_PROVISIONAL_SECONDS": "1"})
        yield running
    import redis
    client = redis.Redis()
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


def md(system):
    return bearer(mint_token(system.jwt_secret, "replica-test", ["*"], ["operator"]))


def stub(system, name):
    return cache_gateway_pb2_grpc.CacheGatewayStub(grpc.insecure_channel(system.processes[name].address))


def sandbox(system, path, method="get", **kw):
    return getattr(httpx, method)(f"{system.sandbox_url}{path}", timeout=10, **kw)


def first_page_requests(system, since, until):
    return [r for r in sandbox(system, "/_sandbox/stats").json()["requests"]
            if r.get("since") == since and r.get("until") == until and not r.get("after")]


def test_fifty_concurrent_identical_requests_on_two_replicas_make_one_upstream_call(system):
    since, until = day(60), day(55)  # final days: fetched once, never due again
    request = gw.GetInsightsRequest(account_id=SYNTH, since=since, until=until)
    stubs = [stub(system, "cache_gateway"), stub(system, "cache_gateway_b")]
    metadata = md(system)
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda i: stubs[i % 2].GetInsights(request, metadata=metadata, timeout=60), range(50)))
    assert len(first_page_requests(system, since, until)) == 1
    assert len({r.SerializeToString() for r in replies}) == 1
    assert replies[0].rows and replies[0].version > 0


def test_restated_provisional_day_raises_the_version_and_both_l1s_drop_it(system):
    a, b = stub(system, "cache_gateway"), stub(system, "cache_gateway_b")
    request = gw.GetInsightsRequest(account_id=SYNTH, since=day(5), until=day(1))
    before_a, before_b = (s.GetInsights(request, metadata=md(system), timeout=60) for s in (a, b))
    assert before_a.SerializeToString() == before_b.SerializeToString()  # both L1s now hold it
    r = sandbox(system, "/_sandbox/restate", "post",
                json={"account_id": SYNTH, "date": day(3), "actions_delta": {"lead": "7"}})
    assert r.status_code == 200, r.text
    refreshed = a.Refresh(gw.RefreshRequest(account_id=SYNTH, since=day(3), until=day(3), force=True),
                          metadata=md(system), timeout=60)
    assert refreshed.rows_changed > 0
    deadline = time.monotonic() + 5
    while True:  # the other replica learns through its change stream (milliseconds)
        after_a, after_b = (s.GetInsights(request, metadata=md(system), timeout=60) for s in (a, b))
        if after_b.version > before_b.version or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert after_a.version == after_b.version == refreshed.version > before_a.version
    leads = lambda reply: sum(float(r.actions.get("lead", "0")) for r in reply.rows if r.date_start == day(3))
    assert leads(after_a) == leads(after_b) == leads(before_a) + 7 * len({r.ad_id for r in before_a.rows
                                                                         if r.date_start == day(3)})


def test_a_final_day_is_never_refetched(system):
    since, until = day(50), day(45)
    a = stub(system, "cache_gateway")
    a.GetInsights(gw.GetInsightsRequest(account_id=SYNTH, since=since, until=until), metadata=md(system), timeout=60)
    seen = sandbox(system, "/_sandbox/stats").json()["insights_requests"]
    reply = a.Refresh(gw.RefreshRequest(account_id=SYNTH, since=since, until=until), metadata=md(system), timeout=60)
    assert list(reply.fetched_ranges) == [] and reply.upstream_calls == 0
    assert sandbox(system, "/_sandbox/stats").json()["insights_requests"] == seen


def test_meta_down_serves_cache_marked_stale_and_refuses_what_was_never_fetched(system):
    eager = stub(system, "cache_gateway_eager")
    request = gw.GetInsightsRequest(account_id=SYNTH, since=day(12), until=day(8))
    good = eager.GetInsights(request, metadata=md(system), timeout=60)
    time.sleep(1.2)  # provisional days now due on this replica
    sandbox(system, "/_sandbox/faults", "post", json={"count": 1000, "kind": "error", "code": 2})
    try:
        first = eager.GetInsights(request, metadata=md(system), timeout=60)
        assert first.freshness.status in (insights_pb2.STALE_REVALIDATING, insights_pb2.STALE_UPSTREAM_ERROR)
        deadline = time.monotonic() + 20
        while True:
            stale = eager.GetInsights(request, metadata=md(system), timeout=60)
            if stale.freshness.status == insights_pb2.STALE_UPSTREAM_ERROR or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stale.freshness.status == insights_pb2.STALE_UPSTREAM_ERROR
        assert "Meta" in stale.freshness.reason and stale.freshness.reason
        assert stale.version == good.version and list(stale.rows) == list(good.rows)  # L2 unchanged
        with pytest.raises(grpc.RpcError) as err:
            eager.GetInsights(gw.GetInsightsRequest(account_id=SYNTH, since=day(80), until=day(78)),
                              metadata=md(system), timeout=60)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no cached data" in err.value.details()
    finally:
        sandbox(system, "/_sandbox/faults", "delete")


def test_a_deposed_scheduler_leaders_refresh_is_refused(system):
    from pymongo import MongoClient, ReturnDocument
    prefix = system.config.extra_env["REDIS_KEY_PREFIX"]
    with MongoClient(system.mongodb_uri) as client:  # a newer leader took the lease: its durable record moves on
        record = client[system.config.extra_env["MONGODB_DB"]]["leases"].find_one_and_update(
            {"_id": f"{prefix}scheduler:leader"}, {"$inc": {"token": 2}, "$set": {"holder": "newer"}},
            upsert=True, return_document=ReturnDocument.AFTER)
    newest = record["token"]
    scheduler = bearer(mint_token(system.jwt_secret, "scheduler", ["*"], ["scheduler"]))
    a = stub(system, "cache_gateway")
    request = gw.RefreshRequest(account_id=SYNTH, since=day(50), until=day(49))
    ok = a.Refresh(request, metadata=scheduler + (("x-fencing-token", str(newest)),), timeout=60)
    assert ok.account_id
    for replica in ("cache_gateway", "cache_gateway_b"):  # both replicas agree
        with pytest.raises(grpc.RpcError) as err:
            stub(system, replica).Refresh(request, metadata=scheduler + (("x-fencing-token", str(newest - 1)),),
                                          timeout=60)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        a.Refresh(request, metadata=scheduler + (("x-fencing-token", "soon"),), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_identical_misses_share_one_answer(system):
    """Issue 14: after a write, N callers of one widget missed L1 together and each serialized / scored the same
    range; now the first computes the answer and the others receive the same bytes (counted as joined reads)."""
    since, until = day(70), day(62)
    metadata = md(system)
    gateway = stub(system, "cache_gateway_b")
    insights = gw.GetInsightsRequest(account_id=SYNTH, since=since, until=until)
    gateway.GetInsights(insights, metadata=metadata, timeout=60)  # stored and resident: the GetFatigue reads memory
    # the change-feed event of that write must have come back before the burst: it voids what was memoised before
    # it, and a first answer voided that way makes a second miss that overlaps nothing (2 misses, 0 joined, seen
    # on a loaded machine). Settled = two repeats in a row, 0.3 s apart, are L1 hits.
    hits_in_a_row, deadline = 0, time.monotonic() + 30
    while hits_in_a_row < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = gateway.GetStats(gw.GetStatsRequest(), metadata=metadata, timeout=10).l1_hits
        gateway.GetInsights(insights, metadata=metadata, timeout=60)
        hit = gateway.GetStats(gw.GetStatsRequest(), metadata=metadata, timeout=10).l1_hits > seen
        hits_in_a_row = hits_in_a_row + 1 if hit else 0
    before = gateway.GetStats(gw.GetStatsRequest(), metadata=metadata, timeout=10)
    request = gw.GetFatigueRequest(account_id=SYNTH, since=since, until=until)
    # all 30 on the wire at once (futures from one thread: a thread pool staggered them on a busy machine, and
    # calls that no longer overlap have nothing to share)
    calls = [gateway.GetFatigue.future(request, metadata=metadata, timeout=60) for _ in range(30)]
    replies = [c.result() for c in calls]
    after = gateway.GetStats(gw.GetStatsRequest(), metadata=metadata, timeout=10)
    assert len({r.SerializeToString() for r in replies}) == 1 and replies[0].results
    missed = after.l1_misses - before.l1_misses
    joined = after.upstream_calls_avoided - before.upstream_calls_avoided
    assert missed >= 2, "the calls did not overlap: nothing to share"
    assert joined >= 1 and after.upstream_calls == before.upstream_calls  # shared, and Meta was not asked

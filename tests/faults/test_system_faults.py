"""The fault matrix against the whole system as processes (sandbox, fetcher, engine, two gateways,
scheduler) on the session's MongoDB (test commands on, so failpoints can be armed for every service).

Invariants checked after every fault: a caller sees an answer or a clear retryable status
(UNAVAILABLE / DEADLINE_EXCEEDED) whose message holds no internals, never UNKNOWN; once the fault is
gone the answer is correct or marked stale with a reason; versions seen by a stream only go up, and a
resumed stream loses and repeats no version.
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import grpc
import httpx
import pytest
from pymongo import MongoClient

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from tests.e2e.test_subscriptions import SYNTH, YESTERDAY, Collector, md, restate_and_refresh
from tests.faults.failpoints import fail_command

pytestmark = pytest.mark.e2e

INTERNALS = re.compile(r"class '|Error\b|Exception|Traceback|errmsg|failCommand|pymongo|redis\.|\b127\.0\.0\.1:\d+")
CLEAR = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FRESH, STALE_REVALIDATING, STALE_UPSTREAM_ERROR = 1, 2, 3


@pytest.fixture(scope="module")
def system(tmp_path_factory, mongo_uri):
    db = f"faults_{os.getpid()}"
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("faults"), gateway_port=0, scheduler_interval_s=3600,
        mongodb_uri=mongo_uri, extra_env={"MONGODB_DB": db, "FRESHNESS_PARTIAL_SECONDS": "2"},
    )
    with LocalSystem(config) as running:
        running.add_gateway_replica("cache_gateway_b")
        yield running
    with MongoClient(mongo_uri) as client:
        client.drop_database(db)


def days_ago(a: int, b: int) -> tuple[str, str]:
    return (YESTERDAY - timedelta(days=a)).isoformat(), (YESTERDAY - timedelta(days=b)).isoformat()


def call(system, method: str, gateway: str = "cache_gateway", **request):
    with grpc.insecure_channel(system.processes[gateway].address) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        message = {"GetInsights": gw.GetInsightsRequest, "Refresh": gw.RefreshRequest}[method](**request)
        return getattr(stub, method)(message, metadata=md(system), timeout=60)


def answer_or_clear_status(system, method: str, **request):
    """The call's reply, or None after checking that it failed with a clear status."""
    try:
        return call(system, method, **request)
    except grpc.RpcError as exc:
        assert exc.code() in CLEAR, (exc.code(), exc.details())
        assert not INTERNALS.search(exc.details() or ""), exc.details()
        assert exc.details(), "a failure must say what to do"
        return None


def correct_or_marked_stale(reply: gw.GetInsightsResponse) -> None:
    assert reply.rows, "the synthetic account has rows every day"
    assert reply.freshness.status in (FRESH, STALE_REVALIDATING, STALE_UPSTREAM_ERROR)
    if reply.freshness.status != FRESH:
        assert reply.freshness.reason


def test_fetcher_killed_and_restarted_the_first_request_succeeds(system):
    assert call(system, "GetInsights", account_id=SYNTH, since=days_ago(50, 50)[0], until=days_ago(50, 50)[1]).rows
    fetcher = system.processes["meta_fetcher"]
    fetcher.proc.kill()  # kill -9
    fetcher.proc.wait(10)
    for d in (44, 45, 46):  # callers meanwhile get a clear UNAVAILABLE (and the gateway's channel backs off)
        since, until = days_ago(d, d)
        assert answer_or_clear_status(system, "GetInsights", account_id=SYNTH, since=since, until=until) is None
        time.sleep(1.0)
    system.restart("meta_fetcher")  # same port
    since, until = days_ago(64, 60)  # never fetched: the gateway must reach the restarted fetcher
    reply = call(system, "GetInsights", account_id=SYNTH, since=since, until=until)
    assert reply.rows and reply.freshness.status == FRESH


@pytest.mark.parametrize("command", ["find", "insert", "update", "findAndModify", "aggregate", "getMore"])
@pytest.mark.parametrize("mode", ["error", "close_connection"])
def test_store_failpoints_during_reads_and_refreshes(system, mongo_uri, command, mode):
    offset = 20 + 3 * ["find", "insert", "update", "findAndModify", "aggregate", "getMore"].index(command)
    since, until = days_ago(offset + (1 if mode == "error" else 0), offset + (1 if mode == "error" else 0))
    before = call(system, "GetInsights", account_id=SYNTH, since=days_ago(5, 5)[0], until=days_ago(5, 5)[1])
    with fail_command(mongo_uri, None, [command], times=3, close_connection=mode == "close_connection"):
        answer_or_clear_status(system, "GetInsights", account_id=SYNTH, since=since, until=until)
        answer_or_clear_status(system, "Refresh", account_id=SYNTH, since=days_ago(5, 5)[0],
                               until=days_ago(5, 5)[1], force=True)
    deadline = time.monotonic() + 30
    while True:  # the fault is gone: answers are correct (or stale with a reason) again
        reply = answer_or_clear_status(system, "GetInsights", account_id=SYNTH, since=since, until=until)
        if reply is not None:
            break
        assert time.monotonic() < deadline, "the gateway did not recover"
        time.sleep(0.5)
    correct_or_marked_stale(reply)
    after = call(system, "GetInsights", account_id=SYNTH, since=days_ago(5, 5)[0], until=days_ago(5, 5)[1])
    assert after.version >= before.version  # monotonic


def test_sandbox_errors_give_a_clear_status_or_a_stale_answer_with_the_reason(system):
    sandbox = system.sandbox_url
    cached = days_ago(-1, -1)  # today in the account's zone: due again after FRESHNESS_PARTIAL_SECONDS
    first = call(system, "GetInsights", account_id=SYNTH, since=cached[0], until=cached[1])
    assert first.freshness.status == FRESH
    fault = {"account_id": SYNTH, "kind": "error", "code": 2, "count": 50}  # transient API errors
    assert httpx.post(f"{sandbox}/_sandbox/faults", json=fault, timeout=10).status_code == 200
    try:
        since, until = days_ago(75, 73)  # never fetched: nothing to serve
        assert answer_or_clear_status(system, "GetInsights", account_id=SYNTH, since=since, until=until) is None
        time.sleep(2.5)
        statuses = []
        deadline = time.monotonic() + 30
        while STALE_UPSTREAM_ERROR not in statuses:
            reply = call(system, "GetInsights", account_id=SYNTH, since=cached[0], until=cached[1])
            statuses.append(reply.freshness.status)
            assert reply.freshness.status != FRESH and reply.freshness.reason
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        httpx.delete(f"{sandbox}/_sandbox/faults", timeout=10)


def test_a_rescoring_lost_to_an_engine_outage_is_retried_until_scores_catch_up(system, mongo_uri):
    """Attacker trial finding: with fatigue_engine down during a write, the rescoring was dropped and the
    changed ads kept scores of the old insights version (Subscribe served them) until some later write."""
    engine = system.processes["fatigue_engine"]
    engine.stop()
    try:
        version = restate_and_refresh(system, days_ago(5, 5)[0])
        time.sleep(2)  # at least one rescoring attempt fails while the engine is down
    finally:
        system.restart("fatigue_engine")  # same port; no further write follows
    with MongoClient(mongo_uri) as client:
        db = client[f"faults_{os.getpid()}"]
        changed = set(db["insights"].distinct("ad_id", {"account_id": SYNTH[4:], "version": version}))
        assert changed
        deadline = time.monotonic() + 90
        while True:
            caught_up = set(db["scores"].distinct("ad_id", {"account_id": SYNTH[4:], "ad_id": {"$in": sorted(changed)},
                                                            "insights_version": {"$gte": version}}))
            if caught_up == changed:
                break
            assert time.monotonic() < deadline, f"still on old scores: {sorted(changed - caught_up)}"
            time.sleep(0.5)
    log = (system.logs / "cache_gateway.jsonl").read_text()
    assert "trying again in" in log  # the scores came from the retry


def test_gateway_killed_mid_stream_resume_elsewhere_loses_and_repeats_nothing(system, mongo_uri):
    system.add_gateway_replica("cache_gateway_doomed")
    sub = Collector(system, "cache_gateway_doomed", SYNTH)
    sub.wait_for(1)
    first = restate_and_refresh(system, days_ago(3, 3)[0], gateway="cache_gateway_b")
    deadline = time.monotonic() + 20
    while first not in [e.version for e in sub.data_events()]:
        assert time.monotonic() < deadline, f"change {first} never arrived: {[e.version for e in sub.events]}"
        time.sleep(0.05)
    seen = [e.version for e in sub.data_events()]
    doomed = system.processes["cache_gateway_doomed"]
    doomed.proc.kill()  # kill -9: the stream ends without a message
    doomed.proc.wait(10)
    sub.thread.join(10)
    assert sub.error is not None
    sub.close()
    missed = [restate_and_refresh(system, days_ago(d, d)[0], gateway="cache_gateway_b") for d in (2, 4)]
    with MongoClient(mongo_uri) as client:  # let the rescoring of both versions land
        scores = client[f"faults_{os.getpid()}"]["scores"]
        deadline = time.monotonic() + 30
        while scores.count_documents({"account_id": SYNTH[4:], "insights_version": {"$in": missed}}) < 1:
            assert time.monotonic() < deadline, "no score stored for the missed versions"
            time.sleep(0.2)
    resumed = Collector(system, "cache_gateway", SYNTH, from_version=seen[-1])
    deadline = time.monotonic() + 20
    while len({e.version for e in resumed.events}) < 2:
        assert time.monotonic() < deadline, f"replay incomplete: {[e.version for e in resumed.events]}"
        time.sleep(0.05)
    replay = resumed.events[:2]
    got = [(gw.SubscribeEvent.Kind.Name(e.kind), e.version, len(e.rows), len(e.fatigue)) for e in resumed.events]
    assert [e.kind for e in replay] == [gw.SubscribeEvent.CHANGE] * 2, got
    assert [e.version for e in replay] == missed, (missed, got)  # each missed version once, in order
    assert any(f.insights_version in missed for e in replay for f in e.fatigue), got  # scores replayed too
    # data versions are never lost, repeated or going down; a score stored later for a version already
    # sent comes as a scores-only CHANGE of that version, each (ad, version) score once
    versions = seen + [e.version for e in resumed.events if e.rows or e.removed]
    assert versions == sorted(set(versions)), (seen, got)
    scores = [(f.ad_id, f.insights_version) for e in resumed.events for f in e.fatigue]
    assert len(scores) == len(set(scores)), got
    assert all(e.version <= max(versions) for e in resumed.events), got
    resumed.close()

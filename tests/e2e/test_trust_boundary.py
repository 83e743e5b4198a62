"""The trust boundary over the real processes (issue 15): each test is one finding of the attack.

One system as ``adfatigue up`` starts it (embedded store or MONGODB_URI, sandbox,
meta_fetcher, fatigue_engine, cache_gateway, scheduler), every call over loopback.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import jwt
import pytest
from pymongo import MongoClient

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import (
    cache_gateway_pb2 as gw, cache_gateway_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc,
)
from services.cache_gateway.demand_fencing import FENCING_METADATA_KEY
from services.common.settings import lease_key_for

pytestmark = pytest.mark.e2e

ACCOUNT = "act_900000000001"  # the sandbox's synthetic account (America/Los_Angeles): no dataset needed
_TODAY = datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date()
DAYS = dict(since=(_TODAY - timedelta(days=5)).isoformat(), until=(_TODAY - timedelta(days=3)).isoformat())


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("trust"), gateway_port=0,
        scheduler_interval_s=3600, mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"trust_{os.getpid()}"},
    )
    with LocalSystem(config) as running:
        yield running


@pytest.fixture(scope="module")
def db(system):
    client = MongoClient(system.mongodb_uri, tz_aware=True)
    yield client[system.config.extra_env["MONGODB_DB"]]
    client.close()


@pytest.fixture(scope="module")
def stub(system):
    channel = grpc.insecure_channel(system.processes["cache_gateway"].address)
    yield cache_gateway_pb2_grpc.CacheGatewayStub(channel)
    channel.close()


def md(system, accounts=("*",), roles=(), subject="trust-test", **kw):
    return bearer(mint_token(system.jwt_secret, subject, list(accounts), list(roles), **kw))


def refused(call, code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == code, (err.value.code(), err.value.details())
    for w in words:
        assert w in err.value.details(), (w, err.value.details())
    return err.value.details()


def current_token(db) -> int:
    deadline = time.monotonic() + 30
    while True:
        doc = db["leases"].find_one({"_id": lease_key_for()})
        if doc:
            return int(doc["token"])
        assert time.monotonic() < deadline, "the scheduler took no lease token"
        time.sleep(0.2)


def test_a_reader_cannot_present_a_fencing_token_nor_lock_the_scheduler_out(system, stub, db):
    """Finding 1: a one-account reader's Refresh with x-fencing-token 999999999999 was accepted and then
    refused every refresh of the real scheduler."""
    request = gw.RefreshRequest(account_id=ACCOUNT, **DAYS)
    reader = md(system, [ACCOUNT]) + ((FENCING_METADATA_KEY, "999999999999"),)
    refused(lambda: stub.Refresh(request, timeout=60, metadata=reader), grpc.StatusCode.PERMISSION_DENIED,
            "scheduler")
    token = current_token(db)
    scheduler = md(system, ["*"], ["scheduler"], "scheduler")
    fenced = lambda t: scheduler + ((FENCING_METADATA_KEY, str(t)),)
    reply = stub.Refresh(request, timeout=120, metadata=fenced(token))  # the leader is not locked out
    assert reply.account_id == ACCOUNT[4:]
    refused(lambda: stub.Refresh(request, timeout=60, metadata=fenced(999999999999)),
            grpc.StatusCode.FAILED_PRECONDITION, "never issued")
    if token > 1:
        refused(lambda: stub.Refresh(request, timeout=60, metadata=fenced(token - 1)),
                grpc.StatusCode.FAILED_PRECONDITION, "no longer the leader")
    stub.Refresh(request, timeout=120, metadata=fenced(token))  # still fine after the forged one
    refused(lambda: stub.Refresh(request, timeout=60, metadata=scheduler), grpc.StatusCode.FAILED_PRECONDITION,
            FENCING_METADATA_KEY)
    refused(lambda: stub.Refresh(gw.RefreshRequest(account_id=ACCOUNT, force=True, **DAYS), timeout=60,
                                 metadata=md(system, [ACCOUNT])), grpc.StatusCode.PERMISSION_DENIED, "operator")


def test_operational_rpcs_need_the_operator_role(system, stub):
    """Finding: GetStats answered any authenticated caller."""
    refused(lambda: stub.GetStats(gw.GetStatsRequest(), timeout=10, metadata=md(system)),
            grpc.StatusCode.PERMISSION_DENIED, "operator")
    assert stub.GetStats(gw.GetStatsRequest(), timeout=10, metadata=md(system, roles=["operator"])).l1_max_bytes > 0
    with grpc.insecure_channel(system.processes["scheduler"].address) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerStub(channel)
        refused(lambda: scheduler.GetStatus(scheduler_pb2.GetStatusRequest(), timeout=10, metadata=md(system)),
                grpc.StatusCode.PERMISSION_DENIED, "operator")
        refused(lambda: scheduler.RunNow(scheduler_pb2.RunNowRequest(), timeout=10,
                                         metadata=md(system, roles=["scheduler"])),
                grpc.StatusCode.PERMISSION_DENIED, "operator")
        assert scheduler.GetStatus(scheduler_pb2.GetStatusRequest(), timeout=10,
                                   metadata=md(system, roles=["operator"])).instance_id


def test_wildcard_like_account_claims_and_late_tokens_are_unauthenticated(system, stub):
    """Findings: ``accounts: ["act_*"]`` read every account; tokens expired up to 30 s ago were accepted."""
    request = gw.GetInsightsRequest(account_id=ACCOUNT, **DAYS)
    now = int(time.time())
    forged = jwt.encode({"sub": "x", "accounts": ["act_*"], "exp": now + 60}, system.jwt_secret)
    refused(lambda: stub.GetInsights(request, timeout=30, metadata=bearer(forged)),
            grpc.StatusCode.UNAUTHENTICATED, "act_<digits>")
    late = jwt.encode({"sub": "x", "accounts": ["*"], "exp": now - 10}, system.jwt_secret)
    refused(lambda: stub.GetInsights(request, timeout=30, metadata=bearer(late)),
            grpc.StatusCode.UNAUTHENTICATED, "expired")
    assert stub.GetInsights(request, timeout=120, metadata=md(system, [ACCOUNT])).rows


def test_internal_services_refuse_anonymous_callers_and_undecodable_bytes_are_invalid_argument(system):
    """Findings: meta_fetcher and fatigue_engine answered anonymous callers; malformed protobuf bytes got
    UNKNOWN with a traceback in the log."""
    garbage = b"\xff\xff\xff\xff"
    for name, method in (("meta_fetcher", "/adfatigue.v1.MetaFetcher/FetchInsights"),
                         ("fatigue_engine", "/adfatigue.v1.FatigueEngine/ScoreAds")):
        with grpc.insecure_channel(system.processes[name].address) as channel:
            call = channel.unary_unary(method)
            refused(lambda: call(b"", timeout=10), grpc.StatusCode.UNAUTHENTICATED, "Bearer")
            refused(lambda: call(b"", timeout=10, metadata=md(system, roles=["operator"])),
                    grpc.StatusCode.PERMISSION_DENIED, "gateway")
            refused(lambda: call(garbage, timeout=10, metadata=md(system, roles=["gateway"])),
                    grpc.StatusCode.INVALID_ARGUMENT, "not a valid adfatigue.v1.")
    with grpc.insecure_channel(system.processes["cache_gateway"].address) as channel:
        for method in ("GetInsights", "GetStats", "Refresh"):
            call = channel.unary_unary(f"/adfatigue.v1.CacheGateway/{method}")
            refused(lambda: call(garbage, timeout=10, metadata=md(system, roles=["operator"])),
                    grpc.StatusCode.INVALID_ARGUMENT, "not a valid adfatigue.v1.")
        stream = channel.unary_stream("/adfatigue.v1.CacheGateway/Subscribe")
        refused(lambda: next(iter(stream(garbage, timeout=10, metadata=md(system)))),
                grpc.StatusCode.INVALID_ARGUMENT, "SubscribeRequest")
    for name in ("cache_gateway", "meta_fetcher", "fatigue_engine"):
        log = system.processes[name].log_path.read_text()
        assert "DecodeError" not in log and "Traceback" not in log, (name, log[-2000:])


def wait_for_docs(collection, query: dict, n: int, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while (docs := list(collection.find(query, {"_id": 0}))) and len(docs) < n or not docs:
        assert time.monotonic() < deadline, (query, docs)
        time.sleep(0.1)
    return docs


def test_subscribe_start_and_end_are_audited_with_the_events_delivered(system, stub, db):
    """Finding: the end of a Subscribe stream was not recorded."""
    subject = "subscribe-audit"
    stream = stub.Subscribe(gw.SubscribeRequest(account_id=ACCOUNT, **DAYS), timeout=60,
                            metadata=md(system, [ACCOUNT], subject=subject))
    first = next(stream)
    assert first.kind == gw.SubscribeEvent.SNAPSHOT
    stream.cancel()
    start, end = (wait_for_docs(db["audit"], {"subject": subject, "phase": p}, 1)[0] for p in ("start", "end"))
    assert (start["method"], start["status"], start["account_id"], start["since"]) == \
        ("Subscribe", "OK", ACCOUNT, DAYS["since"])
    assert end["status"] == "CANCELLED" and end["events"] >= 1
    denied = stub.Subscribe(gw.SubscribeRequest(account_id=ACCOUNT, **DAYS), timeout=60,
                            metadata=md(system, ["act_1"], subject=subject + "-denied"))
    refused(lambda: next(denied), grpc.StatusCode.PERMISSION_DENIED)
    docs = wait_for_docs(db["audit"], {"subject": subject + "-denied"}, 1)
    assert [(d["phase"], d["status"]) for d in docs] == [("start", "PERMISSION_DENIED")]


def test_scheduler_calls_and_the_schedulers_refreshes_are_audited(system, stub, db):
    """Finding: scheduler RPCs were not audited."""
    with grpc.insecure_channel(system.processes["scheduler"].address) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerStub(channel)
        scheduler.GetStatus(scheduler_pb2.GetStatusRequest(), timeout=10,
                            metadata=md(system, roles=["operator"], subject="ops-audit"))
        refused(lambda: scheduler.RunNow(scheduler_pb2.RunNowRequest(), timeout=10,
                                         metadata=md(system, subject="reader-audit")),
                grpc.StatusCode.PERMISSION_DENIED)
    assert [(d["service"], d["method"], d["status"]) for d in wait_for_docs(db["audit"], {"subject": "ops-audit"}, 1)] \
        == [("scheduler", "GetStatus", "OK")]
    assert [(d["method"], d["status"]) for d in wait_for_docs(db["audit"], {"subject": "reader-audit"}, 1)] == \
        [("RunNow", "PERMISSION_DENIED")]


def test_bad_input_is_invalid_argument_with_a_short_echo(system, stub):
    """Findings: ISO week dates were accepted, a forged page token with a negative offset was accepted,
    error messages repeated the caller's input in full (10 KB back for a 10 KB id)."""
    import base64
    reader = md(system, [ACCOUNT])
    week = gw.GetInsightsRequest(account_id=ACCOUNT, since="2026-W01-1", until=DAYS["until"])
    refused(lambda: stub.GetInsights(week, timeout=30, metadata=reader), grpc.StatusCode.INVALID_ARGUMENT,
            "YYYY-MM-DD")
    first = stub.GetInsights(gw.GetInsightsRequest(account_id=ACCOUNT, page_size=2, **DAYS), timeout=120,
                             metadata=reader)
    assert first.next_page_token
    binding = base64.urlsafe_b64decode(first.next_page_token).decode().rsplit(":", 1)[1]  # this request's
    for offset in ("-4", "99999999", "0", "+2", " 2"):
        forged = base64.urlsafe_b64encode(f"{first.version}:{offset}:{binding}".encode()).decode()
        refused(lambda: stub.GetInsights(gw.GetInsightsRequest(account_id=ACCOUNT, page_size=2, page_token=forged,
                                                               **DAYS), timeout=30, metadata=reader),
                grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    second = stub.GetInsights(gw.GetInsightsRequest(account_id=ACCOUNT, page_size=2,
                                                    page_token=first.next_page_token, **DAYS),
                              timeout=60, metadata=reader)
    assert second.rows and second.rows[0] != first.rows[0]
    # attacker trial finding: a token was not tied to its request, so it paged another range or selection
    other_days = {**DAYS, "since": (date.fromisoformat(DAYS["since"]) - timedelta(days=1)).isoformat()}
    for other in (gw.GetInsightsRequest(account_id=ACCOUNT, page_size=2, page_token=first.next_page_token,
                                        **other_days),
                  gw.GetInsightsRequest(account_id=ACCOUNT, page_size=2, page_token=first.next_page_token,
                                        fields=["spend"], **DAYS)):
        refused(lambda: stub.GetInsights(other, timeout=60, metadata=reader), grpc.StatusCode.INVALID_ARGUMENT,
                "belongs to another request")
    huge = "9" * 10_000
    for request in (gw.GetInsightsRequest(account_id=huge, **DAYS),
                    gw.GetInsightsRequest(account_id=ACCOUNT, since="x" * 10_000, until=DAYS["until"]),
                    gw.GetInsightsRequest(account_id=ACCOUNT, fields=["f" * 10_000], **DAYS)):
        details = refused(lambda: stub.GetInsights(request, timeout=30, metadata=md(system)),
                          grpc.StatusCode.INVALID_ARGUMENT)
        assert len(details) < 200 + 400 and "chars)" in details, len(details)
    with grpc.insecure_channel(system.processes["meta_fetcher"].address) as channel:
        from services.common.pb.adfatigue.v1 import meta_fetcher_pb2, meta_fetcher_pb2_grpc
        fetcher = meta_fetcher_pb2_grpc.MetaFetcherStub(channel)
        details = refused(lambda: fetcher.FetchInsights(
            meta_fetcher_pb2.FetchInsightsRequest(account_id=huge, **DAYS), timeout=30,
            metadata=md(system, roles=["gateway"])), grpc.StatusCode.INVALID_ARGUMENT)
        assert len(details) < 600

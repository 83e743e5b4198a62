"""The trust boundary over the real processes (issue 15): each test is one finding of the attack.

One system as ``adfatigue up`` starts it (embedded store or MONGODB_URI, sandbox,
meta_fetcher, fatigue_engine, cache_gateway, scheduler), every call over loopback.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
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
from services.cache_gateway.demand_fencing import FENCING_METADATA_KEY, lease_key_for

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

"""Two scheduler processes on one Redis: exactly one leads, a killed leader is replaced within the lease
time, and no cycle runs twice - counted at the Meta sandbox (issue 7 acceptance)."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import httpx
import pytest
import redis

from services.cli.local_system import LocalSystem, SystemConfig
from services.cli.service_process import ServiceProcess
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.common.pb.adfatigue.v1 import scheduler_pb2, scheduler_pb2_grpc

pytestmark = pytest.mark.e2e

SYNTH = "act_900000000001"  # the sandbox's synthetic account (America/Los_Angeles, 6 ads: one page a day)
LEASE_TTL_S = 2.0
INTERVAL_S = 2.0


def la_today() -> str:
    return datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date().isoformat()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    prefix = f"adfatigue-test-{uuid.uuid4().hex[:8]}:"
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("two_schedulers"), gateway_port=0, scheduler_interval_s=INTERVAL_S,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"schedulers_{os.getpid()}", "REDIS_URL": "redis://127.0.0.1:6379/0",
                   "REDIS_KEY_PREFIX": prefix, "META_BUDGET_KEY_PREFIX": prefix + "budget",
                   "SCHEDULER_LEASE_TTL_SECONDS": str(LEASE_TTL_S),
                   # today is due again one second after each fetch, so every cycle refreshes it exactly once
                   "FRESHNESS_PARTIAL_SECONDS": "1"},
    )
    with LocalSystem(config) as running:
        running.redis_prefix = prefix
        yield running
    client = redis.Redis()
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


def status(system, proc: ServiceProcess) -> scheduler_pb2.SchedulerStatus:
    with grpc.insecure_channel(proc.address) as channel:
        return scheduler_pb2_grpc.SchedulerStub(channel).GetStatus(
            scheduler_pb2.GetStatusRequest(), timeout=10,
            metadata=bearer(mint_token(system.jwt_secret, "two-schedulers-test", ["*"], ["operator"])))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_one_leader_failover_within_the_lease_and_no_cycle_twice(system):
    r = redis.Redis()
    lease_key = f"{system.redis_prefix}scheduler:leader"
    cycle_now = lambda: int(r.hget(f"{lease_key}:schedule", "cycle") or 0)
    today = la_today()
    with grpc.insecure_channel(system.processes["cache_gateway"].address) as channel:
        cache_gateway_pb2_grpc.CacheGatewayStub(channel).GetInsights(
            gw.GetInsightsRequest(account_id=SYNTH, since=(datetime.fromisoformat(today) - timedelta(days=2))
                                  .date().isoformat(), until=today),
            timeout=60, metadata=bearer(mint_token(system.jwt_secret, "two-schedulers-test", ["*"], ["operator"])))

    first = system.processes["scheduler"]
    args = list(first.args)
    args[args.index("--port") + 1] = "0"
    second = ServiceProcess("scheduler_b", first.module, args, system.logs / "scheduler_b.log", first.env).start()
    try:
        procs = [first, second]
        ids = [status(system, p).instance_id for p in procs]
        statuses = wait_for(lambda: (s := [status(system, p) for p in procs]) and
                            sum(x.is_leader for x in s) == 1 and s, 10, "exactly one leader")
        assert statuses[0].leader_id == statuses[1].leader_id == ids[[x.is_leader for x in statuses].index(True)]
        leader = procs[[x.is_leader for x in statuses].index(True)]
        follower = second if leader is first else first
        assert status(system, follower).cycles_run == 0

        start = cycle_now()
        wait_for(lambda: cycle_now() >= start + 3, 30, "three cycles by the leader")
        leader.proc.kill()  # no goodbye: the lease has to expire
        killed_at = time.monotonic()
        wait_for(lambda: status(system, follower).is_leader, 3 * LEASE_TTL_S, "the follower takes over")
        took_over_after = time.monotonic() - killed_at
        assert took_over_after <= LEASE_TTL_S + 1.5, took_over_after  # the lease time plus one renewal period
        after_failover = cycle_now()
        wait_for(lambda: cycle_now() >= after_failover + 3, 30, "three cycles by the new leader")
        follower.stop()  # SIGTERM: the cycle in progress finishes its refresh before the process exits
        assert follower.proc.returncode == 0
    finally:
        second.stop()

    log = [json.loads(x) for x in r.lrange(f"{lease_key}:cycles", 0, -1)][::-1]  # oldest first
    numbers = [c["cycle"] for c in log]
    assert len(numbers) == len(set(numbers)) and numbers == sorted(numbers)  # no cycle ran twice
    holders = [c["holder"] for c in log]
    switch = next(i for i, h in enumerate(holders) if h != holders[0])
    assert set(holders[switch:]) == {holders[switch]} and holders[switch] != holders[0]  # one handover, no going back
    # the new leader continued the schedule (the killed leader may have claimed one more and died in it)
    assert numbers[switch] - numbers[switch - 1] <= 2
    assert max(numbers) >= cycle_now() - 1
    refreshed = sum(c["refreshed_items"] for c in log)
    assert all(c["refreshed_items"] <= 1 for c in log)  # only today is due: one refresh per cycle at most
    stats = httpx.get(f"{system.sandbox_url}/_sandbox/stats", timeout=10).json()
    today_calls = [q for q in stats["requests"] if q.get("since") == today == q.get("until") and not q.get("after")]
    assert refreshed >= 5
    assert refreshed <= len(today_calls) <= refreshed + 1  # + the killed leader's refresh that was in flight

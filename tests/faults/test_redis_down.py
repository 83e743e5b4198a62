"""Redis down (a private redis-server on a free port, stopped and started by the test; the shared one on
6379 is never touched): gateways keep serving cached days and keep fetching uncached ones with in-process
single-flight, and their logs say so; schedulers stop leading, never two leaders; when Redis is back one
leader resumes and the gateways coalesce across replicas again."""

from __future__ import annotations

import os
import shutil
import time
import uuid

import grpc
import pytest
from pymongo import MongoClient

from services.cli.local_system import LocalSystem, SystemConfig
from services.cli.service_process import ServiceProcess
from services.common.pb.adfatigue.v1 import scheduler_pb2, scheduler_pb2_grpc
from tests.e2e.test_subscriptions import SYNTH, md
from tests.faults.test_system_faults import answer_or_clear_status, call, correct_or_marked_stale, days_ago
from tests.private_redis import PrivateRedis

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")]

LEASE_TTL_S = 2.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, mongo_uri, redis_server):
    db = f"redisdown_{os.getpid()}"
    prefix = f"adfatigue-redisdown-{uuid.uuid4().hex[:8]}:"
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("redisdown"), gateway_port=0, scheduler_interval_s=2.0,
        mongodb_uri=mongo_uri,
        extra_env={"MONGODB_DB": db, "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": prefix,
                   "META_BUDGET_KEY_PREFIX": prefix + "budget", "SCHEDULER_LEASE_TTL_SECONDS": str(LEASE_TTL_S)},
    )
    with LocalSystem(config) as running:
        running.add_gateway_replica("cache_gateway_b")
        first = running.processes["scheduler"]
        args = list(first.args)
        args[args.index("--port") + 1] = "0"
        second = ServiceProcess("scheduler_b", first.module, args, running.logs / "scheduler_b.log", first.env)
        second.start()
        running.schedulers = [first, second]
        try:
            yield running
        finally:
            second.stop()
    with MongoClient(mongo_uri) as client:
        client.drop_database(db)


def leaders(system) -> list[bool]:
    out = []
    for proc in system.schedulers:
        with grpc.insecure_channel(proc.address) as channel:
            out.append(scheduler_pb2_grpc.SchedulerStub(channel).GetStatus(
                scheduler_pb2.GetStatusRequest(), timeout=10, metadata=md(system)).is_leader)
    return out


def watch_leaders(system, seconds: float) -> list[list[bool]]:
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(leaders(system))
        time.sleep(0.1)
    return seen


def test_redis_down_gateways_serve_and_fetch_schedulers_stop_leading(system, redis_server):
    cached = days_ago(8, 6)
    assert call(system, "GetInsights", account_id=SYNTH, since=cached[0], until=cached[1]).rows
    deadline = time.monotonic() + 40  # generous: the machine may be loaded
    while sum(leaders(system)) != 1:
        assert time.monotonic() < deadline, "no single leader with Redis up"
        time.sleep(0.1)

    redis_server.stop()  # down (SIGTERM, then SIGKILL): every key is gone when it comes back
    try:
        for gateway in ("cache_gateway", "cache_gateway_b"):
            for _ in range(3):  # cached days: served
                reply = call(system, "GetInsights", gateway=gateway, account_id=SYNTH, since=cached[0],
                             until=cached[1])
                correct_or_marked_stale(reply)
        for i, gateway in enumerate(["cache_gateway", "cache_gateway_b", "cache_gateway"]):
            since, until = days_ago(40 + 2 * i, 40 + 2 * i)  # never fetched: fetched without the shared lock
            reply = answer_or_clear_status(system, "GetInsights", gateway=gateway, account_id=SYNTH, since=since,
                                           until=until)
            assert reply is not None and reply.rows, "uncached days must still be fetched with Redis down"
        log = (system.logs / "cache_gateway.jsonl").read_text()
        assert "in-process single-flight" in log
        # schedulers: the leader stops (its lease view expires by itself), and nobody leads while Redis is down
        deadline = time.monotonic() + 3 * LEASE_TTL_S + 10
        while sum(leaders(system)) != 0:
            assert time.monotonic() < deadline, "a scheduler kept leading with Redis down"
            time.sleep(0.1)
        assert all(sum(s) == 0 for s in watch_leaders(system, 2.0))
    finally:
        redis_server.start()  # back, empty (no persistence)
    seen, deadline = [], time.monotonic() + 40
    while not seen or sum(seen[-1]) != 1:
        assert time.monotonic() < deadline, f"no leader after Redis came back: {seen[-5:]}"
        seen.append(leaders(system))
        time.sleep(0.1)
    seen += watch_leaders(system, 2.0)
    assert all(sum(s) <= 1 for s in seen), "two schedulers led at once"
    since, until = days_ago(47, 47)
    assert call(system, "GetInsights", account_id=SYNTH, since=since, until=until).rows
    assert "Redis is back" in (system.logs / "cache_gateway.jsonl").read_text()

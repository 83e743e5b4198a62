"""Usage headers, the 85 % pause and the app rate budget (in process, in Redis, across two processes)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import date

import grpc
import pytest

from services.common.auth import GATEWAY, ServiceToken
from services.common.grpc_server import insecure_channel
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2_grpc
from services.common.meta_budget import LocalCallWindow, RedisCallWindow
from services.meta_fetcher.pacing import UsageTracker, parse_usage_headers
from services.meta_sandbox import sandbox_server, synthetic_account
from services.meta_sandbox.usage import UsageModel
from tests.meta_fetcher.helpers import REPO, fetcher_stub, request, sandbox_stats

ACC = "900000000001"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

JWT_SECRET = "pacing-test-secret-of-at-least-32-bytes"


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)


def test_usage_headers_are_parsed() -> None:
    reading = parse_usage_headers({
        "X-App-Usage": json.dumps({"call_count": 28, "total_time": 25, "total_cputime": 30}),
        "X-Business-Use-Case-Usage": json.dumps({"123": [{"type": "ads_insights", "call_count": 95,
                                                          "total_cputime": 20, "total_time": 20,
                                                          "estimated_time_to_regain_access": 3}]}),
        "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 9.67, "reset_time_duration": 100}),
        "x-fb-ads-insights-throttle": json.dumps({"app_id_util_pct": 41.5, "acc_id_util_pct": 12}),
    })
    assert reading.app_pct == 41.5 and reading.account_pct == 95 and reading.regain_s == 180
    assert parse_usage_headers({"X-App-Usage": "{not json", "X-Business-Use-Case-Usage": "[1]"}).app_pct is None
    assert parse_usage_headers({}).account_pct is None


def test_tracker_pauses_above_threshold_until_the_pause_passes() -> None:
    now = [0.0]
    tracker = UsageTracker(pause_pct=85, pause_s=120, clock=lambda: now[0])
    tracker.observe("1", parse_usage_headers({"X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 84}]})}))
    assert tracker.pause_remaining("1")[0] == 0
    tracker.observe("1", parse_usage_headers({"X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 86}]})}))
    left, reason = tracker.pause_remaining("1")
    assert left == 120 and "86 %" in reason and tracker.pause_remaining("2")[0] == 0
    now[0] = 121
    assert tracker.pause_remaining("1")[0] == 0
    tracker.observe("1", parse_usage_headers({"X-App-Usage": json.dumps({"call_count": 90})}))
    assert tracker.pause_remaining("2")[0] == 120  # app-wide usage pauses every account


async def test_local_budget_is_a_sliding_window() -> None:
    now = [0.0]
    budget = LocalCallWindow(3, 60, clock=lambda: now[0])
    assert [(await budget.try_acquire())[0] for _ in range(4)] == [True, True, True, False]
    now[0] = 30
    assert await budget.try_acquire() == (False, 30)
    now[0] = 60.5
    assert (await budget.try_acquire())[0]


async def test_usage_above_85_percent_refuses_new_calls_without_calling(account) -> None:
    usage = UsageModel(account_capacity=10)  # the sandbox reports 10 % per call
    async with sandbox_server([account], synthetic=False, usage=usage) as base, fetcher_stub(base) as stub:
        for _ in range(4):  # 1 account lookup + 4 pages: 50 %
            await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))
        for _ in range(4):  # 90 % after these
            await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))
        before = (await sandbox_stats(base))["graph_requests"]
        assert before == 9
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "90 %" in err.value.details() and "retry after 120 s" in err.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == before


async def test_over_budget_calls_are_refused_fast_with_the_wait(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, \
            fetcher_stub(base, budget_calls=3, budget_window_s=600) as stub:
        await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))  # 2 calls
        await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))  # 1 call
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, "2026-02-24", "2026-02-28"))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "budget (3 calls per 10 min) is spent" in err.value.details()
        assert dict(err.value.trailing_metadata())["retry-after-s"] in ("599", "600")
        assert "retry after 600 s" in err.value.details() or "retry after 599 s" in err.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == 3


@pytest.fixture
async def redis_prefix():
    """A unique key prefix, deleted afterwards; skips (fails under CI=true) without Redis."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        await client.aclose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis at {REDIS_URL} unavailable under CI=true: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unavailable: {exc}")
    prefix = f"test:meta_fetcher:{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_budget_is_shared_and_atomic(redis_prefix) -> None:
    a = RedisCallWindow(REDIS_URL, 7, 60, redis_prefix)
    b = RedisCallWindow(REDIS_URL, 7, 60, redis_prefix)
    try:
        results = await asyncio.gather(*(x.try_acquire() for x in [a, b] * 10))
        assert sum(granted for granted, _ in results) == 7
        assert all(0 < wait <= 60 for granted, wait in results if not granted)
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_failure_falls_back_to_the_local_budget() -> None:
    budget = RedisCallWindow("redis://127.0.0.1:1/0", 2, 60, "unused")
    try:
        assert [(await budget.try_acquire())[0] for _ in range(3)] == [True, True, False]
    finally:
        await budget.aclose()


async def _start_fetcher(base: str, prefix: str, budget: int) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "META_BUDGET_CALLS": str(budget), "META_BUDGET_KEY_PREFIX": prefix,
           "META_BACKOFF_INITIAL_S": "0.001", "META_BACKOFF_MAX_S": "0.005", "PYTHONUNBUFFERED": "1",
           "JWT_HS256_SECRET": JWT_SECRET}  # the process answers only the gateway identity
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.meta_fetcher", "--port", "0", "--graph-url", base, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    assert line.startswith("meta_fetcher listening on "), line
    return proc, line.rsplit(" ", 1)[1]


async def test_budget_holds_under_a_burst_across_two_processes(account, redis_prefix) -> None:
    budget = 12
    async with sandbox_server([account], synthetic=False) as base:
        procs = []
        try:
            procs = list(await asyncio.gather(_start_fetcher(base, redis_prefix, budget),
                                              _start_fetcher(base, redis_prefix, budget)))
            channels = [insecure_channel(target) for _, target in procs]
            stubs = [meta_fetcher_pb2_grpc.MetaFetcherStub(ch) for ch in channels]
            gateway = ServiceToken(GATEWAY, {"JWT_HS256_SECRET": JWT_SECRET})

            async def one(i: int):
                try:
                    return await stubs[i % 2].FetchInsights(request(ACC, "2026-02-24", "2026-02-28"),
                                                            metadata=gateway.metadata())
                except grpc.aio.AioRpcError as exc:
                    return exc

            outcomes = await asyncio.gather(*(one(i) for i in range(40)))
            for ch in channels:
                await ch.close()
            refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            served = [o for o in outcomes if not isinstance(o, grpc.aio.AioRpcError)]
            stats = await sandbox_stats(base)
            assert stats["graph_requests"] == budget  # spent to the last unit, never beyond
            assert served and refused
            assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry after" in e.details()
                       for e in refused)
            assert sum(o.upstream_calls for o in served) <= budget
        finally:
            for proc, _ in procs:
                proc.terminate()
            for proc, _ in procs:
                await asyncio.wait_for(proc.wait(), 30)

"""Throughput at saturation: K clients in a closed loop for a few seconds, per contender.

Each of ``clients`` asyncio tasks (one process, 4 channels) sends a random
page widget (8 widgets x the first ``accounts`` accounts) and, as soon as the
answer is back, the next one — for ``seconds``. Before the window every key
is requested once (so a cache starts warm, as under steady traffic).
Production time settings (gateway replica B; the TTL proxy with its TTL in real
seconds). Throughput = answers completed in the window / window length. The
load generator runs on the same cores as the system: this is a lower bound on
what the contender would serve alone. The *bare* contender (``bench/bare_server.py`` loaded with the
gateway's own answer bytes: a dict look-up, no token check, no decoding) is the ceiling any grpc.aio
Python server reaches on the same machine and client.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from bench.accounts import BenchAccount
from bench.common import GatewayClient, percentiles, stats_delta
from bench.workload import WIDGETS, method_name, page_ranges, widget_request


def page_keys(accounts: list[BenchAccount]) -> list[tuple[str, object]]:
    """(kind, request) of the 8 page widgets of each account: what every contender is saturated with."""
    return [(kind, widget_request(kind, a.account_id, *page_ranges(a)[rng])) for a in accounts for kind, rng in WIDGETS]


async def answers_of(address: str, md, accounts: list[BenchAccount], timeout_s: float = 300.0) -> dict[bytes, bytes]:
    """Request bytes -> the contender's answer bytes for every key (to load ``bench/bare_server.py`` with)."""
    async with grpc.aio.insecure_channel(address) as channel:
        out = {}
        for kind, req in page_keys(accounts):
            call = channel.unary_unary(f"/adfatigue.v1.CacheGateway/{method_name(kind)}")
            out[req.SerializeToString()] = await call(req.SerializeToString(), metadata=md, timeout=timeout_s)
        return out


async def saturate(address: str, md, accounts: list[BenchAccount], *, clients: int = 64, seconds: float = 3.0,
                   seed: int = 5, timeout_s: float = 300.0, stats: bool = True) -> dict:
    """``stats=False``: a contender without GetStats (the bare server): no counters in the result."""
    client = GatewayClient(address, 4)
    keys = page_keys(accounts)

    async def counters():
        return await client.stats(md) if stats else None

    try:
        await asyncio.gather(*(client.method(method_name(kind))(req, metadata=md, timeout=timeout_s)
                               for kind, req in keys))
        before = await counters()
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal errors
            rng = random.Random(seed * 1000 + i)
            while time.perf_counter() < stop_at:
                kind, req = rng.choice(keys)
                t = time.perf_counter()
                try:
                    await client.method(method_name(kind))(req, metadata=md, timeout=timeout_s)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                if time.perf_counter() <= stop_at:
                    latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(worker(i)) for i in range(clients)]
        await asyncio.sleep(seconds)
        window = time.perf_counter() - t0
        after = await counters()
        delta = stats_delta(after, before) if stats else None
        # stragglers (e.g. requests waiting on Meta) are not counted; let them finish briefly, then drop them
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return {"clients": clients, "seconds": window, "completed": len(latencies),
                "requests_per_s": len(latencies) / window, "errors": errors, "latency_ms": percentiles(latencies),
                "stats_delta": delta, "keys": len(keys), "cache_bytes": after.l1_bytes if stats else None,
                "cache_entries": after.l1_entries if stats else None}
    finally:
        await client.close()

"""Throughput at saturation: K clients in a closed loop for a few seconds, per contender.

Each of ``clients`` asyncio tasks (one process, 4 channels) sends a random
page widget (8 widgets x the first ``accounts`` accounts) and, as soon as the
answer is back, the next one — for ``seconds``. Before the window every key
is requested once (so a cache starts warm, as under steady traffic).
Production time settings (gateway replica B; the TTL proxy with its TTL in real
seconds). Throughput = answers completed in the window / window length. The
load generator runs on the same cores as the system: this is a lower bound on
what the contender would serve alone.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from bench.accounts import BenchAccount
from bench.common import GatewayClient, percentiles, stats_delta
from bench.workload import WIDGETS, method_name, page_ranges, widget_request


async def saturate(address: str, md, accounts: list[BenchAccount], *, clients: int = 64, seconds: float = 3.0,
                   seed: int = 5, timeout_s: float = 300.0) -> dict:
    client = GatewayClient(address, 4)
    keys = [(kind, widget_request(kind, a.account_id, *page_ranges(a)[rng]))
            for a in accounts for kind, rng in WIDGETS]
    try:
        await asyncio.gather(*(client.method(method_name(kind))(req, metadata=md, timeout=timeout_s)
                               for kind, req in keys))
        before = await client.stats(md)
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
        after = await client.stats(md)
        delta = stats_delta(after, before)
        # stragglers (e.g. requests waiting on Meta) are not counted; let them finish briefly, then drop them
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return {"clients": clients, "seconds": window, "completed": len(latencies),
                "requests_per_s": len(latencies) / window, "errors": errors, "latency_ms": percentiles(latencies),
                "stats_delta": delta, "keys": len(keys), "cache_bytes": after.l1_bytes,
                "cache_entries": after.l1_entries}
    finally:
        await client.close()

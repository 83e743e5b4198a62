"""The fetch lock with Redis configured but unreachable: it degrades to the per-process lock (callers of
one process still take turns), counts it and logs it once per outage."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from services.common.distributed_lock import DistributedLock
from services.common.embedded_mongo import free_port


async def test_an_unreachable_redis_degrades_to_in_process_single_flight(caplog):
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1, socket_timeout=1)
    lock = DistributedLock(client, prefix="t16:")
    inside, overlap = 0, 0

    async def holder():
        nonlocal inside, overlap
        async with lock.hold("fetch:1001"):
            inside += 1
            overlap = max(overlap, inside)
            await asyncio.sleep(0.05)
            inside -= 1

    with caplog.at_level(logging.ERROR, logger="services.common.distributed_lock"):
        await asyncio.gather(*(holder() for _ in range(3)))
    await client.aclose()
    assert overlap == 1  # still one holder at a time in this process
    assert lock.degraded == 3 and lock.redis_down_since is not None
    assert sum("in-process single-flight" in r.getMessage() for r in caplog.records) == 1  # once per outage

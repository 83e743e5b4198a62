"""Fixtures of the scheduler tests: a Redis client and a key prefix of their own, removed afterwards."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> str:
    return f"adfatigue-test-sched-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def redis_client(prefix):
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # the README says tests need it; say so clearly
        pytest.fail(f"Redis at {REDIS_URL} is needed by these tests: {exc}")
    yield client
    async for key in client.scan_iter(f"*{prefix}*"):
        await client.delete(key)
    await client.aclose()

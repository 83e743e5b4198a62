"""Rescorer's retries (pure unit test of services/cache_gateway/rescoring.py: a stand-in store and engine)."""

from __future__ import annotations

import asyncio
from datetime import date

import grpc

from services.cache_gateway.rescoring import Rescorer
from services.common.insight_row import InsightRow


class Store:
    async def ad_series(self, account_id, ad_ids):
        return 3, {ad: [InsightRow(account_id=account_id, ad_id=ad, date_start=date(2026, 1, 1),
                                   date_stop=date(2026, 1, 1), impressions=100)] for ad in ad_ids}


class Engine:
    def __init__(self, code: grpc.StatusCode):
        self.code, self.calls = code, 0

    async def ScoreAds(self, request, timeout=None, metadata=None):
        self.calls += 1
        raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")


async def attempts(code: grpc.StatusCode) -> int:
    engine = Engine(code)
    rescorer = Rescorer(Store(), engine, retry_first_s=0.01, retry_max_s=0.02)
    rescorer.start()
    rescorer.schedule("1", frozenset({"10", "11"}))
    await asyncio.sleep(0.5)
    await rescorer.close()
    return engine.calls


async def test_a_passing_engine_fault_is_retried_until_it_goes():
    assert await attempts(grpc.StatusCode.UNAVAILABLE) >= 5


async def test_a_refusal_that_would_repeat_is_not_retried():
    """A retry of INVALID_ARGUMENT would repeat forever every 30 s (and read the store each time)."""
    assert await attempts(grpc.StatusCode.INVALID_ARGUMENT) == 1

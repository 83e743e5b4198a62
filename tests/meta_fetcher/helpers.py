"""Shared helpers: a sandbox + fetcher pair on loopback, a gRPC stub, fast retry settings."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest

from services.common.grpc_server import insecure_channel
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2, meta_fetcher_pb2_grpc
from services.meta_fetcher.server import fetcher_server
from services.meta_fetcher.settings import FetcherSettings

REPO = Path(__file__).resolve().parents[2]
REAL_CSV = Path(os.environ.get("ADFATIGUE_REAL_CSV", REPO / "data" / "meta_ads_daily_account_a.csv"))

#: Retry delays in milliseconds so tests stay fast; behaviour, not timing, is asserted.
FAST = dict(backoff_initial_s=0.001, backoff_max_s=0.005, backoff_jitter_s=0.001, throttle_max_wait_s=0.05,
            throttle_min_wait_s=0.0,
            async_poll_initial_s=0.001, async_poll_max_s=0.005)


def real_csv_or_skip() -> Path:
    """The shipped sample account (data/); missing is a failure under CI=true, a skip otherwise."""
    if REAL_CSV.is_file():
        return REAL_CSV
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"real dataset {REAL_CSV} is missing (CI=true)")
    pytest.skip(f"real dataset {REAL_CSV} not present")


@contextlib.asynccontextmanager
async def fetcher_stub(graph_url: str, **overrides) -> AsyncIterator[meta_fetcher_pb2_grpc.MetaFetcherStub]:
    """A MetaFetcher on 127.0.0.1:0 talking to ``graph_url``; yields a stub; stops on exit."""
    settings = FetcherSettings(graph_url=graph_url, **{**FAST, **overrides})
    async with fetcher_server(settings, "127.0.0.1:0") as (_host, port):
        async with insecure_channel(f"127.0.0.1:{port}") as channel:
            yield meta_fetcher_pb2_grpc.MetaFetcherStub(channel)


def request(account: str, since: str, until: str, fields=()) -> meta_fetcher_pb2.FetchInsightsRequest:
    return meta_fetcher_pb2.FetchInsightsRequest(account_id=account, since=since, until=until, fields=list(fields))


async def sandbox_stats(base: str) -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{base}/_sandbox/stats")).json()


async def post(base: str, path: str, payload) -> dict:
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{base}{path}", json=payload)
        assert resp.status_code == 200, resp.text
        return resp.json()

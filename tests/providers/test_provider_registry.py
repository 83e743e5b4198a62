"""Providers are meta_fetcher's one plug point: a toy third provider (one module + one registry line) is
chosen by the PROVIDERS setting and serves an account through a real gateway process."""

from __future__ import annotations

import os
import sys

import grpc
import pytest

from services.cli.service_process import ServiceProcess
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.common.settings import SettingsError
from services.meta_fetcher import provider_registry
from services.meta_fetcher.server import fetcher_server
from services.meta_fetcher.settings import FetcherSettings
from tests.providers.toy_provider import TOY_ACCOUNT

SECRET = "toy-provider-test-secret-" + "x" * 24


def test_providers_must_be_registered():
    with pytest.raises(SettingsError, match="PROVIDERS='toy,meta' is invalid: toy not registered"):
        FetcherSettings.from_env({"PROVIDERS": "toy,meta"})


async def test_a_toy_third_provider_serves_an_account_through_the_gateway(monkeypatch, mongo_uri, db_name, tmp_path):
    monkeypatch.setitem(provider_registry.REGISTRY, "toy", "tests.providers.toy_provider:ToyProvider")  # the line
    settings = FetcherSettings.from_env({"PROVIDERS": "toy,meta", "META_GRAPH_URL": "http://127.0.0.1:9"})
    async with fetcher_server(settings) as (_, fetcher_port):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MONGODB_URI": mongo_uri, "MONGODB_DB": db_name,
               "JWT_HS256_SECRET": SECRET, "ADFATIGUE_TELEMETRY": "false",
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        gateway = ServiceProcess("cache_gateway", "services.cache_gateway",
                                 ["--port", "0", "--fetcher", f"127.0.0.1:{fetcher_port}", "--engine", "127.0.0.1:9"],
                                 tmp_path / "gateway.log", env).start()
        try:
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
                token = mint_token(SECRET, "reader@test", [f"act_{TOY_ACCOUNT}"], ["reader"])
                resp = await stub.GetInsights(gw.GetInsightsRequest(account_id=f"act_{TOY_ACCOUNT}",
                                                                     since="2026-01-01", until="2026-01-05"),
                                              metadata=bearer(token), timeout=60)
        finally:
            gateway.stop()
    assert [(r.ad_id, r.impressions) for r in resp.rows] == [("7", 10)] * 5

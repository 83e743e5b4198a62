"""The real path of issue 17 in one process, every hop over loopback sockets:

sandbox (aiohttp, HTTP) -> meta_fetcher (gRPC) -> cache_gateway (gRPC) -> L2 (MongoDB protocol) ->
GetInsights / GetFatigue, with the fatigue_engine (gRPC) behind the gateway.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import AsyncIterator, Iterable

import httpx
from pymongo import AsyncMongoClient

from services.cache_gateway.audit_log import AuditLog
from services.cache_gateway.handlers import SERVICE_NAME, add_cache_gateway_to_server
from services.cache_gateway.insights_service import InsightsService
from services.cache_gateway.l1_cache import L1Cache
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.servicer import CacheGatewayServicer
from services.cache_gateway.upstream import MetaFetcherUpstream
from services.common.attribution import AttributionSettings, canonical
from services.common.auth import JwtVerifier, bearer, mint_token
from services.common.grpc_server import GrpcHost, insecure_channel
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import cache_gateway_pb2_grpc
from services.fatigue_engine.server import build_host as build_engine_host
from services.fatigue_engine.servicer import SERVICE_NAME as ENGINE_SERVICE
from services.meta_fetcher.server import fetcher_server
from services.meta_fetcher.settings import FetcherSettings
from services.meta_sandbox.accounts import SandboxAccount
from services.meta_sandbox.runner import sandbox_server
from tests.meta_fetcher.helpers import FAST


@dataclass
class RealPath:
    sandbox_url: str
    gateway: cache_gateway_pb2_grpc.CacheGatewayStub
    metadata: tuple
    store: InsightsStore
    service: InsightsService
    upstream: MetaFetcherUpstream

    def set_attribution(self, account_id: str, windows: tuple[str, ...]) -> None:
        """The account's attribution setting changes (as a gateway restarted with a new ACCOUNT_ATTRIBUTION_WINDOWS)."""
        settings = self.service.attribution or AttributionSettings()
        changed = AttributionSettings(settings.default, {**settings.per_account,
                                                         account_id.removeprefix("act_"): canonical(windows)})
        self.service.attribution = self.upstream.attribution = changed

    async def admin(self, path: str, payload) -> dict:
        """POST to a sandbox admin endpoint (``/_sandbox/...``); asserts 200."""
        async with httpx.AsyncClient() as http:
            resp = await http.post(f"{self.sandbox_url}{path}", json=payload)
            assert resp.status_code == 200, resp.text
            return resp.json()

    async def stats(self) -> dict:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{self.sandbox_url}/_sandbox/stats")).json()


@contextlib.asynccontextmanager
async def real_path(mongo, accounts: Iterable[SandboxAccount], *, fetcher: dict | None = None,
                    sandbox: dict | None = None, gateway: dict | None = None) -> AsyncIterator[RealPath]:
    """Start the sandbox with ``accounts``, a fetcher, a fatigue engine and a gateway; yield a ``RealPath``."""
    client, db_name = mongo
    secret = secrets.token_hex(16)
    async with sandbox_server(list(accounts), **{"synthetic": False, **(sandbox or {})}) as base:
        settings = FetcherSettings(graph_url=base, **{**FAST, **(fetcher or {})})
        async with fetcher_server(settings, "127.0.0.1:0") as (_fhost, fport):
            engine = build_engine_host()
            eport = await engine.start([ENGINE_SERVICE])
            store = InsightsStore(client, db_name)
            await store.ensure_indexes()
            attribution = AttributionSettings()
            upstream = MetaFetcherUpstream(f"127.0.0.1:{fport}", timeout_s=60, attribution=attribution)
            service = InsightsService(store, upstream, **{"attribution": attribution, **(gateway or {})})
            audit = AuditLog(store.db["audit"])
            await audit.start()
            servicer = CacheGatewayServicer(service, L1Cache(1 << 20, 60), f"127.0.0.1:{eport}",
                                            JwtVerifier(secret, ["HS256"]), audit)
            host = GrpcHost("127.0.0.1:0")
            add_cache_gateway_to_server(servicer, host.server)
            gport = await host.start([SERVICE_NAME])
            try:
                async with insecure_channel(f"127.0.0.1:{gport}") as channel:
                    yield RealPath(base, cache_gateway_pb2_grpc.CacheGatewayStub(channel),
                                   bearer(mint_token(secret, "fidelity-test", ["*"], ["operator"])), store, service,
                                   upstream)
            finally:
                await host.stop()
                await service.drain()
                await servicer.close()
                await audit.close()
                await upstream.close()
                await engine.stop()


def daily_rows(account_id: str, ads: Iterable[str], first: date, days: int, *, names: dict[str, str] | None = None,
               leads: bool = True) -> list[InsightRow]:
    """Plain delivering rows: every ad every day, numbers varying by ad and day (deterministic)."""
    rows = []
    for i, ad in enumerate(ads):
        for d in range(days):
            impressions = 1000 + 37 * d + 101 * i
            clicks = 20 + (d % 5) + i
            rows.append(InsightRow(
                account_id=account_id, ad_id=ad, date_start=first + timedelta(days=d),
                date_stop=first + timedelta(days=d), ad_name=(names or {}).get(ad, f"Ad {ad}"),
                adset_id="2001", adset_name="Set A", campaign_id="3001", campaign_name="Campaign A",
                impressions=impressions, reach=impressions - 50, clicks=clicks, inline_link_clicks=clicks,
                spend=Decimal(10 + d % 7) + Decimal("0.25"),
                actions={"link_click": Decimal(clicks), "lead": Decimal(2 + d % 3)} if leads else None))
    return rows


def account(account_id: str, rows: list[InsightRow], timezone_name: str = "UTC") -> SandboxAccount:
    return SandboxAccount(account_id=account_id, name=f"Account {account_id}", currency="USD",
                          timezone_name=timezone_name, rows=rows)


#: Old enough to be FINAL (never refreshed on its own), young enough for Meta's 37-month retention.
FIRST_DAY = date.today() - timedelta(days=120)

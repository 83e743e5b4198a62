"""The BFF's only backend: CacheGateway over gRPC, called with the signed-in user's short-lived token."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.bff.gateway_token import GatewayTokens
from services.bff.users import User
from services.common.grpc_server import FROM_ENV, service_channel
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc


@dataclass
class Insights:
    version: int
    rows: list
    freshness: object


class GatewayClient:
    def __init__(self, target: str, tokens: GatewayTokens, timeout_s: float = 30.0, tls=FROM_ENV):
        """``tls``: a ``TlsConfig`` (TLS to the gateway when it has a CA), None for plaintext, or from GRPC_TLS_*."""
        self.target = target
        self.tokens = tokens
        self.timeout_s = timeout_s
        self.channel = service_channel(target, tls)
        self.stub = cache_gateway_pb2_grpc.CacheGatewayStub(self.channel)

    async def list_accounts(self, user: User) -> list:
        reply = await self.stub.ListAccounts(gw.ListAccountsRequest(), metadata=self.tokens.metadata(user),
                                             timeout=self.timeout_s)
        return list(reply.accounts)

    async def insights(self, user: User, account: str, since: str, until: str) -> Insights:
        """Every row of the range (all pages, one version: a page at another version restarts the read)."""
        for _ in range(3):
            rows, token, version, freshness = [], "", None, None
            while True:
                reply = await self.stub.GetInsights(
                    gw.GetInsightsRequest(account_id=account, since=since, until=until, page_token=token),
                    metadata=self.tokens.metadata(user), timeout=self.timeout_s)
                if version is not None and reply.version != version:
                    break
                version, freshness = reply.version, reply.freshness
                rows.extend(reply.rows)
                token = reply.next_page_token
                if not token:
                    return Insights(version, rows, freshness)
        raise grpc.aio.AioRpcError(grpc.StatusCode.ABORTED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                   "the data changed while it was read three times; retry")

    async def fatigue(self, user: User, account: str, since: str, until: str) -> gw.GetFatigueResponse:
        return await self.stub.GetFatigue(gw.GetFatigueRequest(account_id=account, since=since, until=until),
                                          metadata=self.tokens.metadata(user), timeout=self.timeout_s)

    def subscribe(self, user: User, account: str, since: str, until: str, from_version: int):
        request = gw.SubscribeRequest(account_id=account, since=since, until=until, from_version=from_version)
        return self.stub.Subscribe(request, metadata=self.tokens.metadata(user))

    async def refresh(self, user: User, account: str, since: str, until: str, force: bool) -> gw.RefreshResponse:
        return await self.stub.Refresh(gw.RefreshRequest(account_id=account, since=since, until=until, force=force),
                                       metadata=self.tokens.metadata(user), timeout=max(self.timeout_s, 120))

    async def close(self) -> None:
        await self.channel.close()

"""The gateway's view of L3: a provider of daily rows for an account and range.

``MetaFetcherUpstream`` calls the MetaFetcher service over gRPC; any other
provider (R14) only has to implement ``InsightsUpstream.fetch``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import grpc

from services.common.attribution import DEFAULT_ATTRIBUTION, AttributionSettings
from services.common.auth import ServiceToken
from services.common.dates import DateRange
from services.common.error_boundary import answered_by_our_server, peer_message
from services.common.grpc_server import service_channel
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2, meta_fetcher_pb2_grpc
from services.common.row_proto import row_from_proto

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchResult:
    rows: list[InsightRow]
    fetched_at: datetime
    upstream_calls: int = 1
    timezone: str = ""
    currency: str = ""
    attribution: tuple[str, ...] = ()  # the action_attribution_windows the rows were fetched with (() = unknown)
    name: str = ""  # the ad account's name at the provider


class UpstreamError(Exception):
    """The provider failed; ``code`` is the gRPC status to answer with, ``message`` says why."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class InsightsUpstream(Protocol):
    async def fetch(self, account_id: str, days: DateRange) -> FetchResult:
        """Daily rows of ``days``; raises UpstreamError."""
        ...


class MetaFetcherUpstream:
    """L3 through the MetaFetcher service at ``target`` (host:port)."""

    def __init__(self, target: str, timeout_s: float = 120.0, with_reach_cum: bool = False,
                 token: ServiceToken | None = None, attribution: AttributionSettings | None = None):
        """``with_reach_cum``: also ask for cumulative deduplicated reach per ad and day (costs extra Meta
        calls; enables the frequency and reach-saturation components of the fatigue score).
        ``token``: the gateway's service identity, sent with every call (meta_fetcher refuses anonymous ones)."""
        self.target = target
        self.token = token
        self.timeout_s = timeout_s
        self.with_reach_cum = with_reach_cum
        #: each account's attribution setting, sent as action_attribution_windows (None: the fetcher's default)
        self.attribution = attribution
        self._channel = service_channel(target)
        self._stub = meta_fetcher_pb2_grpc.MetaFetcherStub(self._channel)

    async def fetch(self, account_id: str, days: DateRange) -> FetchResult:
        windows = self.attribution.for_account(account_id) if self.attribution else DEFAULT_ATTRIBUTION
        request = meta_fetcher_pb2.FetchInsightsRequest(
            account_id=account_id, since=days.since.isoformat(), until=days.until.isoformat(),
            with_reach_cum=self.with_reach_cum, action_attribution_windows=list(windows),
        )
        try:
            reply = await self._stub.FetchInsights(request, timeout=self.timeout_s,
                                                   metadata=self.token.metadata() if self.token else None)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.UNKNOWN):
                code = grpc.StatusCode.UNAVAILABLE
            if not answered_by_our_server(exc):
                log.warning("meta_fetcher at %s: %s %s", self.target, code.name, exc.details())
            raise UpstreamError(code, f"Meta fetch failed: {peer_message(exc, 'meta_fetcher')}") from None
        fetched_at = reply.fetched_at.ToDatetime(tzinfo=timezone.utc) if reply.HasField("fetched_at") \
            else datetime.now(timezone.utc)
        return FetchResult(
            rows=[row_from_proto(r) for r in reply.rows], fetched_at=fetched_at,
            upstream_calls=reply.upstream_calls or 1, timezone=reply.account_timezone,
            currency=reply.account_currency, attribution=windows, name=reply.account_name,
        )

    async def close(self) -> None:
        await self._channel.close()

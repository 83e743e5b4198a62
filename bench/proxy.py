"""The two alternatives the gateway is compared with: a tiny CacheGateway-shaped gRPC proxy.

``python -m bench.proxy --port 0 --fetcher HOST:PORT --engine HOST:PORT --ttl-seconds T``

It serves ``adfatigue.v1.CacheGateway`` GetInsights, GetFatigue and GetStats
(the same proto, so the load generator drives every contender with one client)
in its own process, one gRPC hop in front of meta_fetcher — the same topology
as the gateway:

- ``--ttl-seconds 0``: the **naive pass-through** — every widget request is one
  ``MetaFetcher.FetchInsights`` call (GetFatigue adds ``FatigueEngine.ScoreAds``
  on the fetched rows), nothing is kept;
- ``--ttl-seconds T``: a **plain TTL cache** keyed by the whole request (method
  + serialized request bytes), holding the serialized answer for T seconds
  (``cachetools.TTLCache``). A miss calls the fetcher (and the engine) exactly
  like the naive path. No request coalescing, no sharing between overlapping
  ranges, no invalidation: what a cache in front of an API usually is.

Callers' bearer JWTs are verified with the same verifier as the gateway
(``JWT_HS256_SECRET``), so per-request work at the edge is comparable.
Counters (GetStats): ``l1_hits``/``l1_misses`` = cache hits/misses,
``upstream_calls`` = FetchInsights calls, ``l1_bytes``/``l1_entries`` = cached
payload bytes/entries.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections import defaultdict

import grpc
from cachetools import TTLCache

from services.common.auth import GATEWAY, AuthError, JwtVerifier, ServiceToken
from services.common.grpc_server import GrpcHost, insecure_channel
from services.common.pb.adfatigue.v1 import (
    cache_gateway_pb2 as gw, fatigue_engine_pb2, fatigue_engine_pb2_grpc, fatigue_pb2, insights_pb2,
    meta_fetcher_pb2, meta_fetcher_pb2_grpc,
)

SERVICE_NAME = gw.DESCRIPTOR.services_by_name["CacheGateway"].full_name
log = logging.getLogger("bench.proxy")


class PassThroughProxy:
    def __init__(self, fetcher: str, engine: str, ttl_s: float, max_entries: int = 1_000_000):
        self._fetcher_channel = insecure_channel(fetcher)
        self._engine_channel = insecure_channel(engine)
        self.fetcher = meta_fetcher_pb2_grpc.MetaFetcherStub(self._fetcher_channel)
        self.engine = fatigue_engine_pb2_grpc.FatigueEngineStub(self._engine_channel)
        self.cache: TTLCache | None = TTLCache(max_entries, ttl_s) if ttl_s > 0 else None
        self.bytes = 0
        self.hits = self.misses = self.upstream_calls = 0
        self.verifier = JwtVerifier.from_env()
        # meta_fetcher and fatigue_engine answer only the gateway's identity: the proxy stands in for it
        self.token = ServiceToken(GATEWAY)

    async def _auth(self, context) -> None:
        try:
            self.verifier.authenticate(context.invocation_metadata())
        except AuthError as exc:
            await context.abort(exc.code, exc.message)

    def _cached(self, key) -> bytes | None:
        if self.cache is None:
            return None
        payload = self.cache.get(key)
        if payload is not None:
            self.hits += 1
        else:
            self.misses += 1
        return payload

    def _keep(self, key, payload: bytes) -> None:
        if self.cache is not None:
            self.cache[key] = payload

    async def _fetch(self, context, account_id: str, since: str, until: str, fields=()) -> meta_fetcher_pb2.FetchInsightsResponse:
        self.upstream_calls += 1
        try:
            return await self.fetcher.FetchInsights(
                meta_fetcher_pb2.FetchInsightsRequest(account_id=account_id, since=since, until=until,
                                                      fields=list(fields)), timeout=120,
                metadata=self.token.metadata())
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), f"meta_fetcher: {exc.details()}")

    async def GetInsights(self, request: gw.GetInsightsRequest, context) -> bytes:
        await self._auth(context)
        key = ("GetInsights", request.SerializeToString(deterministic=True))
        payload = self._cached(key)
        if payload is not None:
            return payload
        fetched = await self._fetch(context, request.account_id, request.since, request.until, request.fields)
        reply = gw.GetInsightsResponse(account_id=fetched.account_id, rows=fetched.rows,
                                       freshness=insights_pb2.Freshness(as_of=fetched.fetched_at))
        payload = reply.SerializeToString(deterministic=True)
        self._keep(key, payload)
        return payload

    async def GetFatigue(self, request: gw.GetFatigueRequest, context) -> bytes:
        await self._auth(context)
        key = ("GetFatigue", request.SerializeToString(deterministic=True))
        payload = self._cached(key)
        if payload is not None:
            return payload
        fetched = await self._fetch(context, request.account_id, request.since, request.until)
        by_ad: dict[str, list] = defaultdict(list)
        for row in fetched.rows:
            by_ad[row.ad_id].append(row)
        score = fatigue_engine_pb2.ScoreAdsRequest(
            account_id=fetched.account_id, config=request.config,
            ads=[fatigue_pb2.AdSeries(ad_id=ad, days=sorted(rows, key=lambda r: r.date_start))
                 for ad, rows in sorted(by_ad.items())])
        try:
            scored = await self.engine.ScoreAds(score, timeout=60, metadata=self.token.metadata())
        except grpc.aio.AioRpcError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"fatigue_engine: {exc.details()}")
        reply = gw.GetFatigueResponse(account_id=fetched.account_id, results=scored.results,
                                      freshness=insights_pb2.Freshness(as_of=fetched.fetched_at))
        payload = reply.SerializeToString(deterministic=True)
        self._keep(key, payload)
        return payload

    async def GetStats(self, request: gw.GetStatsRequest, context) -> bytes:
        await self._auth(context)
        entries = len(self.cache) if self.cache is not None else 0
        if self.cache is not None:
            self.bytes = sum(len(v) for v in self.cache.values())
        return gw.GatewayStats(l1_hits=self.hits, l1_misses=self.misses, upstream_calls=self.upstream_calls,
                               l1_bytes=self.bytes, l1_entries=entries).SerializeToString()

    async def close(self) -> None:
        await self._fetcher_channel.close()
        await self._engine_channel.close()


def _serialize(message) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


async def serve(args: argparse.Namespace) -> None:
    proxy = PassThroughProxy(args.fetcher, args.engine, args.ttl_seconds)
    host = GrpcHost(f"{args.host}:{args.port}")
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(getattr(proxy, name), request_deserializer=req.FromString,
                                                  response_serializer=_serialize)
        for name, req in (("GetInsights", gw.GetInsightsRequest), ("GetFatigue", gw.GetFatigueRequest),
                          ("GetStats", gw.GetStatsRequest))
    }
    host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    port = await host.start([SERVICE_NAME])
    kind = "naive pass-through" if args.ttl_seconds <= 0 else f"TTL cache {args.ttl_seconds:g} s"
    print(f"bench_proxy ({kind}) listening on {args.host}:{port}", flush=True)
    try:
        await host.wait_for_termination_signal()
    finally:
        await host.stop(1.0)
        await proxy.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fetcher", required=True)
    p.add_argument("--engine", required=True)
    p.add_argument("--ttl-seconds", type=float, default=0.0, help="0 = naive pass-through (no cache)")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

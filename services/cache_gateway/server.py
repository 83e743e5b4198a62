"""Run the CacheGateway: ``python -m services.cache_gateway --port N --fetcher HOST:PORT --engine HOST:PORT``.

Settings (flags override environment): ``MONGODB_URI`` (required: the
launcher ``adfatigue up`` passes its embedded store), ``MONGODB_DB``
(``adfatigue``), ``ADFATIGUE_FETCHER_ADDR``, ``ADFATIGUE_ENGINE_ADDR``,
``ATTRIBUTION_WINDOWS`` (each account's attribution setting; default Meta's
7d_click,1d_view) and ``ACCOUNT_ATTRIBUTION_WINDOWS`` ("act_1=1d_click;..."),
``L1_MAX_BYTES`` (52428800), ``L1_TTL_SECONDS`` (60), ``FRESHNESS_PARTIAL_SECONDS``
(900), ``FRESHNESS_PROVISIONAL_SECONDS`` (21600), ``RESTATEMENT_WINDOW_DAYS`` (28), ``GATEWAY_WITH_REACH_CUM`` (off), ``REDIS_URL`` (locks shared by
replicas: single-flight across them; unset = one process) and ``REDIS_KEY_PREFIX``,
and the bearer-token key:
``JWT_HS256_SECRET`` (local) or ``JWT_PUBLIC_KEY`` (PEM, RS256/ES256), optional
``JWT_AUDIENCE`` (see services/common/auth.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from services.cache_gateway import metrics
from services.cache_gateway.audit_log import AuditLog
from services.cache_gateway.change_feed import ChangeFeed
from services.cache_gateway.demand_fencing import FencingCheck, lease_key_for
from services.cache_gateway.demand_tracker import DemandTracker
from services.cache_gateway.fatigue_alerts import alerter_from_env
from services.cache_gateway.freshness import FreshnessPolicy
from services.cache_gateway.handlers import SERVICE_NAME, add_cache_gateway_to_server
from services.cache_gateway.insights_service import InsightsService
from services.cache_gateway.l1_cache import L1Cache
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.servicer import CacheGatewayServicer
from services.cache_gateway.upstream import MetaFetcherUpstream
from services.common.attribution import AttributionSettings, InvalidAttribution
from services.common.auth import GATEWAY, JwtVerifier, ServiceToken
from services.common.lease_record import LeaseRecords
from services.common.distributed_lock import DistributedLock
from services.common.grpc_server import GrpcHost
from services.common.logs import configure_logging
from services.common.telemetry import setup_telemetry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m services.cache_gateway", description="CacheGateway gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(env("ADFATIGUE_GATEWAY_PORT", "50051")))
    p.add_argument("--mongodb-uri", default=env("MONGODB_URI"))
    p.add_argument("--mongodb-db", default=env("MONGODB_DB", "adfatigue"))
    p.add_argument("--fetcher", default=env("ADFATIGUE_FETCHER_ADDR", "127.0.0.1:50052"))
    p.add_argument("--engine", default=env("ADFATIGUE_ENGINE_ADDR", "127.0.0.1:50053"))
    p.add_argument("--l1-max-bytes", type=int, default=int(env("L1_MAX_BYTES", str(50 * 1024 * 1024))))
    p.add_argument("--l1-ttl-seconds", type=float, default=float(env("L1_TTL_SECONDS", "60")))
    p.add_argument("--partial-interval-seconds", type=float,
                   default=float(env("FRESHNESS_PARTIAL_SECONDS", "900")), help="refresh interval of today's data")
    p.add_argument("--provisional-interval-seconds", type=float,
                   default=float(env("FRESHNESS_PROVISIONAL_SECONDS", str(6 * 3600))),
                   help="refresh interval of days inside the restatement window")
    p.add_argument("--restatement-days", type=int, default=int(env("RESTATEMENT_WINDOW_DAYS", "28")))
    p.add_argument("--with-reach-cum", action="store_true",
                   default=env("GATEWAY_WITH_REACH_CUM", "").lower() in ("1", "true", "yes"),
                   help="fetch cumulative reach too (frequency and saturation components; more Meta calls)")
    p.add_argument("--attribution", default=env("ATTRIBUTION_WINDOWS", ""),
                   help="attribution setting of every account, sent as action_attribution_windows "
                        "(default: Meta's current default, 7d_click,1d_view)")
    p.add_argument("--account-attribution", default=env("ACCOUNT_ATTRIBUTION_WINDOWS", ""),
                   help="per-account settings, e.g. 'act_1=1d_click;act_2=7d_click,1d_view'")
    p.add_argument("--redis-url", default=env("REDIS_URL"), help="shared locks across replicas (unset: one process)")
    p.add_argument("--redis-prefix", default=env("REDIS_KEY_PREFIX", "adfatigue:"))
    args = p.parse_args(argv)
    try:  # notifications of fatigue-level changes (fatigue_alerts.py); a bad setting stops the start
        args.alerter = alerter_from_env(os.environ)
    except ValueError as exc:
        p.error(str(exc))
    if not (env("JWT_HS256_SECRET") or env("JWT_PUBLIC_KEY")):
        p.error("set JWT_HS256_SECRET (local) or JWT_PUBLIC_KEY (production, PEM) to verify callers' bearer tokens")
    if not args.mongodb_uri:
        p.error("MONGODB_URI (or --mongodb-uri) is required; `adfatigue up` starts an embedded store for you")
    try:
        AttributionSettings.parse(args.attribution, args.account_attribution)
    except InvalidAttribution as exc:
        p.error(f"ATTRIBUTION_WINDOWS / ACCOUNT_ATTRIBUTION_WINDOWS: {exc}")
    return args


async def serve(args: argparse.Namespace) -> None:
    telemetry = setup_telemetry("cache_gateway", args.host)
    client = AsyncMongoClient(args.mongodb_uri, tz_aware=True)
    store = InsightsStore(client, args.mongodb_db)
    await store.ensure_indexes()
    attribution = AttributionSettings.parse(args.attribution, args.account_attribution)
    upstream = MetaFetcherUpstream(args.fetcher, with_reach_cum=args.with_reach_cum, token=ServiceToken(GATEWAY),
                                   attribution=attribution)
    redis_client = aioredis.from_url(args.redis_url) if args.redis_url else None
    lock = DistributedLock(redis_client, prefix=f"{args.redis_prefix}lock:")
    policy = FreshnessPolicy(args.restatement_days, args.partial_interval_seconds, args.provisional_interval_seconds)
    service = InsightsService(store, upstream, policy=policy, lock=lock, attribution=attribution)
    audit = AuditLog(store.db["audit"])
    await audit.start()
    servicer = CacheGatewayServicer(service, L1Cache(args.l1_max_bytes, args.l1_ttl_seconds), args.engine,
                                    JwtVerifier.from_env(), audit, service_token=ServiceToken(GATEWAY))
    servicer.rescorer.alerter = getattr(args, "alerter", None)
    servicer.rescorer.start()
    metrics.observe_l1(servicer.l1)
    # only the current scheduler leader's refreshes pass: its token must be the lease record's (MongoDB)
    servicer.fencing = FencingCheck(LeaseRecords.of(store.db),
                                    os.environ.get("SCHEDULER_LEASE_KEY") or lease_key_for(args.redis_prefix))
    servicer.demand = DemandTracker(store.db["demand"])  # reads and subscribers, for the scheduler's ranking
    await servicer.demand.start()
    feed = ChangeFeed(store.db)
    feed.listeners.append(servicer.on_committed)
    feed.resync_listeners.append(servicer.on_resync)
    feed.start()
    await asyncio.wait_for(feed.ready.wait(), 30)
    host = GrpcHost(f"{args.host}:{args.port}")
    add_cache_gateway_to_server(servicer, host.server)
    port = await host.start([SERVICE_NAME])
    print(f"cache_gateway listening on {args.host}:{port}", flush=True)
    telemetry.announce()
    health = asyncio.create_task(follow_store_health(host, feed))
    try:
        await host.wait_for_termination_signal()
    finally:
        health.cancel()
        # NOT_SERVING, then streams end with UNAVAILABLE so clients reconnect elsewhere, then stop
        await host.stop(before_stop=servicer.hub.close_all)
        await feed.close()
        await service.drain()
        await servicer.demand.close()
        await servicer.close()
        await audit.close()
        await upstream.close()
        if redis_client:
            await redis_client.aclose()
        await client.close()
        telemetry.shutdown()


async def follow_store_health(host: GrpcHost, feed: ChangeFeed, every_s: float = 2.0,
                              tolerate_s: float = 10.0) -> None:
    """Readiness follows the store: NOT_SERVING once the change stream has been down ``tolerate_s``
    seconds (reads would fail and replicas would miss invalidations), SERVING again when it is back."""
    loop = asyncio.get_running_loop()
    down_since: float | None = None
    serving = True
    while True:
        await asyncio.sleep(every_s)
        if feed.connected:
            down_since = None
        elif down_since is None:
            down_since = loop.time()
        healthy = down_since is None or loop.time() - down_since < tolerate_s
        if healthy != serving:
            serving = healthy
            await host.set_serving(serving)


def main(argv: list[str] | None = None) -> None:
    configure_logging("cache_gateway")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()

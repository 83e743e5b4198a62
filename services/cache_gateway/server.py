"""Run the CacheGateway: ``python -m services.cache_gateway --port N --fetcher HOST:PORT --engine HOST:PORT``.

Settings (flags override environment): ``GatewaySettings`` in
``services/cache_gateway/settings.py`` - ``MONGODB_URI`` (required: the launcher
``adfatigue up`` passes its embedded store), the fetcher and engine addresses,
the attribution setting of each account (``ATTRIBUTION_WINDOWS``,
``ACCOUNT_ATTRIBUTION_WINDOWS``), L1 size and lifetime, the freshness intervals,
``REDIS_URL`` (locks shared by replicas: single-flight across them; unset = one
process), the bearer-token key ``JWT_HS256_SECRET`` (local), ``JWT_PUBLIC_KEY``
(PEM, RS256/ES256) or ``JWT_JWKS_URL``, and the gateway's own identity for
meta_fetcher and fatigue_engine: ``ADFATIGUE_SERVICE_TOKEN_FILE`` /
``ADFATIGUE_SERVICE_TOKEN`` (minted from the HS256 secret when unset); TLS:
``GRPC_TLS_*`` (services/common/tls.py). A bad setting exits with status 2 and
a message naming it.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Mapping

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from services.cache_gateway import metrics
from services.cache_gateway.audit_log import AuditLog
from services.cache_gateway.change_feed import ChangeFeed
from services.cache_gateway.demand_fencing import FencingCheck
from services.cache_gateway.demand_tracker import DemandTracker
from services.cache_gateway.fatigue_alerts import alerter_from_settings
from services.cache_gateway.handlers import SERVICE_NAME, add_cache_gateway_to_server
from services.cache_gateway.insights_service import InsightsService
from services.cache_gateway.l1_cache import ENTRY_OVERHEAD_BYTES, L1Cache
from services.cache_gateway.l2_reads import L2ReadCounter
from services.cache_gateway.l2_store import InsightsStore
from services.cache_gateway.replica_cache import ReplicaCache
from services.cache_gateway.servicer import CacheGatewayServicer
from services.cache_gateway.settings import GatewaySettings
from services.cache_gateway.upstream import MetaFetcherUpstream
from services.common.auth import GATEWAY, JwtVerifier, ServiceToken
from services.common.lease_record import LeaseRecords
from services.common.distributed_lock import DistributedLock
from services.common.grpc_server import GrpcHost
from services.common.heap import freeze_startup_heap
from services.common.logs import configure_logging
from services.common.telemetry import setup_telemetry
from services.common.settings import SettingsError, parse_service_args
from services.common.shutdown import ShutdownSteps


def parse_args(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Flags, then ``args.settings`` (GatewaySettings from ``env``, flags winning); exits 2 on a bad value."""
    p = argparse.ArgumentParser(prog="python -m services.cache_gateway", description="CacheGateway gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="gRPC port (ADFATIGUE_GATEWAY_PORT, 50051)")
    p.add_argument("--mongodb-uri", default=None)
    p.add_argument("--mongodb-db", default=None)
    p.add_argument("--fetcher", dest="fetcher_addr", default=None, help="meta_fetcher host:port")
    p.add_argument("--engine", dest="engine_addr", default=None, help="fatigue_engine host:port")
    p.add_argument("--l1-max-bytes", type=int, default=None)
    p.add_argument("--l1-ttl-seconds", dest="l1_ttl_s", type=float, default=None)
    p.add_argument("--partial-interval-seconds", dest="partial_interval_s", type=float, default=None,
                   help="refresh interval of today's data")
    p.add_argument("--provisional-interval-seconds", dest="provisional_interval_s", type=float, default=None,
                   help="refresh interval of days inside the restatement window")
    p.add_argument("--restatement-days", type=int, default=None)
    p.add_argument("--with-reach-cum", action="store_true", default=None,
                   help="fetch cumulative reach too (frequency and saturation components; more Meta calls)")
    p.add_argument("--attribution", default=None,
                   help="attribution setting of every account, sent as action_attribution_windows "
                        "(default: Meta's current default, 7d_click,1d_view)")
    p.add_argument("--account-attribution", default=None,
                   help="per-account settings, e.g. 'act_1=1d_click;act_2=7d_click,1d_view'")
    p.add_argument("--redis-url", default=None, help="shared locks across replicas (unset: one process)")
    p.add_argument("--redis-prefix", dest="redis_key_prefix", default=None)
    args = parse_service_args(p, GatewaySettings, argv, env)
    try:
        args.settings.require_verifier_key()
        args.settings.require_service_token()
        args.settings.require("mongodb_uri", "set it (or --mongodb-uri); `adfatigue up` starts an embedded "
                                             "store for you")
        # notifications of fatigue-level changes (fatigue_alerts.py); a bad setting stops the start
        args.alerter = alerter_from_settings(args.settings)
    except ValueError as exc:  # SettingsError included
        p.error(str(exc))
    return args


async def serve(args: argparse.Namespace) -> None:
    settings: GatewaySettings = args.settings
    telemetry = setup_telemetry("cache_gateway", args.host, settings)
    l2_reads = L2ReadCounter()
    client = AsyncMongoClient(settings.mongodb_uri, tz_aware=True, event_listeners=[l2_reads])
    store = InsightsStore(client, settings.mongodb_db)
    await store.ensure_indexes()
    attribution = settings.attribution_settings
    upstream = MetaFetcherUpstream(settings.fetcher_addr, with_reach_cum=settings.with_reach_cum,
                                   token=ServiceToken(GATEWAY, settings=settings), attribution=attribution)
    # bounded waits: an unreachable Redis must degrade the lock quickly, not hang the fetch (issue 16)
    redis_client = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2) \
        if settings.redis_url else None
    lock = DistributedLock(redis_client, prefix=f"{settings.redis_key_prefix}lock:", ttl_s=settings.fetch_lock_ttl_s)
    feed = ChangeFeed(store.db)
    memo = memo_bytes(settings.l1_max_bytes)
    replicas = ReplicaCache(store, max(1, settings.l1_max_bytes - 2 * memo), settings.l1_ttl_s,
                            connected=lambda: feed.connected)
    service = InsightsService(store, upstream, policy=settings.policy, lock=lock, attribution=attribution,
                              replicas=replicas)
    audit = AuditLog(store.db["audit"])
    await audit.start()
    servicer = CacheGatewayServicer(service, L1Cache(memo, settings.l1_ttl_s), settings.engine_addr,
                                    JwtVerifier.from_settings(settings), audit,
                                    service_token=ServiceToken(GATEWAY, settings=settings), fatigue_memo_bytes=memo)
    servicer.l2_reads = l2_reads
    servicer.rescorer.alerter = getattr(args, "alerter", None)
    servicer.rescorer.start()
    metrics.observe_l1(servicer.l1_totals)  # replicas + memoised answers and fatigue results
    # only the current scheduler leader's refreshes pass: its token must be the lease record's (MongoDB)
    servicer.fencing = FencingCheck(LeaseRecords.of(store.db), settings.lease_key)
    servicer.demand = DemandTracker(store.db["demand"])  # reads and subscribers, for the scheduler's ranking
    await servicer.demand.start()
    feed.listeners.append(replicas.on_change)  # first: subscribers' snapshots then see the change applied
    feed.listeners.append(servicer.on_committed)
    feed.freshness_listeners.append(replicas.on_freshness)
    feed.resync_listeners.append(servicer.on_resync)
    feed.start()
    await asyncio.wait_for(feed.ready.wait(), 30)
    host = GrpcHost(f"{args.host}:{settings.port}")
    add_cache_gateway_to_server(servicer, host.server)
    port = await host.start([SERVICE_NAME])
    freeze_startup_heap()  # services/common/heap.py; before the readiness line: no caller waits on it
    print(f"cache_gateway listening on {args.host}:{port}", flush=True)
    telemetry.announce()
    health = asyncio.create_task(follow_store_health(host, feed))
    try:
        await host.wait_for_termination_signal()
    finally:
        health.cancel()
        # within Kubernetes' default 30 s grace, whatever is unreachable
        steps = ShutdownSteps(budget_s=settings.shutdown_budget_s, step_s=settings.shutdown_step_s)
        # NOT_SERVING, then streams end with UNAVAILABLE so clients reconnect elsewhere, then stop
        await steps.step("the gRPC server", host.stop(before_stop=servicer.hub.close_all))
        await steps.step("the change feed", feed.close())
        await steps.step("background refreshes", service.drain())
        await steps.step("the demand tracker's last flush", servicer.demand.close())
        await steps.step("the fatigue engine channel", servicer.close())
        await steps.step("the replicas", replicas.close())
        await steps.step("the audit log's last entries", audit.close(timeout_s=4.0))
        await steps.step("the meta_fetcher channel", upstream.close())
        if redis_client:
            await steps.step("Redis", redis_client.aclose())
        await steps.step("MongoDB", client.close())
        telemetry.shutdown()


def memo_bytes(l1_max_bytes: int) -> int:
    """The share of L1_MAX_BYTES for memoised serialized answers, and again for memoised fatigue results
    (a quarter each); the accounts' replicas get the other half."""
    return max(ENTRY_OVERHEAD_BYTES, l1_max_bytes // 4)


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
    args = parse_args(argv)
    configure_logging("cache_gateway", args.settings)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

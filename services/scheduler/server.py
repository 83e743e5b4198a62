"""Run the Scheduler: ``python -m services.scheduler --port N --gateway HOST:PORT``.

Settings (flags override environment; all of them in ``settings.py``):
``MONGODB_URI`` (required), ``MONGODB_DB``, ``ADFATIGUE_GATEWAY_ADDR``, ``ADFATIGUE_SCHEDULER_PORT``,
``SCHEDULER_INTERVAL_SECONDS`` (600, R6), ``REDIS_URL`` (unset: this process
always leads and assumes its configured budget share - the single-machine
fallback), ``REDIS_KEY_PREFIX`` / ``SCHEDULER_LEASE_KEY`` /
``SCHEDULER_LEASE_TTL_SECONDS``, ``SCHEDULER_BUDGET_CALLS_PER_HOUR`` (150 of
Meta's ~200), ``SCHEDULER_ONDEMAND_RESERVE_CALLS``, ``SCHEDULER_WEBHOOK_URL``
(Slack-compatible notifications), the freshness intervals shared with the
gateway, the bearer-token key ``JWT_HS256_SECRET`` / ``JWT_PUBLIC_KEY``
(GetStatus and RunNow need the operator role) and ``ADFATIGUE_SERVICE_TOKEN_FILE`` /
``ADFATIGUE_SERVICE_TOKEN`` (the token it sends to the gateway: the ``scheduler``
service identity, the only one whose fencing token the gateway accepts; minted
from the HS256 secret when unset).
A bad setting exits with status 2 and a message naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Mapping

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.audit_log import COLLECTION as AUDIT_COLLECTION, AuditLog
from services.common.auth import SCHEDULER, JwtVerifier, ServiceToken
from services.common.lease_record import LeaseRecords
from services.common.logs import configure_logging
from services.common.telemetry import setup_telemetry
from services.common.grpc_server import GrpcHost, service_channel
from services.common.shutdown import ShutdownSteps
from services.common.settings import parse_service_args
from services.common.pb.adfatigue.v1 import cache_gateway_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from services.common.heap import freeze_startup_heap
from services.scheduler.budget import LocalBudget, RedisBudget
from services.scheduler.cycle import CycleRunner
from services.scheduler.events import build_notifier
from services.scheduler.leader_lease import LocalLease, LocalSchedule, RedisLease, RedisSchedule
from services.scheduler.scheduler_loop import SchedulerLoop
from services.scheduler.servicer import SchedulerServicer
from services.scheduler.settings import SchedulerSettings, SettingsError
from services.scheduler.sources import GatewayRefresher, MongoDemandSource, MongoFreshnessSource

SERVICE_NAME = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name
#: On SIGTERM, how long a cycle in progress may take to finish (ServiceProcess.stop waits 10 s before SIGKILL).
FIRST_LEASE_WAIT_S = 5.0  # longest start-up wait for the first lease attempt, seconds
STOP_GRACE_S = 8.0


def parse_args(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Flags and settings; exits with status 2 and a clear message on a bad value. ``args.settings`` holds them."""
    p = argparse.ArgumentParser(prog="python -m services.scheduler", description="Scheduler gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="gRPC port (0 = any free port; default 50054)")
    p.add_argument("--mongodb-uri", default=None)
    p.add_argument("--mongodb-db", default=None)
    p.add_argument("--gateway", dest="gateway_addr", default=None, help="the gateway's host:port")
    p.add_argument("--interval-seconds", dest="interval_s", type=float, default=None,
                   help="cycle interval (SCHEDULER_INTERVAL_SECONDS)")
    p.add_argument("--redis-url", default=None, help="lease, schedule and budget in Redis (REDIS_URL)")
    p.add_argument("--lease-key", default=None, help="Redis key of the leader lease (SCHEDULER_LEASE_KEY)")
    args = parse_service_args(p, SchedulerSettings, argv, env)
    try:
        args.settings.require("mongodb_uri", "set it (or --mongodb-uri); `adfatigue up` starts an embedded "
                                             "store for you")
        args.settings.require_verifier_key()
        args.settings.require_service_token()
    except SettingsError as exc:
        p.error(str(exc))
    return args


async def serve(args: argparse.Namespace) -> None:
    settings: SchedulerSettings = args.settings
    telemetry = setup_telemetry("scheduler", args.host, settings)
    client = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    store = InsightsStore(client, settings.mongodb_db)
    holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    # bounded waits: with Redis unreachable the lease's renewals fail fast and this replica stops leading
    redis_client = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2) \
        if settings.redis_url else None
    records = LeaseRecords.of(store.db)  # fencing tokens that survive a Redis restart
    if redis_client:
        lease = RedisLease(redis_client, holder, settings.lease_key, int(settings.lease_ttl_s * 1000),
                           records=records)
        schedule = RedisSchedule(redis_client, settings.lease_key)
        budget = RedisBudget(redis_client, settings)
    else:
        lease = LocalLease(holder, records, settings.lease_key)
        schedule, budget = LocalSchedule(), LocalBudget(settings)
    channel = service_channel(settings.gateway_addr)
    refresher = GatewayRefresher(cache_gateway_pb2_grpc.CacheGatewayStub(channel),
                                 ServiceToken(SCHEDULER, settings=settings))
    runner = CycleRunner(MongoFreshnessSource(store, settings),
                         MongoDemandSource(store.db["demand"], settings.demand_heartbeat_ttl_s), budget, refresher,
                         settings)
    notifier = build_notifier(settings.webhook_url, settings.webhook_timeout_s)
    loop = SchedulerLoop(runner, lease, schedule, settings, notifier)
    host = GrpcHost(f"{args.host}:{settings.port}")
    audit = AuditLog(store.db[AUDIT_COLLECTION], service="scheduler")
    await audit.start()
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(
        SchedulerServicer(loop, JwtVerifier.from_settings(settings), audit), host.server)
    # the first lease attempt before serving (a RunNow right after "listening" found no leader yet), bounded: with
    # the store or Redis unreachable the loop keeps trying after start-up, as before
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(loop.keep_lease(), FIRST_LEASE_WAIT_S)
    port = await host.start([SERVICE_NAME])
    freeze_startup_heap()  # services/common/heap.py; before the readiness line: no caller waits on it
    print(f"scheduler listening on {args.host}:{port}", flush=True)
    telemetry.announce()
    logging.getLogger(__name__).info(
        "scheduler %s: interval %.0f s, budget %s (share %d of %d calls/%.0f s, reserve %d), lease %s",
        holder, settings.interval_s, "redis-shared" if redis_client else "configured-share", settings.share_calls,
        settings.budget_calls, settings.budget_window_s, settings.reserve,
        settings.lease_key if redis_client else "local")
    runner_task = asyncio.create_task(loop.run_forever())
    try:
        await host.wait_for_termination_signal()
    finally:
        # bounded, whatever is unreachable (services/common/shutdown.py): with MongoDB gone, the lease release
        # and the audit log's last flush each waited for the driver's own timeouts
        steps = ShutdownSteps(budget_s=settings.shutdown_budget_s, step_s=settings.shutdown_step_s)
        loop.request_stop()  # a cycle in progress finishes its refreshes (up to STOP_GRACE_S), then we leave
        await steps.step("the cycle in progress", runner_task, limit_s=STOP_GRACE_S)
        inner_s = max(0.5, settings.shutdown_step_s - 1)  # a step's own timeout, inside the step's bound
        await steps.step("the gRPC server", host.stop(grace=inner_s))
        await steps.step("the leader lease", lease.release())
        await steps.step("the audit log's last entries", audit.close(timeout_s=inner_s))
        await steps.step("the webhook client", notifier.aclose())
        await steps.step("the gateway channel", channel.close())
        if redis_client:
            await steps.step("Redis", redis_client.aclose())
        await steps.step("MongoDB", client.close())
        telemetry.shutdown()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("scheduler", args.settings)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

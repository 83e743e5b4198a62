"""Run the Scheduler: ``python -m services.scheduler --port N --gateway HOST:PORT``.

Settings (flags override environment): ``MONGODB_URI`` (required), ``MONGODB_DB``,
``ADFATIGUE_GATEWAY_ADDR``, ``SCHEDULER_INTERVAL_SECONDS`` (600, R6), ``REDIS_URL``
(unset: this process always leads — the single-machine fallback), the bearer-token
key ``JWT_HS256_SECRET`` / ``JWT_PUBLIC_KEY`` (RunNow needs the operator role) and
``ADFATIGUE_SERVICE_TOKEN`` (the token it sends to the gateway; minted from the
HS256 secret when unset).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import uuid

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.auth import JwtVerifier, ServiceToken
from services.common.grpc_server import GrpcHost, insecure_channel
from services.common.pb.adfatigue.v1 import cache_gateway_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from services.scheduler.leader_lease import LocalLease, RedisLease
from services.scheduler.scheduler_loop import SchedulerLoop
from services.scheduler.servicer import SchedulerServicer

SERVICE_NAME = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m services.scheduler", description="Scheduler gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(env("ADFATIGUE_SCHEDULER_PORT", "50054")))
    p.add_argument("--mongodb-uri", default=env("MONGODB_URI"))
    p.add_argument("--mongodb-db", default=env("MONGODB_DB", "adfatigue"))
    p.add_argument("--gateway", default=env("ADFATIGUE_GATEWAY_ADDR", "127.0.0.1:50051"))
    p.add_argument("--interval-seconds", type=float, default=float(env("SCHEDULER_INTERVAL_SECONDS", "600")))
    p.add_argument("--redis-url", default=env("REDIS_URL"))
    args = p.parse_args(argv)
    if not args.mongodb_uri:
        p.error("MONGODB_URI (or --mongodb-uri) is required; `adfatigue up` starts an embedded store for you")
    if args.interval_seconds <= 0:
        p.error("--interval-seconds must be > 0")
    return args


async def serve(args: argparse.Namespace) -> None:
    client = AsyncMongoClient(args.mongodb_uri, tz_aware=True)
    store = InsightsStore(client, args.mongodb_db)
    holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    redis_client = aioredis.from_url(args.redis_url) if args.redis_url else None
    lease = RedisLease(redis_client, holder) if redis_client else LocalLease(holder)
    channel = insecure_channel(args.gateway)
    loop = SchedulerLoop(store, cache_gateway_pb2_grpc.CacheGatewayStub(channel), lease, args.interval_seconds,
                         token=ServiceToken("scheduler"))
    host = GrpcHost(f"{args.host}:{args.port}")
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(SchedulerServicer(loop, JwtVerifier.from_env()), host.server)
    port = await host.start([SERVICE_NAME])
    print(f"scheduler listening on {args.host}:{port}", flush=True)
    runner = asyncio.create_task(loop.run_forever())
    try:
        await host.wait_for_termination_signal()
    finally:
        runner.cancel()
        await host.stop()
        await lease.release()
        await channel.close()
        if redis_client:
            await redis_client.aclose()
        await client.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()

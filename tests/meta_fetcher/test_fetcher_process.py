"""``python -m services.meta_fetcher`` as a process: prints its address, serves with health, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import insecure_channel
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2_grpc
from services.meta_fetcher.servicer import SERVICE_NAME
from services.meta_sandbox import sandbox_server, synthetic_account
from services.common.auth import GATEWAY, ServiceToken, bearer, mint_token
from tests.meta_fetcher.helpers import REPO, request, sandbox_stats

SECRET = "fetcher-test-secret-of-at-least-32-bytes"


async def test_process_serves_health_and_insights_then_stops_cleanly() -> None:
    account = synthetic_account(days=5, n_ads=2)
    async with sandbox_server([account], synthetic=False, tokens=["proc-token"]) as base:
        env = {**os.environ, "META_ACCESS_TOKEN": "proc-token", "PYTHONUNBUFFERED": "1", "JWT_HS256_SECRET": SECRET}
        env.pop("REDIS_URL", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.meta_fetcher", "--port", "0", "--graph-url", base,
            "--api-version", "v23.0", cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            assert line.startswith("meta_fetcher listening on 127.0.0.1:"), line
            target = line.rsplit(" ", 1)[1]
            async with insecure_channel(target) as channel:
                health = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME))
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                stub = meta_fetcher_pb2_grpc.MetaFetcherStub(channel)
                since = min(r.date_start for r in account.rows).isoformat()
                until = max(r.date_start for r in account.rows).isoformat()
                ask = request(f"act_{account.account_id}", since, until)
                # finding: FetchInsights answered anonymous callers, spending the app's Meta budget
                calls_before = (await sandbox_stats(base))["graph_requests"]
                for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                                       (bearer(mint_token(SECRET, "someone", ["*"], ["operator"])),
                                        grpc.StatusCode.PERMISSION_DENIED)):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.FetchInsights(ask, metadata=metadata)
                    assert err.value.code() == code, err.value.details()
                assert (await sandbox_stats(base))["graph_requests"] == calls_before  # no Meta call was made
                gateway = ServiceToken(GATEWAY, {"JWT_HS256_SECRET": SECRET})
                resp = await stub.FetchInsights(ask, metadata=gateway.metadata())
                assert len(resp.rows) == len(account.rows)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            stderr = (await proc.stderr.read()).decode()
            assert "proc-token" not in stderr and "HTTP Request" in stderr
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

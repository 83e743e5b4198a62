"""The whole system with TLS on every gRPC server and channel (GRPC_TLS_*, client certificates required).

Every service listens with TLS only; the gateway reaches meta_fetcher and fatigue_engine, and the
scheduler the gateway, over TLS with their client certificate; a plaintext caller or one without a
certificate is refused at the handshake.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import (
    cache_gateway_pb2 as gw, cache_gateway_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc,
)
from tests.tls_certs import CertAuthority

pytestmark = pytest.mark.e2e

ACCOUNT = "act_900000000001"
_TODAY = datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = CertAuthority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("adfatigue-service"), ca.issue("a-person")


@pytest.fixture(scope="module")
def system(tmp_path_factory, pki):
    ca, service, _ = pki
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("tls-system"), gateway_port=0, scheduler_interval_s=3600,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"tls_{os.getpid()}", **ca.env(service, "require")},
    )
    with LocalSystem(config) as running:
        yield running


def secure(pki, target: str, with_cert: bool = True) -> grpc.Channel:
    ca, _, person = pki
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.path.read_bytes(),
        private_key=person.key.read_bytes() if with_cert else None,
        certificate_chain=person.cert.read_bytes() if with_cert else None)
    return grpc.secure_channel(target, creds)


def test_every_call_goes_over_tls_and_plaintext_or_certificate_less_callers_are_refused(system, pki):
    md = bearer(mint_token(system.jwt_secret, "tls-test", ["*"], ["operator"]))
    gateway = system.processes["cache_gateway"].address
    with secure(pki, gateway) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        since, until = (_TODAY - timedelta(days=6)).isoformat(), (_TODAY - timedelta(days=2)).isoformat()
        # fetched through meta_fetcher and scored by fatigue_engine: both reached over TLS
        reply = stub.GetFatigue(gw.GetFatigueRequest(account_id=ACCOUNT, since=since, until=until), timeout=120,
                                metadata=md)
        assert reply.results
    with secure(pki, system.processes["scheduler"].address) as channel:
        run = scheduler_pb2_grpc.SchedulerStub(channel).RunNow(scheduler_pb2.RunNowRequest(), timeout=120,
                                                                metadata=md)
        assert run.cycle.failed_items == 0  # its refreshes reached the gateway over TLS
    for name in ("cache_gateway", "meta_fetcher", "fatigue_engine", "scheduler"):
        target = system.processes[name].address
        for channel in (grpc.insecure_channel(target), secure(pki, target, with_cert=False)):
            with channel, pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, name

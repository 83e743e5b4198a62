"""TLS on a real gRPC server over loopback: server and channel credentials, optional and required client
certificates, the plaintext health port for probes, and clear errors for half-configured settings."""

from __future__ import annotations

import contextlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import GrpcHost, insecure_channel, service_channel
from services.common.tls import TlsConfig
from tests.private_redis import free_port
from tests.tls_certs import CertAuthority


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertAuthority(tmp_path_factory.mktemp("tls"))


@contextlib.asynccontextmanager
async def host(tls: TlsConfig):
    server = GrpcHost("127.0.0.1:0", tls=tls)
    port = await server.start(["test.Service"])
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def health(channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status


async def refused(channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_server_and_channel_with_required_client_certificates(ca):
    server_tls = TlsConfig.from_env(ca.env(ca.issue("engine"), "require") | {"GRPC_HEALTH_PORT": str(free_port())})
    async with host(server_tls) as (server, target):
        async with service_channel(target, TlsConfig.from_env(ca.env(ca.issue("gateway")))) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
        async with service_channel(target, TlsConfig.from_env(ca.env(None))) as channel:  # no client cert
            await refused(channel)
        async with insecure_channel(target) as channel:  # plaintext against a TLS port
            await refused(channel)
        other = CertAuthority(ca.folder / "other", "someone-else")
        async with service_channel(target, TlsConfig.from_env(other.env(other.issue("intruder")))) as channel:
            await refused(channel)  # a CA the server does not trust (and that does not trust it)
        async with insecure_channel(f"127.0.0.1:{server.health_port}") as channel:  # probes: health only
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(b"")
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_optional_client_certificates(ca):
    async with host(TlsConfig.from_env(ca.env(ca.issue("fetcher"), "optional"))) as (_, target):
        async with service_channel(target, TlsConfig.from_env(ca.env(None))) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
        async with service_channel(target, TlsConfig.from_env(ca.env(ca.issue("gateway")))) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_without_settings_everything_stays_plaintext():
    assert TlsConfig.from_env({}) is None
    async with host(None) as (_, target):
        async with service_channel(target, None) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("env, words", [
    ({"GRPC_TLS_CERT": "/x.crt"}, "GRPC_TLS_KEY"),
    ({"GRPC_TLS_CA": "/nonexistent/ca.crt"}, "GRPC_TLS_CA=/nonexistent/ca.crt"),
    ({"GRPC_TLS_CA": "/nonexistent/ca.crt", "GRPC_TLS_CLIENT_AUTH": "maybe"}, "GRPC_TLS_CLIENT_AUTH"),
])
def test_half_configured_tls_is_a_clear_error(env, words):
    with pytest.raises(ValueError) as err:  # TlsConfigError or SettingsError, both naming the setting
        TlsConfig.from_env(env)
    assert words in str(err.value)

"""Serving a gRPC service: health checking, reflection, keepalive, graceful stop.

Every server in the project is built the same way (DESIGN.md §2: "every
service exposes gRPC health checking and server reflection"):

    host = GrpcHost("127.0.0.1:0")
    add_FooServicer_to_server(FooServicer(...), host.server)
    port = await host.start([FOO_SERVICE_NAME])
    await host.wait_for_termination_signal()   # SIGINT / SIGTERM
    await host.stop()
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.error_boundary import ErrorBoundary
from services.common.request_decoding import DecodeGuard
from services.common.tls import TlsConfig
from services.common.telemetry import server_timer

log = logging.getLogger(__name__)

#: Keepalive and message-size options shared by servers and clients (values in ms / bytes).
#: 16 MiB is the response ceiling of DESIGN.md R12.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = (
    ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # recycle client connections so new replicas (HPA) get traffic; streams past the grace end with
    # UNAVAILABLE and resume elsewhere with their last version
    ("grpc.max_connection_age_ms", 10 * 60_000),
    ("grpc.max_connection_age_grace_ms", 60_000),
)
#: gRPC retry policy of every channel between our services (gRFC A6, service config
#: https://github.com/grpc/grpc/blob/master/doc/service_config.md): a call that fails with UNAVAILABLE
#: (a peer restarting, a connection broken by a ``kill -9``) is sent again, at most 5 attempts in all
#: (gRPC's cap), each after a random pause of up to 0.2, 0.4, 0.8 and 1 s (so within ~2.4 s, longer than
#: the 1 s reconnect back-off below); retries stop once the peer has sent a response (streams), and the
#: caller's deadline bounds them all. Other codes are never retried (they are answers, not outages).
RETRY_SERVICE_CONFIG = {
    "methodConfig": [{
        "name": [{}],  # every method of every service
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.2s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
}
CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(RETRY_SERVICE_CONFIG)),
    # reconnect to a restarted peer within ~1 s instead of gRPC's default back-off of up to 120 s
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


def insecure_channel(target: str) -> grpc.aio.Channel:
    """A plaintext aio channel with the shared options (tests, loopback tools; services use ``service_channel``)."""
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


#: ``tls`` default of ``service_channel`` and ``GrpcHost``: read ``GRPC_TLS_*`` from the environment.
FROM_ENV = object()


def service_channel(target: str, tls: "TlsConfig | None | object" = FROM_ENV) -> grpc.aio.Channel:
    """An aio channel to another service of ours, with the shared options: TLS when ``GRPC_TLS_CA`` is
    configured (services/common/tls.py; a client certificate too when this service has one), else plaintext."""
    tls = TlsConfig.from_env() if tls is FROM_ENV else tls
    if tls is None or tls.ca is None:
        return insecure_channel(target)
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=CHANNEL_OPTIONS + tls.channel_options())


class GrpcHost:
    """One grpc.aio server with health checking and reflection registered.

    ``interceptors`` run outermost first; then the ``ErrorBoundary`` (services/common/error_boundary.py:
    dependency failures become UNAVAILABLE / DEADLINE_EXCEEDED, bugs a clean UNKNOWN; it also times every call
    for ``rpc.server.call.duration``), so every interceptor before it sees the final status of a failed call;
    innermost the ``DecodeGuard`` (services/common/request_decoding.py: undecodable request bytes are
    INVALID_ARGUMENT).

    ``tls``: serve TLS with these certificates (default: ``GRPC_TLS_*`` from the environment, see
    services/common/tls.py; None or no certificate: plaintext). With TLS and ``health_port`` set, health
    checking alone is also served in plaintext on that port (Kubernetes' gRPC probes cannot speak TLS)."""

    def __init__(self, address: str, interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
                 tls: "TlsConfig | None | object" = FROM_ENV) -> None:
        port = address.rpartition(":")[2]
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"address {address!r}: the port must be a number from 0 to 65535")
        self.address = address
        self.tls = TlsConfig.from_env() if tls is FROM_ENV else tls
        self._health_server: grpc.aio.Server | None = None
        self.health_port = 0
        # RPC durations are timed by the ErrorBoundary's own wrapper (services/common/telemetry.py: RpcMetrics),
        # which sees each call's final status: no interceptor layer of their own on the hot path. The boundary
        # wraps the DecodeGuard's wrapping, so undecodable requests are timed (INVALID_ARGUMENT) too.
        self.server = grpc.aio.server(interceptors=[*interceptors, ErrorBoundary(server_timer()), DecodeGuard()],
                                      options=SERVER_OPTIONS)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = []
        self._stop_event = asyncio.Event()
        self.port = 0

    async def start(self, service_names: Sequence[str]) -> int:
        """Bind, start, mark every service SERVING; return the bound port."""
        self._service_names = list(service_names)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        try:
            if self.tls is not None and self.tls.serves_tls:
                self.port = self.server.add_secure_port(self.address, self.tls.server_credentials())
            else:
                self.port = self.server.add_insecure_port(self.address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {self.address}: the port is in use or the address is not local")
        if self.tls is not None and self.tls.serves_tls and self.tls.health_port is not None:
            await self._start_plaintext_health(self.tls.health_port)
        await self.server.start()
        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def _start_plaintext_health(self, port: int) -> None:
        """Health checking only (the same states), plaintext, for probes that cannot speak TLS."""
        self._health_server = grpc.aio.server(options=SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        host = self.address.rpartition(":")[0]
        try:
            self.health_port = self._health_server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:
            self.health_port = 0
        if self.health_port == 0:
            raise OSError(f"cannot listen on {host}:{port} (GRPC_HEALTH_PORT): the port is in use")
        await self._health_server.start()

    async def set_serving(self, serving: bool) -> None:
        """Report every service SERVING or NOT_SERVING (readiness follows a dependency's health)."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float = 5.0, before_stop: Callable[[], None] | None = None) -> None:
        """Go NOT_SERVING first so balancers move away, run ``before_stop`` (e.g. end streams), then stop
        within ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        if before_stop is not None:
            before_stop()
        await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)

    def request_stop(self) -> None:
        self._stop_event.set()

    async def wait_for_termination_signal(self) -> None:
        """Block until SIGINT or SIGTERM (or ``request_stop``)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop_event.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        await self._stop_event.wait()

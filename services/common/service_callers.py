"""Who may call an internal service (issue 15): a server interceptor checking every RPC's bearer token.

meta_fetcher and fatigue_engine answer only the ``gateway`` service identity
(services/common/auth.py): a call without ``authorization: Bearer <JWT>`` is
UNAUTHENTICATED, a valid token without the role PERMISSION_DENIED, before any
work (or any Meta call) is done. Health checking and reflection stay open
(probes and tooling carry no token).

    host = GrpcHost(address, interceptors=[ServiceCallers.from_env({GATEWAY}, "meta_fetcher")])
"""

from __future__ import annotations

from typing import Iterable

import grpc

from services.common.auth import AuthError, JwtVerifier, require_role
from services.common.handler_wrapping import refusing

#: Methods any caller may use (Kubernetes probes, grpcurl).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServiceCallers(grpc.aio.ServerInterceptor):
    """Only callers holding one of ``roles`` get through; ``service`` names this server in messages."""

    def __init__(self, verifier: JwtVerifier, roles: Iterable[str], service: str):
        self.verifier = verifier
        self.roles = frozenset(roles)
        self.service = service

    @classmethod
    def from_env(cls, roles: Iterable[str], service: str, env: dict[str, str] | None = None) -> "ServiceCallers":
        """Keys from ``JWT_*`` (JwtVerifier.from_env); raises ValueError when none is set."""
        return cls(JwtVerifier.from_env(env), roles, service)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        try:
            principal = self.verifier.authenticate(handler_call_details.invocation_metadata)
            require_role(principal, self.roles, f"{self.service} ({method.rsplit('/', 1)[-1]})")
        except AuthError as exc:
            return refusing(handler, exc.code, exc.message)
        return handler

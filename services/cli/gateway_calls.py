"""Calls the CLI makes to the running services, and how it explains their failures."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.common.auth import bearer, mint_token
from services.common.grpc_server import service_channel
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.common.settings import TokenMintSettings


class NoToken(RuntimeError):
    pass


def local_secret(data_dir: Path, settings: TokenMintSettings) -> str:
    """``JWT_HS256_SECRET``, else the secret of the ``up`` running from ``data_dir``; NoToken when neither exists."""
    secret = settings.jwt_hs256_secret
    path = data_dir / "dev-jwt-secret"
    if not secret and path.exists():
        secret = path.read_text().strip()
    if not secret:
        raise NoToken(f"no bearer token: set ADFATIGUE_TOKEN, or run from the folder where `adfatigue up` "
                      f"runs, or pass --data-dir ({path} not found)")
    return secret


def cli_token(data_dir: Path, settings) -> str:
    """``settings.token`` (``ADFATIGUE_TOKEN``), or a short-lived development token minted from the local
    stack's secret (``services/cli/settings.py``: ``CliSettings``). Raises NoToken when neither is available.
    """
    if settings.token:
        return settings.token
    return mint_token(local_secret(data_dir, settings), "adfatigue-cli", ["*"], ["operator"], ttl_s=600)


def unreachable_hint(exc: grpc.RpcError, target: str, flag: str = "--gateway",
                     variable: str = "ADFATIGUE_GATEWAY_ADDR") -> str:
    """A sentence to add when the service could not be reached at all (``flag`` / ``variable``: how the command
    is pointed at it; ``status`` talks to the scheduler: ``--scheduler``, no variable)."""
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN) \
            and any(w in (exc.details() or "") for w in ("connect", "refused", "HTTP/2", "Socket closed")):
        where = f"{flag} HOST:PORT" + (f" / set {variable}" if variable else "")
        return f"\nnothing answers at {target}: is `adfatigue up` running (from this folder, or pass {where})?"
    return ""


def rpc_failure_text(exc: grpc.RpcError, target: str, **hint) -> str:
    """A failed call said for a person: only ``unreachable_hint``'s sentence when nothing answered (gRPC's own
    text there is transport detail: "failed to connect to all addresses; last error: UNKNOWN: ipv4:..."), else
    the status and the service's message."""
    sentence = unreachable_hint(exc, target, **hint)
    return sentence.strip() if sentence else f"{exc.code().name}: {exc.details()}"


async def fatigue(target: str, token: str, account: str, since: str, until: str) -> gw.GetFatigueResponse:
    async with service_channel(target) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        return await stub.GetFatigue(gw.GetFatigueRequest(account_id=account, since=since, until=until),
                                     timeout=300, metadata=bearer(token))

"""What an operator does by hand: refresh an account's days now, mint a development token.

- ``refresh``: ``CacheGateway.Refresh`` with the CLI's operator token; says
  which ranges were asked of Meta, how many rows changed, how many Meta calls
  it took and the range's version afterwards (or that nothing was due).
- ``token``: a bearer JWT signed with the local development secret (the one
  ``adfatigue up`` created in ``<data dir>/dev-jwt-secret``, or
  ``JWT_HS256_SECRET``), for grpcurl or any other gRPC client. Only for local
  systems: production verifies RS256/ES256 tokens from an identity provider.
- ``sign-in``: a one-time sign-in link to the running ``up``'s page, signed with that same secret.
"""

from __future__ import annotations

from pathlib import Path

from services.cli.gateway_calls import local_secret
from services.cli.local_system import running_endpoints
from services.common.auth import bearer, mint_token
from services.common.grpc_server import service_channel
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.common.settings import TokenMintSettings

MAX_TTL_S = 7 * 24 * 3600


def development_token(data_dir: Path, settings: TokenMintSettings, accounts: list[str], operator: bool,
                      ttl_s: int) -> str:
    """A token for ``accounts`` (``act_<digits>`` or ``*``), role ``operator`` when asked, valid ``ttl_s`` seconds.

    Raises NoToken (no local secret) or ValueError (bad account id, ttl outside 1 s .. 7 days).
    """
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"--ttl {ttl_s}: use 1 to {MAX_TTL_S} seconds (7 days)")
    return mint_token(local_secret(data_dir, settings), "adfatigue-token", accounts,
                      ["operator"] if operator else [], ttl_s=ttl_s, audience=settings.jwt_audience or None)


def sign_in_link(data_dir: Path, settings: TokenMintSettings, accounts: list[str], operator: bool, ttl_s: int) -> str:
    """A one-time sign-in URL to the page of the ``up`` running from ``data_dir`` (its BFF in endpoints.json), for
    ``accounts`` (``act_<digits>`` or ``*``), role ``operator`` when asked, valid ``ttl_s`` seconds.

    Raises NoToken (no local secret) or ValueError (no running page, ttl outside 1 s .. 7 days)."""
    from services.bff.sign_in import mint_sign_in_link

    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"--ttl {ttl_s}: use 1 to {MAX_TTL_S} seconds (7 days)")
    bff = running_endpoints(data_dir).get("bff")
    if not bff:
        raise ValueError(f"no running page in {data_dir}: start `adfatigue up` (the page is its BFF), or pass "
                         "--data-dir of the folder it runs from")
    return mint_sign_in_link(f"http://{bff}", local_secret(data_dir, settings), "local", accounts,
                             ["operator"] if operator else [], ttl_s=ttl_s)


async def refresh(target: str, token: str, account: str, since: str, until: str, force: bool) -> gw.RefreshResponse:
    async with service_channel(target) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        return await stub.Refresh(gw.RefreshRequest(account_id=account, since=since, until=until, force=force),
                                  timeout=600, metadata=bearer(token))


def refresh_text(reply: gw.RefreshResponse, since: str, until: str, force: bool) -> str:
    """One paragraph: what was fetched, what changed, what it cost, the version now."""
    head = f"act_{reply.account_id} {since} … {until}"
    if not reply.fetched_ranges:
        hint = "" if force else " (--force refetches every day of the range)"
        return f"{head}: nothing was due, no Meta call; version {reply.version}{hint}"
    ranges = ", ".join(f"{r.since} … {r.until}" for r in reply.fetched_ranges)
    return (f"{head}: fetched {ranges}; {reply.rows_changed} row(s) changed, {reply.upstream_calls} Meta call(s); "
            f"version {reply.version}")

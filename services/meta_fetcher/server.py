"""Run the meta_fetcher gRPC server.

    python -m services.meta_fetcher --port 50061 --graph-url http://127.0.0.1:8085 [--api-version v23.0]
        [--host 127.0.0.1]

Only the gateway's service identity may call (bearer JWT checked with
``JWT_HS256_SECRET`` / ``JWT_PUBLIC_KEY`` / ``JWT_JWKS_URL``, ``JWT_AUDIENCE``;
anonymous callers get UNAUTHENTICATED, other roles PERMISSION_DENIED).
The access token comes from ``META_ACCESS_TOKEN`` (default: a sandbox dev
token), never from the command line (it would show in ``ps``). With
``TOKEN_KEYS`` (and ``MONGODB_URI``) set, each account's token comes from the
encrypted vault when one is stored (``services.meta_fetcher.token_vault``,
``token_admin``), and with ``META_APP_ID``/``META_APP_SECRET`` a background
task exchanges vault tokens before they expire (``token_refresh``). Other
knobs: ``services/meta_fetcher/settings.py`` (a bad value exits with status 2 naming it). Prints ``meta_fetcher listening on HOST:PORT``
(flushed) once serving; SIGINT/SIGTERM stop it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from urllib.parse import urlsplit
from typing import AsyncIterator, Mapping

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.common.auth import GATEWAY
from services.common.grpc_server import GrpcHost
from services.common.logs import configure_logging
from services.common.telemetry import setup_telemetry
from services.meta_fetcher import metrics
from services.common.service_callers import ServiceCallers
from services.common.settings import parse_service_args
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2_grpc
from services.common.heap import freeze_startup_heap
from services.meta_fetcher.credentials import Credentials
from services.meta_fetcher.graph_client import GraphClient
from services.meta_fetcher.graph_errors import register_secret
from services.meta_fetcher.pacing import build_pacer
from services.meta_fetcher.provider_registry import ProviderResources, ProviderRouter
from services.meta_fetcher.servicer import SERVICE_NAME, MetaFetcherServicer
from services.meta_fetcher.settings import SANDBOX_DEV_TOKEN, FetcherSettings
from services.meta_fetcher.token_refresh import TokenRefresher
from services.meta_fetcher.token_vault import TokenVault, keyring_from_settings

log = logging.getLogger("services.meta_fetcher")


@contextlib.asynccontextmanager
async def fetcher_server(settings: FetcherSettings, address: str = "127.0.0.1:0",
                         grace_s: float = 1.0, callers: ServiceCallers | None = None
                         ) -> AsyncIterator[tuple[GrpcHost, int]]:
    """Serve MetaFetcher on ``address`` in this process; yields (host, bound port); stops on exit.

    ``callers``: who may call (the process always passes the ``gateway`` identity check; None, for
    in-process tests only, lets anyone in).

    Each account is served by the first provider of ``settings.providers`` that serves it
    (``provider_registry``; a bad ``PROVIDER_CSV`` entry raises ValueError). With ``settings.vault_enabled`` the token vault is opened (a bad
    TOKEN_KEYS raises TokenKeyConfigError, a ValueError) and, when the app id
    and secret are set, the token refresher runs in the background.
    """
    keyring = keyring_from_settings(settings.token_keys, settings.token_active_key) if settings.vault_enabled \
        else None
    pacer = build_pacer(settings)
    client = GraphClient(settings, pacer=pacer)
    mongo = AsyncMongoClient(settings.mongodb_uri, tz_aware=True) if keyring is not None else None
    vault = TokenVault.from_client(mongo, settings.mongodb_db, keyring,
                                   refresh_before_s=settings.token_refresh_before_s) if keyring is not None else None
    refresher_task: asyncio.Task | None = None
    host = GrpcHost(address, [callers] if callers is not None else [])
    providers = ProviderRouter.open(ProviderResources(settings, client, Credentials(settings, vault)))
    meta_fetcher_pb2_grpc.add_MetaFetcherServicer_to_server(MetaFetcherServicer(client, providers), host.server)
    try:
        if vault is not None:
            try:
                await vault.ensure_indexes()
            except PyMongoError as exc:
                log.warning("token vault indexes not created yet (%s); continuing", type(exc).__name__)
            refresher = TokenRefresher(vault, client, settings)
            if refresher.enabled:
                refresher_task = asyncio.create_task(refresher.run_forever(), name="token-refresher")
            log.info("token vault on (%s.tokens, active key %s); refresher %s", settings.mongodb_db,
                     keyring.active, "on" if refresher.enabled else "off (META_APP_ID/META_APP_SECRET unset)")
        port = await host.start([SERVICE_NAME])
        yield host, port
    finally:
        if refresher_task is not None:
            refresher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher_task
        await host.stop(grace=grace_s)
        await providers.aclose()
        await client.aclose()
        await pacer.aclose()
        if mongo is not None:
            await mongo.close()


def _parse_args(argv: list[str] | None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Flags, then ``args.settings`` (FetcherSettings from ``env``, flags winning); exits 2 on a bad value."""
    p = argparse.ArgumentParser(prog="python -m services.meta_fetcher", description="MetaFetcher gRPC server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="gRPC port; 0 picks a free one")
    p.add_argument("--graph-url", dest="graph_url", default=None,
                   help="Graph API base URL, e.g. https://graph.facebook.com or the sandbox's "
                        "http://127.0.0.1:8085 (default: META_GRAPH_URL)")
    p.add_argument("--api-version", default=None, help="Graph API version (default v23.0, or META_API_VERSION)")
    p.add_argument("--budget-calls", type=int, default=None, help="app calls allowed per budget window")
    p.add_argument("--budget-key-prefix", default=None, help="Redis key prefix of the shared budget")
    p.add_argument("--grace-seconds", dest="shutdown_grace_s", type=float, default=None,
                   help="on SIGTERM, how long in-flight Meta calls may finish (META_SHUTDOWN_GRACE_S, 30)")
    args = parse_service_args(p, FetcherSettings, argv, env)
    if "graph_url" not in args.settings.model_fields_set:
        p.error("--graph-url (or META_GRAPH_URL) is required")
    return args


async def _serve(args: argparse.Namespace) -> None:
    settings: FetcherSettings = args.settings
    for secret in settings.secrets:
        register_secret(secret)  # the one redaction filter (services/common/logs.py) hides them from now on
    telemetry = setup_telemetry("meta_fetcher", args.host, settings)
    metrics.observe_budget(settings.budget_calls, settings.budget_window_s)
    host_name = urlsplit(settings.graph_url).hostname or ""
    if settings.access_token == SANDBOX_DEV_TOKEN and not settings.vault_enabled \
            and host_name not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"META_ACCESS_TOKEN is not set: {settings.graph_url} needs a real token "
                         "(or a token vault: TOKEN_KEYS and MONGODB_URI)")
    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    callers = ServiceCallers.from_env({GATEWAY}, "meta_fetcher")  # every FetchInsights spends Meta budget
    async with fetcher_server(settings, address, settings.shutdown_grace_s, callers) as (host, port):
        freeze_startup_heap()  # services/common/heap.py; before the readiness line: no caller waits on it
        print(f"meta_fetcher listening on {args.host}:{port}", flush=True)
        telemetry.announce()
        log.info("meta_fetcher serving %s with Graph %s %s", SERVICE_NAME, settings.graph_url, settings.api_version)
        await host.wait_for_termination_signal()
    log.info("meta_fetcher stopped")
    telemetry.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parse_args(argv)
    configure_logging("meta_fetcher", args.settings)
    try:
        asyncio.run(_serve(args))
    except (OSError, ValueError) as exc:
        print(f"meta_fetcher: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0

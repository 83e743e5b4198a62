"""Running the sandbox: in-process for tests, or as ``python -m services.meta_sandbox``.

In-process (tests)::

    async with sandbox_server([csv_account(path, "act_1")]) as base_url:
        ...  # base_url like "http://127.0.0.1:41234"; Graph calls go to f"{base_url}/v23.0/..."

Command line::

    python -m services.meta_sandbox --port 8085 [--host 127.0.0.1] \
        [--csv FILE --account act_ID]... [--no-synthetic] [--timezone TZ] [--currency CUR] [--app-id ID] \
        [--live-demo [--live-demo-tick-seconds S]]

``--live-demo``: the synthetic account accrues today's delivery every few
seconds and restates a recent day now and then (``services.meta_sandbox.live_demo``).

``SANDBOX_APP_SECRET`` (environment, never argv; ``services/meta_sandbox/settings.py``) sets
the app secret: the token exchange then checks it and every call must carry ``appsecret_proof``.

prints ``meta_sandbox listening on http://HOST:PORT`` once bound (flushed) and
stops cleanly on SIGINT/SIGTERM (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import AsyncIterator, Iterable

from aiohttp import web

from services.meta_sandbox.accounts import CSV_DEFAULT_CURRENCY, CSV_DEFAULT_TIMEZONE, SandboxAccount, csv_account
from services.meta_sandbox.app import STATE, PathOnlyAccessLogger, create_app
from services.meta_sandbox.live_demo import LiveDemo
from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID
from services.meta_sandbox.settings import SandboxSettings
from services.meta_sandbox.usage import UsageModel
from services.common.logs import configure_logging
from services.common.settings import parse_service_args

log = logging.getLogger("services.meta_sandbox")


async def start_app(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on host:port (0 = a free port); returns (runner, base URL). Raises OSError if it cannot bind."""
    runner = web.AppRunner(app, access_log_class=PathOnlyAccessLogger, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{url_host}:{bound_port}"


@contextlib.asynccontextmanager
async def sandbox_server(
    accounts: Iterable[SandboxAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **app_kwargs,
) -> AsyncIterator[str]:
    """Start a sandbox on a free loopback port, yield its base URL, stop it on exit.

    ``app_kwargs`` go to ``create_app`` (``synthetic``, ``tokens``, ``usage``, ...).
    """
    app = create_app(accounts, **app_kwargs)
    runner, base_url = await start_app(app, host, port)
    try:
        yield base_url
    finally:
        await runner.cleanup()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.meta_sandbox",
                                description="Meta Graph API v23.0 sandbox (Ads Insights).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    p.add_argument("--csv", action="append", default=[], metavar="FILE",
                   help="Ads Manager daily export; pair each with --account")
    p.add_argument("--account", action="append", default=[], metavar="act_ID",
                   help="ad account id served for the matching --csv")
    p.add_argument("--no-synthetic", action="store_true", help="do not serve the built-in synthetic account")
    p.add_argument("--live-demo", action="store_true",
                   help="the synthetic account accrues today's delivery and restates a recent day now and then")
    p.add_argument("--live-demo-tick-seconds", type=float, default=5.0, help="seconds between live-demo steps (> 0)")
    p.add_argument("--timezone", default=CSV_DEFAULT_TIMEZONE, help="time zone of the CSV accounts")
    p.add_argument("--currency", default=None,
                   help=f"currency of the CSV accounts (default: the one the export's headers name, else "
                        f"{CSV_DEFAULT_CURRENCY})")
    p.add_argument("--token", action="append", default=None, metavar="TOKEN",
                   help="accepted access token (repeatable); default: any non-empty token")
    p.add_argument("--account-capacity", type=int, default=None,
                   help="calls per hour per account before throttling (default: 600 + 400 x active ads)")
    p.add_argument("--app-capacity", type=int, default=10_000, help="calls per hour for the app")
    p.add_argument("--app-id", default=None, help="the app id the token exchange accepts as client_id")
    p.add_argument("--upgrade-version", action="append", default=[], metavar="OLD=NEW",
                   help="answer OLD with an X-Ad-Api-Version-Warning saying it was upgraded to NEW")
    args = parse_service_args(p, SandboxSettings, argv)  # SANDBOX_APP_SECRET: args.settings
    if len(args.csv) != len(args.account):
        p.error("give one --account act_ID for each --csv FILE")
    for item in args.upgrade_version:
        if "=" not in item:
            p.error(f"--upgrade-version {item!r}: use OLD=NEW, e.g. v23.0=v24.0")
    if args.live_demo_tick_seconds <= 0:
        p.error(f"--live-demo-tick-seconds {args.live_demo_tick_seconds:g}: use a number of seconds > 0")
    return args


async def _serve(args: argparse.Namespace) -> None:
    accounts = [csv_account(path, acc, timezone_name=args.timezone, currency=args.currency)
                for path, acc in zip(args.csv, args.account)]
    app = create_app(
        accounts,
        synthetic=not args.no_synthetic,
        tokens=args.token,
        app_id=args.app_id,
        app_secret=args.settings.app_secret or None,
        version_upgrades=dict(item.split("=", 1) for item in args.upgrade_version),
        usage=UsageModel(app_capacity=args.app_capacity, account_capacity=args.account_capacity),
    )
    demo = None
    if args.live_demo:
        account = app[STATE].accounts.get(SYNTHETIC_ACCOUNT_ID)
        if account is None:
            raise SystemExit("meta_sandbox: --live-demo animates the synthetic account: drop --no-synthetic")
        demo = LiveDemo(account, tick_s=args.live_demo_tick_seconds)
    runner, base_url = await start_app(app, args.host, args.port)
    demo_task = asyncio.create_task(demo.run()) if demo else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"meta_sandbox listening on {base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        if demo_task:
            demo_task.cancel()
        await runner.cleanup()
    log.info("meta_sandbox stopped")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parse_args(argv)
    configure_logging("meta_sandbox")  # the same JSON lines and redaction as the services (it logs tokens' URLs)
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"meta_sandbox: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0

"""``adfatigue up``: the whole system on this machine until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import sys
import time
from collections import deque
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from pathlib import Path

import grpc

from services.cli.gateway_calls import fatigue, rpc_failure_text
from services.cli.local_system import LocalSystem, SystemConfig
from services.cli.progress import Steps, waiting
from services.cli.report import render_table, report_lines
from services.cli.terminal import invoked_as, terminal_console
from services.cli.web_build import PageBuildError, ensure_page_built
from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.ads_manager_csv import CsvFormatError, default_account_id, load_csv
from services.common.auth import mint_token
from services.common.settings import MetaGraphSettings
from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID, SYNTHETIC_TIMEZONE


def csv_accounts(parser, csvs: list[str], accounts: list[str]) -> list[tuple[Path, str, date, date]]:
    """(file, account id, first day, last day) per ``--csv``; exits with a usage error naming the problem."""
    if len(accounts) > len(csvs):
        parser.error("each --account must follow a --csv")
    out, seen = [], set()
    for i, path in enumerate(csvs):
        p = Path(path)
        if not p.exists():
            parser.error(f"--csv {path}: no such file")
        if not p.is_file():
            parser.error(f"--csv {path}: not a file")
        try:
            account = normalise_account_id(accounts[i]) if i < len(accounts) else default_account_id(p)
            rows = load_csv(p, account)
        except (InvalidAccountId, CsvFormatError) as exc:
            parser.error(f"--csv {path}: {exc}")
        if not rows:
            parser.error(f"--csv {path}: no rows")
        if account in seen:
            parser.error(f"--account act_{account} is given twice: use one account id per file")
        seen.add(account)
        out.append((p.resolve(), account, rows[0].date_start, max(r.date_start for r in rows)))
    return out


class AlreadyRunning(RuntimeError):
    pass


def hold_data_dir(data_dir: Path):
    """An exclusive lock on ``data_dir`` for as long as the returned file stays open."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "up.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(f"adfatigue is already running from {data_dir} (pid {pid}): stop it with Ctrl-C "
                             "there, or start another one beside it with --data-dir DIR --gateway-port 0 "
                             "--bff-port 0") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def install_stop_handlers() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop ``up``, whatever dispositions it inherited.

    A shell starts background jobs with SIGINT ignored, and Python then leaves
    it ignored; ``up`` must still stop (and stop its services) on ``kill -INT``.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def real_graph_url(settings: MetaGraphSettings) -> str | None:
    """The Graph API to call instead of a sandbox: ``META_GRAPH_URL`` when it and ``META_ACCESS_TOKEN`` are
    both set (the README's way to point ``up`` at real Meta); None starts the sandbox."""
    return settings.graph_url if settings.is_set("access_token") and settings.is_set("graph_url") else None


def run_up(parser, args, data_dir: Path) -> int:
    if args.interval_seconds is None:
        args.interval_seconds = 10.0 if args.live_demo else 600.0
    if args.interval_seconds <= 0:
        parser.error("--interval-seconds must be > 0")
    if args.live_demo and args.no_synthetic:
        parser.error("--live-demo animates the synthetic account: drop --no-synthetic")
    csvs = csv_accounts(parser, args.csv or [], args.account or [])
    try:
        lock = hold_data_dir(data_dir)
    except AlreadyRunning as exc:
        print(f"adfatigue up: {exc}", file=sys.stderr)
        return 1
    config = SystemConfig(
        data_dir=data_dir, csv_accounts=[(p, a) for p, a, _, _ in csvs], synthetic=not args.no_synthetic,
        gateway_port=args.gateway_port, scheduler_interval_s=args.interval_seconds,
        bff_port=None if args.no_page else args.bff_port,
        mongodb_uri=args.settings.mongodb_uri,
        graph_url=real_graph_url(args.settings),
        live_demo=args.live_demo,
    )
    system = LocalSystem(config)
    install_stop_handlers()
    status = 0
    try:
        if not args.no_page:
            print("building the page (web/: npm ci, npm run build; only when web/ changed) ...", flush=True)
            ensure_page_built()
        console = terminal_console()
        with Steps(console, "starting", len(system.planned()), "parts") as steps:
            system.on_step = steps.step
            system.start()
        _announce(system, csvs)
        if args.exit_after is not None:
            time.sleep(args.exit_after)
        else:
            status = supervise(system)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except (RuntimeError, PageBuildError) as exc:
        print(f"adfatigue up failed: {_failure_text(str(exc))}", file=sys.stderr)
        status = 1
    finally:
        # a second Ctrl-C (or SIGTERM) must not cut the shutdown short and leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        system.stop()
        lock.close()
    print("stopped", flush=True)
    return status


def _prime_live_demo(system: LocalSystem, gateway: str) -> None:
    """Read the synthetic account's last 28 days through today once, so the scheduler keeps them current."""
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(SYNTHETIC_TIMEZONE)).date()
    since = (today - timedelta(days=27)).isoformat()
    account = f"act_{SYNTHETIC_ACCOUNT_ID}"
    try:
        token = mint_token(system.jwt_secret, "adfatigue-up", ["*"], ttl_s=600)
        asyncio.run(fatigue(gateway, token, SYNTHETIC_ACCOUNT_ID, since, today.isoformat()))
    except grpc.RpcError as exc:
        print(f"  live demo: first read failed: {exc.code().name}: {exc.details()}")
    print(f"\nlive demo: {account} accrues today's delivery every few seconds and restates a recent day now and "
          f"then; watch it with:\n  {invoked_as()} watch --account {account} --since {since} --until {today}")


#: A service that exits is started again on its port, at most RESTARTS_MAX times in RESTART_WINDOW_S
#: (systemd's Restart=on-failure with StartLimitBurst / StartLimitIntervalSec); beyond that `up` stops.
RESTARTS_MAX = 5
RESTART_WINDOW_S = 300.0


def supervise(system: LocalSystem, poll_s: float = 0.5) -> int:
    """Watch the services until Ctrl-C / SIGTERM (KeyboardInterrupt): one that exits is started again on its
    port (its log: ``logs/<name>.restart.log``); returns 1 once restarts fail or come too often."""
    restarts: deque[float] = deque()
    while True:
        time.sleep(poll_s)
        dead = [name for name, proc in system.processes.items() if not proc.alive()]
        if not dead:
            continue
        now = time.monotonic()
        while restarts and now - restarts[0] > RESTART_WINDOW_S:
            restarts.popleft()
        for name in dead:
            code = system.processes[name].proc.returncode
            if len(restarts) >= RESTARTS_MAX:
                print(f"stopping: {name} exited (code {code}), and {RESTARTS_MAX} restarts in the last "
                      f"{RESTART_WINDOW_S / 60:.0f} min were not enough (see {system.logs})", file=sys.stderr)
                return 1
            print(f"{name} exited (code {code}); starting it again (see {system.logs / (name + '.log')})",
                  file=sys.stderr, flush=True)
            try:
                proc = system.restart(name)
            except RuntimeError as exc:
                print(f"stopping: {name} did not start again: {_failure_text(str(exc))}", file=sys.stderr)
                return 1
            restarts.append(now)
            print(f"{name} is back on {proc.address}", flush=True)


def _announce(system: LocalSystem, csvs) -> None:
    print("\nendpoints:")
    for name, address in system.endpoints().items():
        print(f"  {name:<15} {address}")
    for name, url in system.metrics_urls().items():
        print(f"  {name + ' metrics':<15} {url}")
    print(f"  logs            {system.logs} (JSON lines, rotated daily, 30 days kept)")
    gateway = system.processes["cache_gateway"].address
    latest = date.today()
    for _, account, first, last in csvs:
        last = min(last, latest - timedelta(days=1))
        if last < first:
            print(f"\nact_{account}: every row is dated in the future; nothing to report yet")
            continue
        print(f"\nfatigue of act_{account}, {first}..{last} (fetched from Meta only where not cached yet):",
              flush=True)
        try:
            token = mint_token(system.jwt_secret, "adfatigue-up", ["*"], ttl_s=600)
            with waiting(terminal_console(), f"fetching act_{account} {first} … {last} (from Meta where not cached)"):
                reply = asyncio.run(fatigue(gateway, token, account, first.isoformat(), last.isoformat()))
            render_table(reply, report_lines(reply), first.isoformat(), last.isoformat(), terminal_console())
        except grpc.RpcError as exc:
            print(f"  report failed: {rpc_failure_text(exc, gateway)}")
    if system.config.live_demo:
        _prime_live_demo(system, gateway)
    # the commands find this system through its data folder: say it unless it is the default one
    here = "" if system.config.data_dir.resolve() == Path(".adfatigue").resolve() else \
        f" --data-dir {system.config.data_dir}"
    if csvs:
        _, account, first, last = csvs[0]
        hint = (f"{invoked_as()} report{here} --account act_{account} --since {first} "
                f"--until {min(last, latest - timedelta(days=1))}")
    else:
        hint = f"{invoked_as()} report{here} --account act_900000000001"
    if system.page_url:
        query = (f"?account=act_{csvs[0][1]}&since={csvs[0][2]}&until={min(csvs[0][3], latest - timedelta(days=1))}"
                 if csvs else "")
        link = system.sign_in_link(next_path="/ad-fatigue" + query, ttl_s=24 * 3600)
        print(f"\nthe page: {system.page_url}{query}")
        print(f"  sign in with this one-time link (valid 24 h, works once; `adfatigue sign-in` prints another):\n  {link}")
    print(f"\nrunning; try:  {hint}")
    print("press Ctrl-C to stop", flush=True)


def _failure_text(text: str) -> str:
    """A service's start-up failure for a person: a taken port is said in one line with what to do (the
    service's traceback stays in its log); anything else as the launcher reported it."""
    # the exception's message, not the traceback's echo of the source line that raised it (its f-string is
    # unformatted, "cannot listen on {self.address}: ...", and matched first): no braces, no closing quote
    found = re.findall(r"(cannot listen on [^\s{}]+: (?:the port is in use|Address already in use)[^\n\";]*)", text)
    taken = found[-1] if found else None
    if taken:
        service = text.split(" exited", 1)[0]
        return (f"{service}: {taken}. Another `adfatigue up` (or another program) holds the port: stop it, "
                "or start this one beside it with --gateway-port 0 --bff-port 0 (free ports) and its own --data-dir")
    return text

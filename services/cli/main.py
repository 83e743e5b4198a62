"""The ``adfatigue`` command: run the system locally and read from it.

    adfatigue up [--csv FILE [--account act_ID]]... [--live-demo]   start everything; Ctrl-C stops it
    adfatigue report --account act_ID [--since D --until D] [--format table|json|csv|markdown]
                     [--level L[,L]] [--sort level|score|spend|days_to_critical|name]
    adfatigue watch --account act_ID [--since D --until D]          live changes, with a heartbeat
    adfatigue refresh --account act_ID [--since D --until D] [--force]   fetch due days now (operator)
    adfatigue token --account act_ID [--operator] [--ttl S]          a development token for grpcurl
    adfatigue status [--json] [--prometheus URL]                    the scheduler's view and the alerts that would fire
    adfatigue stats [--json] [--metrics NAME=URL]...                hit rate, apiCallReduction, latency per tier, ...
    adfatigue backup --out DIR                                      every collection at one consistent point
    adfatigue restore DIR [--replace]                               checked first; refuses a damaged archive

Global options (``--data-dir``) go before or after the subcommand.

The CLI finds the running system in ``--data-dir`` (``./.adfatigue``, or
``ADFATIGUE_HOME``): its endpoints and its development token secret.
``ADFATIGUE_GATEWAY_ADDR`` / ``--gateway`` point it elsewhere, and
``ADFATIGUE_TOKEN`` supplies a bearer token for a system you did not start.
Every variable is a field of ``services/cli/settings.py`` (``CliSettings``),
read once at start; a bad value stops the command naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import grpc
import httpx
from google.protobuf.json_format import MessageToJson

from services.cli import backup_command
from services.cli.gateway_calls import NoToken, cli_token, fatigue, rpc_failure_text, unreachable_hint
from services.cli.local_system import gateway_address, running_endpoints
from services.cli.system_metrics import alerts, collect, render_alerts
from services.cli.system_metrics import render as render_system_metrics
from services.cli.settings import CliSettings
from services.cli.report import (
    FORMATS, LEVELS, SORTS, empty_hint, render_csv, render_json, render_markdown, render_table, report_lines,
)
from services.cli.operator_commands import development_token, refresh, refresh_text, sign_in_link
from services.cli.terminal import terminal_console
from services.cli.up_command import run_up
from services.cli.watch_command import run_watch
from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.auth import bearer
from services.common.grpc_server import service_channel
from services.common.settings import parse_service_args
from services.common.pb.adfatigue.v1 import scheduler_pb2, scheduler_pb2_grpc
from services.scheduler.status_text import render_status


def _data_dir(args) -> Path:
    return Path(args.settings.data_dir).resolve()


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535; 0 = any free port)")
    return int(text)


def _account(parser, text: str) -> str:
    try:
        return normalise_account_id(text)
    except InvalidAccountId as exc:
        parser.error(str(exc))


def _range(parser, args, default_days: int) -> tuple[str, str]:
    until = args.until if args.until is not None else (date.today() - timedelta(days=1)).isoformat()
    if args.since is not None:
        since = args.since
    else:
        try:
            since = (date.fromisoformat(until) - timedelta(days=default_days - 1)).isoformat()
        except ValueError:
            parser.error(f"--until {until!r} is not a date: use YYYY-MM-DD")
    if not since or not until:
        parser.error("--since and --until must not be empty: use YYYY-MM-DD")
    return since, until


def _token(parser, args) -> str:
    try:
        return cli_token(_data_dir(args), args.settings)
    except NoToken as exc:
        parser.error(str(exc))


def _rpc_failed(exc: grpc.RpcError, target: str, **hint) -> int:
    print(rpc_failure_text(exc, target, **hint), file=sys.stderr)
    return 2


def cmd_backup(parser, args) -> int:
    return backup_command.cmd_backup(parser, args, _data_dir(args))


def cmd_restore(parser, args) -> int:
    return backup_command.cmd_restore(parser, args, _data_dir(args))


def cmd_up(parser, args) -> int:
    return run_up(parser, args, _data_dir(args))


def _json_error(code: grpc.StatusCode, message: str) -> None:
    """An error as one JSON object on stderr: gRPC status code (number and name) and message."""
    print(json.dumps({"error": {"code": code.value[0], "status": code.name, "message": message}}), file=sys.stderr)


def _levels(parser, text: str | None) -> list[str]:
    if not text:
        return []
    levels = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = [v for v in levels if v not in LEVELS]
    if unknown:
        parser.error(f"--level {','.join(unknown)}: not a level; use one or more of {', '.join(LEVELS)} "
                     "separated by commas")
    return levels


def cmd_report(parser, args) -> int:
    fmt = "json" if args.json else args.format
    if fmt == "json":  # usage errors too come out as JSON objects (INVALID_ARGUMENT)
        def json_usage_error(message: str):
            _json_error(grpc.StatusCode.INVALID_ARGUMENT, message)
            sys.exit(2)
        parser.error = json_usage_error
    account = _account(parser, args.account)
    since, until = _range(parser, args, 90)
    levels = _levels(parser, args.level)
    target = gateway_address(_data_dir(args), args.settings)
    token = _token(parser, args)
    console = terminal_console()
    try:
        if fmt == "table" and console.is_terminal:  # a first fetch of a long range from Meta takes a while
            with console.status(f"reading act_{account} {since} … {until} (from Meta where not cached yet) ..."):
                reply = asyncio.run(fatigue(target, token, account, since, until))
        else:
            reply = asyncio.run(fatigue(target, token, account, since, until))
    except grpc.RpcError as exc:
        if fmt == "json":
            _json_error(exc.code(), unreachable_hint(exc, target).strip() or exc.details() or "")
            return 2
        return _rpc_failed(exc, target)
    lines = report_lines(reply, levels, args.sort)
    if fmt == "table":
        render_table(reply, lines, since, until, console)
    elif fmt == "markdown":
        print(render_markdown(reply, lines, since, until))
    elif fmt == "csv":
        sys.stdout.write(render_csv(reply, lines))
    else:
        print(render_json(reply, lines))
    if not reply.results and fmt in ("json", "csv"):
        print(empty_hint(reply, since, until), file=sys.stderr)
    return 0


def cmd_watch(parser, args) -> int:
    """Print every change of the range as it arrives, with a heartbeat; reconnect with the last version seen."""
    account = _account(parser, args.account)
    since, until = _range(parser, args, 28)
    if args.heartbeat_seconds <= 0:
        parser.error("--heartbeat-seconds must be > 0")
    target = gateway_address(_data_dir(args), args.settings)
    token = _token(parser, args)
    try:
        return asyncio.run(run_watch(target, token, account, since, until, terminal_console(), args.heartbeat_seconds))
    except KeyboardInterrupt:
        return 0


def cmd_refresh(parser, args) -> int:
    """Refresh the due days of a range now (every day with --force); operators only."""
    account = _account(parser, args.account)
    since, until = _range(parser, args, 28)
    target = gateway_address(_data_dir(args), args.settings)
    token = _token(parser, args)
    try:
        reply = asyncio.run(refresh(target, token, account, since, until, args.force))
    except grpc.RpcError as exc:
        return _rpc_failed(exc, target)
    print(refresh_text(reply, since, until, args.force))
    return 0


def cmd_token(parser, args) -> int:
    """Print a development bearer token (and nothing else, for $(adfatigue token ...))."""
    accounts = []
    for text in args.account:
        accounts.append("*" if text == "*" else "act_" + _account(parser, text))
    try:
        print(development_token(_data_dir(args), args.settings, accounts, args.operator, args.ttl))
    except (NoToken, ValueError) as exc:
        parser.error(str(exc))
    return 0


def cmd_sign_in(parser, args) -> int:
    """Print a new one-time sign-in link to the running ``up``'s page (and nothing else; see ``sign_in_link``)."""
    accounts = ["*" if text == "*" else "act_" + _account(parser, text) for text in (args.account or ["*"])]
    try:
        print(sign_in_link(_data_dir(args), args.settings, accounts, not args.no_operator, args.ttl))
    except (NoToken, ValueError) as exc:
        parser.error(str(exc))
    return 0


def _metrics_urls(parser, args, required: bool = True) -> dict[str, str]:
    """``--metrics NAME=URL`` pairs, else the running ``up``'s (endpoints.json)."""
    if args.metrics:
        urls = {}
        for item in args.metrics:
            name, sep, url = item.partition("=")
            if not sep or not url.startswith(("http://", "https://")):
                parser.error(f"--metrics {item!r}: use NAME=URL, e.g. cache_gateway=http://10.0.0.7:9464/metrics")
            urls[name] = url
        return urls
    urls = running_endpoints(_data_dir(args)).get("metrics", {})
    if not urls and required:
        parser.error(f"no running system in {_data_dir(args)} (start `adfatigue up`, or pass --metrics NAME=URL)")
    return urls


def cmd_stats(parser, args) -> int:
    metrics = collect(_metrics_urls(parser, args))
    if args.json:
        print(json.dumps({**metrics.to_dict(), "alerts": [vars(a) for a in alerts(metrics)]}, indent=2))
    else:
        print(render_system_metrics(metrics))
    return 0 if all(metrics.services_up.values()) else 1


def _alert_lines(parser, args) -> tuple[list[dict], str]:
    """The alerts (as dicts) and their text: from Prometheus with ``--prometheus``, else evaluated on /metrics."""
    prometheus = args.settings.prometheus_url
    if prometheus:
        try:
            reply = httpx.get(f"{prometheus.rstrip('/')}/api/v1/alerts", timeout=10).json()
        except (httpx.HTTPError, ValueError) as exc:
            return [], f"alerts: Prometheus at {prometheus} did not answer ({type(exc).__name__})"
        found = [{"name": a["labels"].get("alertname", ""), "severity": a["labels"].get("severity", ""),
                  "firing": a.get("state") == "firing", "detail": a.get("annotations", {}).get("summary", "")}
                 for a in reply.get("data", {}).get("alerts", [])]
        text = [f"alerts (Prometheus {prometheus}): {sum(a['firing'] for a in found)} firing"]
        text += [f"  {'FIRING' if a['firing'] else 'pending':<7} {a['severity']:<9} {a['name']:<26} {a['detail']}"
                 for a in found]
        return found, "\n".join(text)
    urls = _metrics_urls(parser, args, required=False)
    if not urls:
        return [], "alerts: no metrics endpoints known (pass --metrics NAME=URL or --prometheus URL)"
    items = alerts(collect(urls))
    return [vars(a) for a in items], render_alerts(items)


def cmd_status(parser, args) -> int:
    data_dir = _data_dir(args)
    target = args.scheduler
    if not target:
        target = running_endpoints(data_dir).get("scheduler", "127.0.0.1:50054")
    token = _token(parser, args)

    async def call():
        async with service_channel(target) as channel:
            return await scheduler_pb2_grpc.SchedulerStub(channel).GetStatus(
                scheduler_pb2.GetStatusRequest(), timeout=10, metadata=bearer(token))
    try:
        reply = asyncio.run(call())
    except grpc.RpcError as exc:
        code = _rpc_failed(exc, target, flag="--scheduler", variable="")
        print(_alert_lines(parser, args)[1], file=sys.stderr)
        return code
    found, text = _alert_lines(parser, args)
    if args.json:
        # the proto's own field names (snake_case, as stats --json and the README use), not protobuf's lowerCamel
        view = json.loads(MessageToJson(reply, preserving_proto_field_name=True))
        print(json.dumps({**view, "alerts": found}, indent=2))
    else:
        print(render_status(reply) + "\n\n" + text)
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    # Global options: accepted before or after the subcommand. SUPPRESS keeps a subcommand's parser from
    # overwriting a value given before it with its own default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="where the local store, logs and endpoints live (default ./.adfatigue or ADFATIGUE_HOME)")
    parser = argparse.ArgumentParser(prog="adfatigue", description="Ad-fatigue insights platform", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, parents=[common])
    up = add("up", help="start the whole system locally (embedded defaults)")
    up.add_argument("--csv", action="append", help="an Ads Manager daily CSV export to serve from the Meta sandbox")
    up.add_argument("--account", action="append", help="ad account id for the preceding --csv (act_<digits>)")
    up.add_argument("--no-synthetic", action="store_true", help="do not serve the built-in synthetic account")
    up.add_argument("--gateway-port", type=_port, default=50051, help="CacheGateway port (0 = any free port)")
    up.add_argument("--bff-port", type=_port, default=8080, help="port of the /ad-fatigue page (0 = any free port)")
    up.add_argument("--no-page", action="store_true", help="do not build the page nor start the BFF")
    up.add_argument("--interval-seconds", type=float, default=None,
                    help="scheduler cycle interval (> 0; default 600, 10 with --live-demo)")
    up.add_argument("--live-demo", action="store_true",
                    help="the synthetic account accrues today's delivery every few seconds and restates a recent "
                         "day now and then, so `watch` and the page show changes within a minute")
    up.add_argument("--exit-after", type=float, help=argparse.SUPPRESS)
    rep = add("report", help="fatigue of every ad of an account")
    rep.add_argument("--account", required=True, help="act_<digits>")
    rep.add_argument("--since", help="YYYY-MM-DD (default: 90 days ending --until)")
    rep.add_argument("--until", help="YYYY-MM-DD (default: yesterday)")
    rep.add_argument("--format", choices=FORMATS, default="table",
                     help="table (default; colour on a terminal unless NO_COLOR is set), json (protobuf JSON "
                          "mapping, proto field names), csv (for spreadsheets) or markdown")
    rep.add_argument("--json", action="store_true", help="the same as --format json")
    rep.add_argument("--level", help=f"only these levels, comma-separated ({', '.join(LEVELS)})")
    rep.add_argument("--sort", choices=SORTS, default="level",
                     help="level (default: worst first, then score), score, spend, days_to_critical or name")
    rep.add_argument("--gateway", dest="gateway_addr",
                     help="host:port of the CacheGateway (default: ADFATIGUE_GATEWAY_ADDR, or the running `up`)")
    wt = add("watch", help="print changes of an account's insights as they happen")
    wt.add_argument("--account", required=True, help="act_<digits>")
    wt.add_argument("--since", help="YYYY-MM-DD (default: 28 days ending --until)")
    wt.add_argument("--until", help="YYYY-MM-DD (default: yesterday)")
    wt.add_argument("--gateway", dest="gateway_addr",
                     help="host:port of the CacheGateway (default: ADFATIGUE_GATEWAY_ADDR, or the running `up`)")
    wt.add_argument("--heartbeat-seconds", type=float, default=30.0,
                    help="off a terminal: seconds between 'still waiting' lines (default 30)")
    rf = add("refresh", help="fetch the due days of a range now (every day with --force); operator")
    rf.add_argument("--account", required=True, help="act_<digits>")
    rf.add_argument("--since", help="YYYY-MM-DD (default: 28 days ending --until)")
    rf.add_argument("--until", help="YYYY-MM-DD (default: yesterday)")
    rf.add_argument("--force", action="store_true", help="refetch every day of the range, due or not")
    rf.add_argument("--gateway", dest="gateway_addr",
                     help="host:port of the CacheGateway (default: ADFATIGUE_GATEWAY_ADDR, or the running `up`)")
    tk = add("token", help="print a development bearer token for grpcurl or another client")
    tk.add_argument("--account", required=True, action="append",
                    help="act_<digits> the token may read (repeat for more; * = every account)")
    tk.add_argument("--operator", action="store_true", help="add the operator role (forced refreshes, RunNow)")
    tk.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600, at most 7 days)")
    si = add("sign-in", help="print a new one-time sign-in link to the running `up`'s page")
    si.add_argument("--account", action="append",
                    help="act_<digits> the session may read (repeat for more; default * = every account)")
    si.add_argument("--no-operator", action="store_true", help="without the operator role")
    si.add_argument("--ttl", type=int, default=86400, help="seconds the link stays valid (default 86400 = 24 h)")
    st = add("status", help="the scheduler's status")
    st.add_argument("--scheduler", help="host:port of the Scheduler (default: the running `up`)")
    st.add_argument("--json", action="store_true")
    st.add_argument("--prometheus", dest="prometheus_url",
                    help="read the firing alerts from this Prometheus (default PROMETHEUS_URL; unset: evaluate the "
                         "alert thresholds on the services' /metrics)")
    st.add_argument("--metrics", action="append", metavar="NAME=URL",
                    help="a service's /metrics URL (repeat; default: the running `up`)")
    sm = add("stats", help="hit rate, apiCallReduction, p50/p95/p99 per tier, memory, error rate")
    sm.add_argument("--json", action="store_true", help="one JSON object (numbers as ratios, ms, bytes)")
    sm.add_argument("--metrics", action="append", metavar="NAME=URL",
                    help="a service's /metrics URL (repeat; default: the running `up`)")
    return parser, {"up": up, "report": rep, "watch": wt, "refresh": rf, "token": tk, "sign-in": si, "status": st,
                    "stats": sm,
                    **backup_command.add_parsers(add)}


def main(argv: list[str] | None = None) -> None:
    parser, commands = build_parser()
    args = parse_service_args(parser, CliSettings, argv)  # args.settings; a bad variable exits with status 2
    handler = {"up": cmd_up, "report": cmd_report, "watch": cmd_watch, "refresh": cmd_refresh, "token": cmd_token,
               "sign-in": cmd_sign_in, "status": cmd_status, "stats": cmd_stats, "backup": cmd_backup,
               "restore": cmd_restore}[args.command]
    try:
        code = handler(commands[args.command], args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (``adfatigue report --format json | head``): stop quietly, as Unix tools do. Python's
        # recipe (docs.python.org/3/library/signal.html#note-on-sigpipe): point stdout at devnull so the
        # interpreter's final flush cannot raise again; 141 = 128 + SIGPIPE, the shell's status for it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    sys.exit(code)


if __name__ == "__main__":
    main()

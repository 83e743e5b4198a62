"""The ``adfatigue`` command: run the system locally and read from it.

    adfatigue up [--csv FILE [--account act_ID]]...   start everything; Ctrl-C stops it
    adfatigue report --account act_ID [--since D --until D] [--json]
    adfatigue watch --account act_ID [--since D --until D]   live changes
    adfatigue status                                  the scheduler's view
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import grpc

from services.cli.local_system import LocalSystem, SystemConfig, gateway_address
from services.cli.report import render_json, render_table
from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.auth import bearer, mint_token
from services.common.ads_manager_csv import CsvFormatError, default_account_id, load_csv
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.common.pb.adfatigue.v1 import scheduler_pb2, scheduler_pb2_grpc
from google.protobuf.json_format import MessageToJson


def _data_dir(args) -> Path:
    return Path(args.data_dir or os.environ.get("ADFATIGUE_HOME", ".adfatigue")).resolve()


def _csv_accounts(parser, csvs: list[str], accounts: list[str]) -> list[tuple[Path, str, date, date]]:
    if len(accounts) > len(csvs):
        parser.error("each --account must follow a --csv")
    out = []
    for i, path in enumerate(csvs):
        p = Path(path)
        if not p.is_file():
            parser.error(f"--csv {path}: no such file")
        try:
            account = normalise_account_id(accounts[i]) if i < len(accounts) else default_account_id(p)
            rows = load_csv(p, account)
        except (InvalidAccountId, CsvFormatError) as exc:
            parser.error(f"--csv {path}: {exc}")
        if not rows:
            parser.error(f"--csv {path}: no rows")
        out.append((p.resolve(), account, rows[0].date_start, max(r.date_start for r in rows)))
    return out


def _token(parser, data_dir: Path) -> str:
    """``ADFATIGUE_TOKEN``, or a development token minted from the local stack's secret."""
    if os.environ.get("ADFATIGUE_TOKEN"):
        return os.environ["ADFATIGUE_TOKEN"]
    secret = os.environ.get("JWT_HS256_SECRET")
    path = data_dir / "dev-jwt-secret"
    if not secret and path.exists():
        secret = path.read_text().strip()
    if not secret:
        parser.error(f"no bearer token: set ADFATIGUE_TOKEN, or run from the folder where `adfatigue up` runs ({path} not found)")
    return mint_token(secret, "adfatigue-cli", ["*"], ["operator"], ttl_s=600)


async def _fatigue(target: str, token: str, account: str, since: str, until: str) -> gw.GetFatigueResponse:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        return await stub.GetFatigue(gw.GetFatigueRequest(account_id=account, since=since, until=until),
                                     timeout=300, metadata=bearer(token))


def cmd_up(parser, args) -> int:
    csvs = _csv_accounts(parser, args.csv or [], args.account or [])
    config = SystemConfig(
        data_dir=_data_dir(args), csv_accounts=[(p, a) for p, a, _, _ in csvs], synthetic=not args.no_synthetic,
        gateway_port=args.gateway_port, scheduler_interval_s=args.interval_seconds,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        graph_url=os.environ.get("META_GRAPH_URL") if os.environ.get("META_ACCESS_TOKEN") else None,
    )
    system = LocalSystem(config)
    print("starting: embedded store, Meta sandbox, meta_fetcher, fatigue_engine, cache_gateway, scheduler ...",
          flush=True)
    try:
        system.start()
    except RuntimeError as exc:
        print(f"adfatigue up failed: {exc}", file=sys.stderr)
        return 1
    try:
        print("\nendpoints:")
        for name, address in system.endpoints().items():
            print(f"  {name:<15} {address}")
        print(f"  logs            {system.logs}")
        gateway = system.processes["cache_gateway"].address
        for _, account, first, last in csvs:
            print(f"\nfatigue of act_{account}, {first}..{last} (first call fills the cache from Meta):", flush=True)
            try:
                token = mint_token(system.jwt_secret, "adfatigue-up", ["*"], ttl_s=600)
                reply = asyncio.run(_fatigue(gateway, token, account, first.isoformat(), last.isoformat()))
                print(render_table(reply))
            except grpc.RpcError as exc:
                print(f"  report failed: {exc.code().name}: {exc.details()}")
        example = csvs[0][1] if csvs else "900000000001"
        print(f"\nrunning; try:  adfatigue report --account act_{example}"
              + (f" --since {csvs[0][2]} --until {csvs[0][3]}" if csvs else ""))
        print("press Ctrl-C to stop", flush=True)
        if args.exit_after is not None:
            time.sleep(args.exit_after)
        else:
            while all(p.alive() for p in system.processes.values()):
                time.sleep(0.5)
            dead = [n for n, p in system.processes.items() if not p.alive()]
            print(f"stopping: {', '.join(dead)} exited (see {system.logs})", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        system.stop()
    print("stopped", flush=True)
    return 0


def cmd_report(parser, args) -> int:
    try:
        account = normalise_account_id(args.account)
    except InvalidAccountId as exc:
        parser.error(str(exc))
    until = args.until or (date.today() - timedelta(days=1)).isoformat()
    since = args.since or (date.fromisoformat(until) - timedelta(days=89)).isoformat()
    target = gateway_address(_data_dir(args), args.gateway)
    token = _token(parser, _data_dir(args))
    try:
        reply = asyncio.run(_fatigue(target, token, account, since, until))
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    print(render_json(reply) if args.json else render_table(reply))
    return 0


def cmd_watch(parser, args) -> int:
    """Print every change of the account's range as it arrives; reconnects with the last version seen."""
    try:
        account = normalise_account_id(args.account)
    except InvalidAccountId as exc:
        parser.error(str(exc))
    until = args.until or (date.today() - timedelta(days=1)).isoformat()
    since = args.since or (date.fromisoformat(until) - timedelta(days=27)).isoformat()
    target = gateway_address(_data_dir(args), args.gateway)
    token = _token(parser, _data_dir(args))
    kinds = {v.number: v.name for v in gw.SubscribeEvent.Kind.DESCRIPTOR.values}

    async def watch() -> int:
        last: int | None = None
        while True:
            request = gw.SubscribeRequest(account_id=account, since=since, until=until)
            if last is not None:
                request.from_version = last
            try:
                async with grpc.aio.insecure_channel(target) as channel:
                    stream = cache_gateway_pb2_grpc.CacheGatewayStub(channel).Subscribe(request, metadata=bearer(token))
                    async for event in stream:
                        last = event.version
                        days = sorted({r.date_start for r in event.rows})
                        span = f"{days[0]}..{days[-1]}" if days else "-"
                        print(f"{kinds[event.kind]:<8} version {event.version:<6} rows {len(event.rows):<5} "
                              f"removed {len(event.removed):<3} days {span}", flush=True)
                    return 0
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                    return 2
                print(f"stream ended ({exc.details()}); reconnecting from version {last}", file=sys.stderr)
                await asyncio.sleep(1)
    try:
        return asyncio.run(watch())
    except KeyboardInterrupt:
        return 0


def cmd_status(parser, args) -> int:
    data_dir = _data_dir(args)
    target = args.scheduler
    if not target:
        import json
        endpoints = data_dir / "endpoints.json"
        target = json.loads(endpoints.read_text()).get("scheduler") if endpoints.exists() else "127.0.0.1:50054"

    token = _token(parser, data_dir)

    async def call():
        async with grpc.aio.insecure_channel(target) as channel:
            return await scheduler_pb2_grpc.SchedulerStub(channel).GetStatus(
                scheduler_pb2.GetStatusRequest(), timeout=10, metadata=bearer(token))
    try:
        print(MessageToJson(asyncio.run(call())))
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adfatigue", description="Ad-fatigue insights platform")
    parser.add_argument("--data-dir", help="where the local store, logs and endpoints live (default ./.adfatigue)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole system locally (embedded defaults)")
    up.add_argument("--csv", action="append", help="an Ads Manager daily CSV export to serve from the Meta sandbox")
    up.add_argument("--account", action="append", help="ad account id for the preceding --csv (act_<digits>)")
    up.add_argument("--no-synthetic", action="store_true", help="do not serve the built-in synthetic account")
    up.add_argument("--gateway-port", type=int, default=50051, help="CacheGateway port (0 = any free port)")
    up.add_argument("--interval-seconds", type=float, default=600.0, help="scheduler cycle interval")
    up.add_argument("--exit-after", type=float, help=argparse.SUPPRESS)
    rep = sub.add_parser("report", help="fatigue of every ad of an account")
    rep.add_argument("--account", required=True, help="act_<digits>")
    rep.add_argument("--since", help="YYYY-MM-DD (default: 90 days before --until)")
    rep.add_argument("--until", help="YYYY-MM-DD (default: yesterday)")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--gateway", help="host:port of the CacheGateway (default: the running `up`)")
    wt = sub.add_parser("watch", help="print changes of an account's insights as they happen")
    wt.add_argument("--account", required=True, help="act_<digits>")
    wt.add_argument("--since", help="YYYY-MM-DD (default: 27 days before --until)")
    wt.add_argument("--until", help="YYYY-MM-DD (default: yesterday)")
    wt.add_argument("--gateway", help="host:port of the CacheGateway (default: the running `up`)")
    st = sub.add_parser("status", help="the scheduler's status")
    st.add_argument("--scheduler", help="host:port of the Scheduler (default: the running `up`)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"up": cmd_up, "report": cmd_report, "watch": cmd_watch, "status": cmd_status}[args.command]
    sys.exit(handler(parser, args))


if __name__ == "__main__":
    main()

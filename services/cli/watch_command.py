"""``adfatigue watch``: every change of a range as it arrives, and a heartbeat while nothing happens.

After the snapshot and after every change it says ``waiting for changes
(version N)…``. On a terminal a spinner shows how long it has waited; off a
terminal a plain ``still waiting (version N, …)`` line comes every
``heartbeat_s`` seconds, so a log shows the stream is alive. A stream that
ends with UNAVAILABLE (a gateway restart) is resumed from the last version
seen (``from_version``), up to 5 times in a row.
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
from rich.console import Console

from services.cli.gateway_calls import rpc_failure_text
from services.common.auth import bearer
from services.common.fatigue_text import level_name
from services.common.grpc_server import service_channel
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc

KINDS = {v.number: v.name for v in gw.SubscribeEvent.Kind.DESCRIPTOR.values}


def event_lines(event: gw.SubscribeEvent) -> list[str]:
    """What one event says: rows (and removed rows) with their days, or the scores recomputed at its version."""
    lines = []
    if event.rows or event.removed or event.kind != gw.SubscribeEvent.CHANGE:
        days = sorted({r.date_start for r in event.rows})
        span = f"{days[0]}..{days[-1]}" if days else "-"
        lines.append(f"{KINDS[event.kind]:<8} version {event.version:<6} rows {len(event.rows):<5} "
                     f"removed {len(event.removed):<3} days {span}  scores {len(event.fatigue)}")
    elif event.fatigue:
        for f in event.fatigue:
            score = f"{f.score:.2f}" if f.HasField("score") else "-"
            lines.append(f"SCORE    version {event.version:<6} {f.ad_name or f.ad_id}: {score} {level_name(f.level)}")
    return lines


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


async def run_watch(target: str, token: str, account: str, since: str, until: str, console: Console,
                    heartbeat_s: float = 30.0) -> int:
    """Watch until the stream ends (0), or a non-retryable error (2, printed to stderr)."""
    last: int | None = None
    last_event = time.monotonic()
    waiting = False
    interactive = console.is_terminal
    status = console.status("connecting…") if interactive else None

    def waiting_text() -> str:
        return f"waiting for changes (version {last})…"

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(1.0 if interactive else heartbeat_s)
            if not waiting:
                continue
            idle = time.monotonic() - last_event
            if status is not None:
                status.update(f"{waiting_text()} {_ago(idle)}")
            else:
                print(f"still waiting (version {last}, last change {_ago(idle)} ago)", flush=True)

    beat = asyncio.create_task(heartbeat())
    if status is not None:
        status.start()
    failures = 0
    try:
        while True:
            request = gw.SubscribeRequest(account_id=account, since=since, until=until)
            if last is not None:
                request.from_version = last
            try:
                async with service_channel(target) as channel:
                    stream = cache_gateway_pb2_grpc.CacheGatewayStub(channel).Subscribe(request, metadata=bearer(token))
                    async for event in stream:
                        failures = 0
                        last = max(last or 0, event.version)
                        last_event = time.monotonic()
                        for line in event_lines(event):
                            console.print(line, highlight=False, soft_wrap=True)
                        waiting = True
                        if status is not None:
                            status.update(waiting_text())
                        else:
                            print(waiting_text(), flush=True)
                    return 0
            except grpc.aio.AioRpcError as exc:
                failures += 1
                waiting = False
                if exc.code() != grpc.StatusCode.UNAVAILABLE or failures >= 5:
                    print(rpc_failure_text(exc, target), file=sys.stderr)
                    return 2
                resume = f"from version {last}" if last is not None else "from a new snapshot"
                print(f"stream ended ({exc.details()}); reconnecting {resume}", file=sys.stderr, flush=True)
                await asyncio.sleep(1)
    finally:
        beat.cancel()
        if status is not None:
            status.stop()

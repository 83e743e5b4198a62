"""Issue 5's benchmark: write-to-receipt latency with many Subscribe streams over loopback.

    .venv/bin/python -m bench.subscribers [--subscribers 1000] [--rounds 10] [--hot-accounts 1]

(or as part of ``python -m bench.run``). Method:

1. ``--subscribers`` streams are opened with grpc.aio from this one process,
   round-robin over two gateway replicas (``cache_gateway`` and
   ``cache_gateway_b``, same MongoDB) and ``--channels`` HTTP/2 connections per
   replica; every stream subscribes to the last 28 days of one of
   ``--hot-accounts`` accounts (1 by default: every change fans out to every
   subscriber — the worst case). Opening waits for every snapshot.
2. Each round: ``/_sandbox/restate`` adds 1,000 leads to every ad of one
   provisional day of each hot account, then an operator's
   ``Refresh(force=True)`` of that day — alternately through replica A and B —
   fetches and writes it (the sandbox's latency model is off in this phase, so
   the Refresh is the write, not Meta's wait). Then we wait until every
   subscriber has the CHANGE with the new rows (or ``--round-timeout``).
3. Per subscriber and round, with receipt = wall clock when this process read
   the event off the stream (the readers only timestamp bytes; decoding is
   done after the round):
   - ``write_to_receipt`` (the R5 measure) = receipt − the commit's
     ``wallTime``: the benchmark watches MongoDB's change stream of
     ``accounts`` itself and takes the server's wall time of the update that
     committed the version the Refresh returned (millisecond precision, so up
     to +1 ms);
   - ``commit_seen_to_receipt`` = receipt − the event's ``committed_at`` (when
     the serving replica's change stream saw the commit: its fan-out + gRPC +
     this client);
   - ``refresh_sent_to_receipt`` = receipt − when the Refresh was sent (also
     holds the fetch and the upserts);
   - ``scores_write_to_receipt`` = receipt of the fatigue-score CHANGE − the commit
     (each round waits for rows and scores, up to ``round_timeout_s``).
   Receipt times include this process's own work for 1,000 streams on a
   shared 2-core machine; it is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from datetime import timedelta

import grpc
import httpx

from bench.accounts import RESTATE_LEADS, BenchAccount
from bench.common import GatewayClient, cpu_delta, percentiles, stats_delta
from bench.workload import page_ranges, restatements_reflected
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw


class Stream:
    def __init__(self, index: int, replica: str, account: BenchAccount):
        self.index = index
        self.replica = replica
        self.account = account
        self.events: list[tuple[float, bytes]] = []
        self.call = None
        self.task: asyncio.Task | None = None
        self.error = ""
        self.snapshot_s: float | None = None

    async def read(self, call, opened: float) -> None:
        self.call = call
        try:
            async for raw in call:
                now = time.time()
                if self.snapshot_s is None:
                    self.snapshot_s = now - opened
                self.events.append((now, raw))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc.code().name
        except asyncio.CancelledError:
            pass


async def run_subscribers(system, *, subscribers: int = 1000, rounds: int = 10, hot_accounts: int = 1,
                          replicas: tuple[str, ...] = ("cache_gateway", "cache_gateway_b"), channels: int = 4,
                          round_timeout_s: float = 15.0, open_batch: int = 50, log=print) -> dict:
    for name in replicas:
        if name not in system.system.processes:
            system.start_production_gateway(name)
    clients = {name: GatewayClient(system.address(name), channels) for name in replicas}
    hot = system.accounts[:max(1, min(hot_accounts, len(system.accounts)))]
    md, op_md = system.user_md, system.operator_md
    system.set_meta_latency(0)
    streams = [Stream(i, replicas[i % len(replicas)], hot[i % len(hot)]) for i in range(subscribers)]
    cpu0 = system.cpu()
    commits: dict[tuple[str, int], float] = {}
    watcher = asyncio.ensure_future(_watch_commits(system, {a.account_id.removeprefix("act_") for a in hot}, commits))
    try:
        await asyncio.sleep(0.3)
        # make sure the range is in L2 (not part of what is measured)
        for account in hot:
            since, until = page_ranges(account)["28d"]
            await clients[replicas[0]].method("GetInsights")(
                gw.GetInsightsRequest(account_id=account.account_id, since=since, until=until), metadata=md, timeout=600)
        t_open = time.time()
        open_before = {name: await c.stats(md) for name, c in clients.items()}
        batch_s: list[float] = []
        for start in range(0, len(streams), open_batch):
            t_batch = time.time()
            batch = streams[start:start + open_batch]
            for s in batch:
                since, until = page_ranges(s.account)["28d"]
                call = clients[s.replica].method("Subscribe")(
                    gw.SubscribeRequest(account_id=s.account.account_id, since=since, until=until),
                    metadata=md, timeout=3600)
                s.task = asyncio.ensure_future(s.read(call, time.time()))
            await _wait(lambda b=batch: all(s.events or s.error for s in b), 120)
            batch_s.append(round(time.time() - t_batch, 3))
        open_s = time.time() - t_open
        open_delta = {name: stats_delta(await c.stats(md), open_before[name]) for name, c in clients.items()}
        log(f"  {len(streams)} streams open over {len(replicas)} replicas in {open_s:.1f} s")
        metrics: dict[str, list[float]] = defaultdict(list)
        per_replica: dict[str, list[float]] = defaultdict(list)
        expected = delivered = wrong = no_commit = scores_missing = 0
        event_bytes: list[int] = []
        round_info = []
        async with httpx.AsyncClient() as http:
            for r in range(rounds):
                writer = replicas[r % len(replicas)]
                marks = {s.index: len(s.events) for s in streams}
                targets = {}
                for account in hot:
                    day = (account.last_day - timedelta(days=1 + r % 26)).isoformat()
                    await system.restate(http, account.account_id, day, RESTATE_LEADS)
                    sent = time.time()
                    reply = await clients[writer].method("Refresh")(
                        gw.RefreshRequest(account_id=account.account_id, since=day, until=day, force=True),
                        metadata=op_md, timeout=120)
                    targets[account.account_id] = (day, reply.version, sent, time.time())
                want = [s for s in streams if not s.error]
                deadline = time.monotonic() + round_timeout_s
                # the readers only timestamp raw bytes; decoding happens here, after the receipts
                await _wait(lambda w=want, m=marks: all(len(s.events) > m[s.index] for s in w), round_timeout_s)
                await asyncio.sleep(0.3)  # the fatigue-score events follow the rows

                def complete(s: Stream) -> bool:
                    rows, scores = _first(s, marks[s.index], targets[s.account.account_id][1])
                    return rows[1] is not None and scores[1] is not None

                while time.monotonic() < deadline and not all(complete(s) for s in want):
                    await asyncio.sleep(0.2)
                got = 0
                for s in want:
                    day, version, sent, _ = targets[s.account.account_id]
                    expected += 1
                    (t, event), (ts, _) = _first(s, marks[s.index], version)
                    commit = None
                    if event is not None:
                        got += 1
                        event_bytes.append(event.ByteSize())
                        if not restatements_reflected(event.rows, day):
                            wrong += 1
                        commit = commits.get((s.account.account_id.removeprefix("act_"), version))
                        if commit is not None:
                            metrics["write_to_receipt"].append(t - commit)
                            per_replica[s.replica].append(t - commit)
                        else:
                            no_commit += 1
                        metrics["refresh_sent_to_receipt"].append(t - sent)
                        if event.HasField("committed_at"):
                            committed = event.committed_at.seconds + event.committed_at.nanos / 1e9
                            metrics["commit_seen_to_receipt"].append(t - committed)
                    if ts is not None and commit is not None:
                        metrics["scores_write_to_receipt"].append(ts - commit)
                    elif ts is None:
                        scores_missing += 1
                delivered += got
                round_info.append({"writer": writer, "version": max(v for _, v, _, _ in targets.values()),
                                   "refresh_ms": max(replied - sent for _, _, sent, replied in targets.values()) * 1000,
                                   "delivered": got, "expected": len(want)})
                await asyncio.sleep(0.2)
        cpu1 = system.cpu()
        return {
            "subscribers": subscribers, "replicas": list(replicas), "channels_per_replica": channels,
            "hot_accounts": len(hot), "rounds": rounds, "open_s": open_s, "open_batches_s": batch_s,
            "open_batch_size": open_batch, "open_stats_delta": open_delta,
            "snapshot_ms": percentiles(s.snapshot_s for s in streams if s.snapshot_s is not None),
            "stream_errors": sum(1 for s in streams if s.error),
            "expected_deliveries": expected, "delivered": delivered, "lost": expected - delivered,
            "wrong_content": wrong, "commit_time_unknown": no_commit,
            "scores_not_received_in_round": scores_missing,
            "change_event_bytes": round(sum(event_bytes) / len(event_bytes)) if event_bytes else 0,
            **{f"{k}_ms": percentiles(v) for k, v in metrics.items()},
            "per_replica_write_to_receipt_ms": {k: percentiles(v) for k, v in per_replica.items()},
            "rounds_detail": round_info,
            "cpu_s": cpu_delta(cpu1, cpu0),
            "method": "receipt = wall clock when the benchmark read the event off the stream; write = MongoDB "
                      "wallTime of the accounts update committing the version (the benchmark's own change stream); "
                      "Meta latency 0 in this phase",
        }
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        for s in streams:
            if s.call is not None:
                s.call.cancel()
        await asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)
        for client in clients.values():
            await client.close()
        system.set_meta_latency(system.settings.meta_latency_ms)


async def _watch_commits(system, account_ids: set[str], commits: dict[tuple[str, int], float]) -> None:
    """Record the server wall time at which each version of the accounts was committed."""
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(system.system.mongodb_uri, tz_aware=True)
    try:
        db = client[system.db_name]
        pipeline = [{"$match": {"ns.coll": "accounts", "documentKey._id": {"$in": sorted(account_ids)}}}]
        async with await db.watch(pipeline, full_document="updateLookup") as stream:
            async for event in stream:
                doc, wall = event.get("fullDocument") or {}, event.get("wallTime")
                fields = (event.get("updateDescription") or {}).get("updatedFields") or {}
                if wall is not None and "version" in fields:
                    commits.setdefault((doc.get("_id", event["documentKey"]["_id"]), int(fields["version"])),
                                       wall.timestamp())
    finally:
        await client.close()


def _first(s: Stream, mark: int, version: int):
    """((receipt, event) of the first CHANGE with rows at >= version, (receipt, event) of the first with scores)."""
    rows = scores = (None, None)
    for t, raw in s.events[mark:]:
        event = gw.SubscribeEvent.FromString(raw)
        if event.version < version:
            continue
        if event.rows and rows[1] is None:
            rows = (t, event)
        if event.fatigue and scores[1] is None:
            scores = (t, event)
    return rows, scores


async def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def main(argv: list[str] | None = None) -> None:
    import json

    from bench.system import BenchSystem, SystemSettings

    p = argparse.ArgumentParser(prog="python -m bench.subscribers", description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--hot-accounts", type=int, default=1)
    p.add_argument("--channels", type=int, default=4, help="HTTP/2 connections per replica")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args(argv)
    settings = SystemSettings(accounts=max(1, args.hot_accounts), keep=args.keep)
    with BenchSystem(settings) as system:
        result = asyncio.run(run_subscribers(system, subscribers=args.subscribers, rounds=args.rounds,
                                             hot_accounts=args.hot_accounts, channels=args.channels))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

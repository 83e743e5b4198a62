"""Micro-benchmarks: one path at a time, each with its method in the result.

- ``l1_sequential``: the same GetInsights (last 7 days, every field) sent
  ``n`` times one after another on one channel to gateway replica B (production
  settings), after one warming call; every one verified an L1 hit by GetStats
  before/after (``l1_hits`` delta = n). Latency = client send to last byte, on
  loopback, bearer JWT included. Also for the lifetime range (bigger answer).
- ``l1_concurrency_100``: 100 asyncio tasks on 4 channels, each sending the
  same request in a closed loop (``per_task`` requests each); latency
  percentiles and completed requests per second.
- ``l2_hit``: GetInsights whose L1 key is new each time (an unused
  ``page_size``, which is part of the key; every answer fits one page) over
  days L2 holds — verified ``l2_hits`` delta = n, no upstream call; for the
  7-day and the lifetime range. (L1 cannot be cleared from outside; this is the
  documented way to miss it.)
- ``planner``: ``services.cache_gateway.planner.plan`` over a 1,100-day range
  whose fetch times mix fresh, due and missing days (in-process; median of
  repeats).
- ``fatigue_scoring``: ``services.fatigue_engine.scoring.score_ads`` on 1,000
  synthetic ads x 90 days (the sandbox's seeded model), in-process; best of 3.
- ``gc_full_collection``: ``gc.collect()`` over a gateway's heap (its imports and the real sample
  account's replica), in a fresh interpreter, with and without start-up objects frozen.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench.accounts import BenchAccount
from bench.common import GatewayClient, percentiles, stats_delta
from bench.workload import page_ranges, widget_request


async def _sequential(client: GatewayClient, md, request, n: int) -> tuple[dict, dict]:
    call = client.method("GetInsights")
    await call(request, metadata=md, timeout=300)  # warm L1
    before = await client.stats(md)
    latencies = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await call(request, metadata=md, timeout=60)
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    delta = stats_delta(await client.stats(md), before)
    return {**percentiles(latencies), "requests_per_s": n / wall}, delta


async def l1_benchmarks(address: str, md, account: BenchAccount, n_seq: int = 2000, tasks: int = 100,
                        per_task: int = 20) -> dict:
    client = GatewayClient(address, 4)
    try:
        out = {}
        for rng, n in (("7d", n_seq), ("lifetime", max(1, n_seq // 4))):
            since, until = page_ranges(account)[rng]
            req = widget_request("insights", account.account_id, since, until)
            single = GatewayClient(address, 1)
            try:
                stats, delta = await _sequential(single, md, req, n)
            finally:
                await single.close()
            out[f"l1_sequential_{rng}"] = {**stats, "verified_l1_hits": delta["l1_hits"],
                                           "method": f"{n} identical GetInsights {rng} one after another, one channel"}
        since, until = page_ranges(account)["7d"]
        req = widget_request("insights", account.account_id, since, until)
        latencies: list[float] = []
        before = await client.stats(md)

        async def worker() -> None:
            for _ in range(per_task):
                call = client.method("GetInsights")
                t = time.perf_counter()
                await call(req, metadata=md, timeout=60)
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        wall = time.perf_counter() - t0
        delta = stats_delta(await client.stats(md), before)
        out["l1_concurrency_100"] = {**percentiles(latencies), "requests_per_s": len(latencies) / wall,
                                     "verified_l1_hits": delta["l1_hits"],
                                     "method": f"{tasks} tasks x {per_task} identical GetInsights 7d, closed loop, "
                                               "4 channels"}
        return out
    finally:
        await client.close()


async def l2_benchmarks(address: str, md, account: BenchAccount, n: int = 200) -> dict:
    client = GatewayClient(address, 1)
    out = {}
    try:
        page_size = 9000
        for rng, count in (("7d", n), ("lifetime", max(1, n // 4))):
            since, until = page_ranges(account)[rng]
            before = await client.stats(md)
            latencies = []
            for _ in range(count):
                page_size += 1
                req = widget_request("insights", account.account_id, since, until, page_size=page_size)
                t = time.perf_counter()
                await client.method("GetInsights")(req, metadata=md, timeout=300)
                latencies.append(time.perf_counter() - t)
            delta = stats_delta(await client.stats(md), before)
            out[f"l2_hit_{rng}"] = {**percentiles(latencies), "verified_l2_hits": delta["l2_hits"],
                                    "upstream_calls": delta["upstream_calls"],
                                    "method": f"{count} GetInsights {rng}, each with an unused page_size (new L1 "
                                              "key), sequential"}
        return out
    finally:
        await client.close()


def planner_benchmark(repeats: int = 300) -> dict:
    from services.common.freshness import FreshnessPolicy
    from services.cache_gateway.planner import plan
    from services.common.dates import DateRange

    tz = ZoneInfo("Asia/Kuala_Lumpur")
    now = datetime.now(timezone.utc)
    today = now.astimezone(tz).date()
    requested = DateRange(today - timedelta(days=1099), today)
    rng = random.Random(3)
    fetched = {}
    for d in requested.days():
        r = rng.random()
        if r < 0.05:
            continue  # missing
        age = timedelta(hours=rng.uniform(0, 12)) if (today - d).days <= 28 else timedelta(days=rng.uniform(0, 400))
        fetched[d] = now - age
    policy = FreshnessPolicy()
    ranges = plan(requested, fetched, policy, now, tz)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        plan(requested, fetched, policy, now, tz)
        times.append(time.perf_counter() - t)
    return {"p50_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000, "days": len(requested),
            "ranges_planned": len(ranges), "repeats": repeats,
            "method": "plan() over 1,100 days: 5 % missing, final days fetched 0-400 days ago, provisional 0-12 h "
                      "ago (default policy); in-process, median of repeats"}


def fatigue_benchmark(n_ads: int = 1000, days: int = 90, repeats: int = 3) -> dict:
    try:
        from services.fatigue_engine.scoring import score_ads
        from services.meta_sandbox.synthetic import synthetic_rows
    except ImportError as exc:  # pragma: no cover - the engine's API moved
        return {"skipped": f"services.fatigue_engine.scoring.score_ads not importable: {exc}"}
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    series: dict[str, list] = defaultdict(list)
    for start in range(0, n_ads, 100):  # the generator's ad ids repeat per call: one account per 100 ads
        for row in synthetic_rows(f"{800_000_000_000 + start}", last - timedelta(days=days - 1), last,
                                  n_ads=min(100, n_ads - start), seed=start):
            series[f"{row.account_id}:{row.ad_id}"].append(row)
    ads = [sorted(rows, key=lambda r: r.date_start) for rows in series.values()]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        score_ads(ads)
        times.append(time.perf_counter() - t)
    best = min(times)
    return {"ads": len(ads), "rows": sum(len(a) for a in ads), "best_s": best, "ads_per_s": len(ads) / best,
            "us_per_ad": best / len(ads) * 1e6,
            "method": f"score_ads on {len(ads)} synthetic ads x {days} days (sandbox model), in-process, best of "
                      f"{repeats}"}


def replica_memory() -> dict:
    """Bytes one resident account costs: the real sample account's replica, every row serialized (as after its
    background warm-up): ``AccountReplica.size_bytes`` (what L1_MAX_BYTES is charged) and what tracemalloc
    measures for building it (rows decoded, replica, serialized rows), in-process."""
    import gc
    import tracemalloc

    from bench.accounts import SAMPLE_CSV
    from services.cache_gateway.account_replica import AccountReplica
    from services.cache_gateway.l2_store import AccountImage, AccountState
    from services.common.ads_manager_csv import load_csv

    if not SAMPLE_CSV.is_file():
        return {"skipped": f"{SAMPLE_CSV} is missing"}
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        rows = load_csv(SAMPLE_CSV, "1")
        now = datetime.now(timezone.utc)
        image = AccountImage(AccountState("1", 1, 1), [(r.ad_id, r.date_start, 1, r) for r in rows],
                             {r.date_start: now for r in rows}, [])
        replica = AccountReplica.from_image(image)
        for entry in replica.unencoded():
            entry.as_rows_element()
        del image, rows
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"rows": replica.rows_held(), "days": len(replica.fetched), "estimate_bytes": replica.size_bytes,
            "measured_bytes": after - before,
            "method": "the real sample account's AccountReplica with every row serialized; size_bytes vs tracemalloc"}


_GC_PROBE = """
import gc, json, sys, time
from datetime import datetime, timezone
import services.cache_gateway.server  # every module the gateway imports
from services.common.heap import freeze_startup_heap
if sys.argv[1] == "frozen":
    freeze_startup_heap()
from bench.accounts import SAMPLE_CSV
from services.cache_gateway.account_replica import AccountReplica
from services.cache_gateway.l2_store import AccountImage, AccountState
from services.common.ads_manager_csv import load_csv
rows = load_csv(SAMPLE_CSV, "1")
now = datetime.now(timezone.utc)
replica = AccountReplica.from_image(AccountImage(AccountState("1", 1, 1), [(r.ad_id, r.date_start, 1, r) for r in rows],
                                                 {r.date_start: now for r in rows}, []))
del rows
best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    gc.collect()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"ms": best * 1000, "walked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def gc_full_collection(repeats: int = 7) -> dict:
    """What a full garbage collection costs a gateway, with and without ``services/common/heap.py``'s freeze of
    start-up objects: a fresh interpreter imports every module the gateway does, (frozen: freezes them), then holds
    the real sample account's replica, and times ``gc.collect()`` (best of ``repeats``); one process per variant."""
    from bench.accounts import SAMPLE_CSV

    if not SAMPLE_CSV.is_file():
        return {"skipped": f"{SAMPLE_CSV} is missing"}
    out = {}
    for variant in ("unfrozen", "frozen"):
        done = subprocess.run([sys.executable, "-c", _GC_PROBE, variant, str(repeats)], capture_output=True,
                              text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent, check=True)
        out[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "ratio": out["frozen"]["ms"] / out["unfrozen"]["ms"],
            "method": "fresh interpreter per variant: the gateway's imports, the real sample account's replica "
                      f"resident, gc.collect() best of {repeats}; frozen = gc.freeze() after the imports "
                      "(what every service does when it starts serving)"}


def join_vs_encode(repeats: int = 20) -> dict:
    """Does joining pre-serialized rows pay? The real sample account's lifetime GetInsights rows (1,716) made into
    a response: encoding every row (``row_to_proto`` + serialize, the L2 path) vs joining each row's memoised
    bytes (the replica path); in-process, best of ``repeats``."""
    from bench.accounts import SAMPLE_CSV
    from services.cache_gateway.account_replica import AccountReplica
    from services.cache_gateway.l2_store import AccountImage, AccountState
    from services.common.ads_manager_csv import load_csv
    from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
    from services.common.row_proto import row_to_proto

    if not SAMPLE_CSV.is_file():
        return {"skipped": f"{SAMPLE_CSV} is missing"}
    rows = load_csv(SAMPLE_CSV, "1")
    now = datetime.now(timezone.utc)
    replica = AccountReplica.from_image(AccountImage(AccountState("1", 1, 1), [(r.ad_id, r.date_start, 1, r)
                                                                                for r in rows], {}, []))
    entries = [e for rows_ in replica._day_rows.values() for e in rows_]
    for e in entries:
        e.as_rows_element()

    def encode() -> bytes:
        return gw.GetInsightsResponse(rows=[row_to_proto(e.row) for e in entries]).SerializeToString(deterministic=True)

    def join() -> bytes:
        return b"".join(e.as_rows_element() for e in entries)

    assert encode() == join()
    times = {}
    for name, fn in (("encode", encode), ("join", join)):
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        times[name] = best * 1000
    del now
    return {"rows": len(entries), "encode_ms": times["encode"], "join_ms": times["join"],
            "speedup": times["encode"] / times["join"],
            "method": "1,716 rows of the real sample account into GetInsightsResponse.rows: row_to_proto + "
                      "SerializeToString vs b''.join of memoised framed rows (same bytes, asserted); best of "
                      f"{repeats}, in-process"}


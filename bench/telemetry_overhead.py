"""What telemetry costs on the fastest path: L1-hit throughput of the gateway with and without it.

    python -m bench.telemetry_overhead [--seconds 3] [--rounds 5] [--clients 32] [--out bench/results]

One system (``LocalSystem``: embedded store, sandbox, every service) and four gateway processes on
the same store, fetcher and engine, differing only in their environment:

* ``on``   — telemetry as it runs by default: Prometheus exporter (scraped by nobody: the cost is in
  recording), RPC durations, system metrics, the domain instruments; no traces (no collector);
* ``traced`` — the same plus traces: ``OTEL_EXPORTER_OTLP_ENDPOINT`` points at a collector stand-in in
  this process (it accepts and drops the spans), so every RPC is traced by the contrib gRPC / pymongo /
  redis instrumentation and exported in batches;
* ``off``  — ``ADFATIGUE_TELEMETRY=off``: no exporter, no tracing, no instrumentation; the domain
  instruments still record into the in-memory reader that GetStats reads;
* ``none`` — ``OTEL_SDK_DISABLED=true``: every instrument a no-op (GetStats answers zeros), the floor.

Every key is warmed first, so each measured request is an L1 hit (checked with GetStats deltas for
``on`` and ``off``: l1_hits equals the requests completed). Besides throughput, the gateway
process's own CPU time per request (``/proc/<pid>/stat``) is measured: on a machine other work
shares, that is the steadier number. Rounds alternate the order of the
variants (``on, traced, off, none``, then ``traced, off, none, on``, ...) so load from elsewhere on the machine falls
on all of them; the result per variant is the median over rounds, and the overhead is
``1 − on / off`` (and ``1 − on / none``) from the same run. The load generator shares the machine's
cores with the gateway: absolute numbers are lower bounds, ratios are what this measures.

Throughput and CPU time of separate processes move by ±10 % between runs even on an idle machine (seen:
``none``, which does strictly less work than ``off``, measured slower), which is more than the 5 % budget
being checked. So the verdict comes from **instructions per L1 hit** (``--instructions``, on by default):
each variant's gateway runs under ``valgrind --tool=callgrind`` with instrumentation off; after warming,
its counters are zeroed, ``--calls`` L1-hit GetInsights are sent one after another, and the counters
dumped (``callgrind_control``); the same window with no calls measures what the process does by itself
per second (change-feed polling, flushes), which is subtracted. Instruction counts do not depend on what
else the machine runs (valgrind's own documentation; repeatable to a fraction of a percent here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from concurrent import futures
from datetime import date, timedelta
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.common import GatewayClient
from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID

VARIANTS = {"on": {}, "traced": {}, "off": {"ADFATIGUE_TELEMETRY": "off"}, "none": {"OTEL_SDK_DISABLED": "true"}}


class _DropSpans(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace endpoint that accepts every export and keeps nothing."""

    def Export(self, request, context):
        return trace_service_pb2.ExportTraceServiceResponse()
RESULTS = Path(__file__).resolve().parent / "results"


def _keys() -> list[gw.GetInsightsRequest]:
    """Eight L1 keys of the synthetic account: FINAL days (older than the restatement window)."""
    until = date.today() - timedelta(days=40)
    return [gw.GetInsightsRequest(account_id=f"act_{SYNTHETIC_ACCOUNT_ID}",
                                  since=(until - timedelta(days=d)).isoformat(), until=until.isoformat())
            for d in (0, 1, 6, 13, 27, 29, 59, 89)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _saturate(address: str, md, keys, clients: int, seconds: float, pid: int) -> dict:
    client = GatewayClient(address, 4)
    try:
        get = lambda: client.method("GetInsights")
        # warm until a whole pass over the keys is served from L1 (the first fetch's commit and its
        # rescoring reach the change feed a moment later and evict entries once)
        deadline = time.perf_counter() + 60
        while True:
            before = await client.stats(md)
            for k in keys:
                await get()(k, metadata=md, timeout=120)
            after = await client.stats(md)
            if after.l1_misses == before.l1_misses or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.5)
        before = after
        done = errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal done, errors
            n = i
            while time.perf_counter() < stop_at:
                n += 1
                try:
                    await get()(keys[n % len(keys)], metadata=md, timeout=30)
                    done += 1
                except grpc.aio.AioRpcError:
                    errors += 1

        t0, cpu0 = time.perf_counter(), _cpu_seconds(pid)
        await asyncio.gather(*(worker(i) for i in range(clients)))
        window, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
        after = await client.stats(md)
        return {"rps": done / window, "requests": done, "errors": errors, "cpu_s": cpu,
                "cpu_us_per_request": cpu / done * 1e6 if done else None,
                "l1_hits": after.l1_hits - before.l1_hits, "l1_misses": after.l1_misses - before.l1_misses}
    finally:
        await client.close()


def _system_config(name: str) -> SystemConfig:
    """A throw-away local system for one measurement (its own data folder and database)."""
    return SystemConfig(data_dir=Path(tempfile.mkdtemp(prefix=f"adfatigue-{name}-")), gateway_port=0,
                        scheduler_interval_s=86400, mongodb_uri=os.environ.get("MONGODB_URI") or None,
                        extra_env={"MONGODB_DB": f"bench_{name.replace('-', '_')}_{os.getpid()}",
                                   "LOG_LEVEL": "WARNING", "L1_TTL_SECONDS": "3600"})


def measure(seconds: float = 3.0, rounds: int = 5, clients: int = 32, log=print) -> dict:
    config = _system_config("telemetry")
    keys = _keys()
    per_variant: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    collector = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_DropSpans(), collector)
    VARIANTS["traced"] = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.add_insecure_port('127.0.0.1:0')}"}
    collector.start()
    with LocalSystem(config) as system:
        procs = {"on": system.processes["cache_gateway"]}
        for name in ("traced", "off", "none"):
            procs[name] = system.add_gateway_replica(f"cache_gateway_{name}", VARIANTS[name])
        md = bearer(mint_token(system.jwt_secret, "bench-telemetry", ["*"], ["operator"], ttl_s=7200))
        order = list(VARIANTS)
        for r in range(rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                result = asyncio.run(_saturate(procs[name].address, md, keys, clients, seconds, procs[name].proc.pid))
                per_variant[name].append(result)
                log(f"round {r + 1}/{rounds} {name:<4} {result['rps']:8.0f} req/s "
                    f"{result['cpu_us_per_request']:7.0f} µs CPU/request")
    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in per_variant.items()}
    cpu = {name: statistics.median(r["cpu_us_per_request"] for r in runs) for name, runs in per_variant.items()}
    collector.stop(0)
    for name in ("on", "traced", "off"):
        for run in per_variant[name]:
            assert run["errors"] == 0 and run["l1_misses"] == 0 and run["l1_hits"] == run["requests"], (name, run)
    return {
        "what": "L1-hit GetInsights throughput of one gateway process; closed loop, "
                f"{clients} clients over 4 channels, {seconds:g} s per round, {rounds} rounds, order rotated",
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
        "median_rps": median,
        "median_cpu_us_per_request": cpu,
        "overhead_vs_off": 1 - median["on"] / median["off"],
        "overhead_vs_none": 1 - median["on"] / median["none"],
        "cpu_overhead_vs_off": cpu["on"] / cpu["off"] - 1,
        "cpu_overhead_vs_none": cpu["on"] / cpu["none"] - 1,
        "traced_cpu_overhead_vs_off": cpu["traced"] / cpu["off"] - 1,
        "rounds": per_variant,
    }


def _instructions(total_path: Path) -> int:
    """The event total of a callgrind dump file ("summary:" / "totals:" line), 0 when absent."""
    import re

    text = total_path.read_text(errors="replace") if total_path.exists() else ""
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    return int(match.group(1)) if match else 0


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


IR_VARIANTS = {"on": {}, "off": {"ADFATIGUE_TELEMETRY": "off"}, "none": {"OTEL_SDK_DISABLED": "true"}}


def measure_instructions(calls: int = 1000, idle_s: float = 4.0, rounds: int = 2, log=print) -> dict:
    """Instructions per L1-hit GetInsights of each variant's gateway under callgrind (see the module doc)."""
    config = _system_config("telemetry-ir")
    data_dir = config.data_dir
    keys = _keys()
    variants = IR_VARIANTS
    per_variant: dict[str, list[float]] = {v: [] for v in variants}
    # each variant twice, in opposite orders (a fresh process each time): the counts of a process started
    # first and of one started last differed by a few percent whatever it ran (seen: on/off 1.059 in one
    # order, 1.025 in the other)
    order = list(variants)
    passes = [(name, variants[name], k) for k, names in enumerate((order, order[::-1])) for name in names]
    with LocalSystem(config) as system:
        md = bearer(mint_token(system.jwt_secret, "bench-telemetry", ["*"], ["operator"], ttl_s=7200))
        for name, env, k in passes:
            out = data_dir / f"callgrind.{name}.{k}.out"
            # one hash seed for every variant: dict and set layouts (and so instruction counts) then differ only
            # by what telemetry does
            proc = system.add_gateway_replica(f"cache_gateway_ir_{name}_{k}", {**env, "PYTHONHASHSEED": "0"},
                                              timeout=600, prefix=[
                "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"])
            pid = proc.proc.pid

            async def sequential(n: int) -> tuple[float, int]:
                client = GatewayClient(proc.address, 1)
                try:
                    before = await client.stats(md)
                    t0 = time.perf_counter()
                    for i in range(n):
                        await client.method("GetInsights")(keys[i % len(keys)], metadata=md, timeout=120)
                    wall = time.perf_counter() - t0
                    after = await client.stats(md)
                    return wall, after.l1_hits - before.l1_hits
                finally:
                    await client.close()

            asyncio.run(sequential(len(keys) * 5))  # warm: every key memoised (and its rescoring settled)
            time.sleep(1.0)
            asyncio.run(sequential(len(keys) * 2))
            _callgrind(pid, "-i", "on")
            def idle_rate() -> float:
                _callgrind(pid, "-z")
                time.sleep(idle_s)
                _callgrind(pid, "-d")
                return _instructions(_last_dump(out)) / idle_s

            for r in range(rounds):
                before = idle_rate()
                _callgrind(pid, "-z")
                wall, hits = asyncio.run(sequential(calls))
                _callgrind(pid, "-d")
                total = _instructions(_last_dump(out))
                rate = (before + idle_rate()) / 2  # the process's own activity, measured on both sides
                per_call = (total - rate * wall) / calls
                if name != "none":  # GetStats answers zeros with every instrument a no-op
                    assert hits == calls, (name, hits, calls)
                per_variant[name].append(per_call)
                log(f"instructions {name:<4} pass {k + 1} round {r + 1}/{rounds}: {per_call:,.0f} per L1 hit "
                    f"(idle {rate:,.0f}/s subtracted over {wall:.1f} s)")
            proc.stop(timeout=60)
    med = {name: statistics.median(v) for name, v in per_variant.items()}
    return {"calls": calls, "rounds": rounds, "idle_s": idle_s, "per_l1_hit": med, "runs": per_variant,
            "overhead_vs_off": med["on"] / med["off"] - 1, "overhead_vs_none": med["on"] / med["none"] - 1}


def _last_dump(base: Path) -> Path:
    """The newest numbered dump callgrind wrote next to ``base`` (``base.1``, ``base.2``, ...)."""
    dumps = sorted(base.parent.glob(base.name + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return dumps[-1] if dumps else base


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(result: dict) -> str:
    m, c = result["median_rps"], result["median_cpu_us_per_request"]
    return "\n".join([
        "# Telemetry overhead on L1 hits", "", result["what"] + ".",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores (shared with the load generator).",
        "", "| gateway | median req/s | ratio to off | gateway CPU µs / request | ratio to off |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| telemetry on (default: metrics, no collector) | {m['on']:.0f} | {m['on'] / m['off']:.3f} | {c['on']:.0f} "
        f"| {c['on'] / c['off']:.3f} |",
        f"| traced (OTLP collector set: every RPC traced) | {m['traced']:.0f} | {m['traced'] / m['off']:.3f} "
        f"| {c['traced']:.0f} | {c['traced'] / c['off']:.3f} |",
        f"| `ADFATIGUE_TELEMETRY=off` (GetStats instruments only) | {m['off']:.0f} | 1.000 | {c['off']:.0f} | 1.000 |",
        f"| `OTEL_SDK_DISABLED=true` (every instrument a no-op) | {m['none']:.0f} | {m['none'] / m['off']:.3f} "
        f"| {c['none']:.0f} | {c['none'] / c['off']:.3f} |",
        "", f"Throughput cost of telemetry: {result['overhead_vs_off']:.1%} against `off`, "
            f"{result['overhead_vs_none']:.1%} against no instruments at all (budget: 5 %). "
            f"CPU cost per L1 hit: {result['cpu_overhead_vs_off']:+.1%} against `off`, "
            f"{result['cpu_overhead_vs_none']:+.1%} against none. The gateway's CPU time per request does not "
            "depend on what else the machine runs; throughput on a shared machine does.", "",
        *_instructions_report(result.get("instructions"))])


def _instructions_report(ir: dict | None) -> list[str]:
    if not ir:
        return []
    per = ir["per_l1_hit"]
    verdict = "within" if ir["overhead_vs_off"] <= 0.05 else "over"
    return [
        "## Instructions per L1 hit (the verdict)", "",
        f"Each gateway under callgrind; {ir['calls']} L1-hit GetInsights one after another, {ir['rounds']} rounds in "
        "each of two processes per variant (started in opposite orders), the process's own idle activity subtracted; "
        "medians. Instruction counts do not depend on the machine's load.", "",
        "| gateway | instructions / L1 hit | ratio to off |", "| --- | ---: | ---: |",
        *[f"| {label} | {per[k]:,.0f} | {per[k] / per['off']:.3f} |" for k, label in (
            ("on", "telemetry on (default)"), ("off", "`ADFATIGUE_TELEMETRY=off`"),
            ("none", "`OTEL_SDK_DISABLED=true`"))],
        "", f"Telemetry on costs {ir['overhead_vs_off']:+.1%} instructions per L1 hit against `off` "
            f"({ir['overhead_vs_none']:+.1%} against no instruments at all): {verdict} the 5 % budget.", ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.telemetry_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--instructions", action=argparse.BooleanOptionalAction, default=True,
                   help="also count instructions per L1 hit under callgrind (needs valgrind)")
    p.add_argument("--calls", type=int, default=1000, help="L1 hits per callgrind round")
    args = p.parse_args(argv)
    result = measure(args.seconds, args.rounds, args.clients)
    if args.instructions:
        result["instructions"] = measure_instructions(args.calls)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "telemetry_overhead.json").write_text(json.dumps(result, indent=2))
    (args.out / "telemetry_overhead.md").write_text(report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared pieces of the benchmark: gRPC clients that keep answers as bytes, percentiles, process memory."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Iterable, Sequence

import grpc

from services.common.grpc_server import CHANNEL_OPTIONS
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw

SERVICE = "/adfatigue.v1.CacheGateway/"
#: Trailing-metadata key a gateway may set to say which tier answered ("l1", "l2", "l3").
TIER_TRAILER = "adfatigue-tier"


class GatewayClient:
    """``channels`` separate HTTP/2 connections to one CacheGateway-shaped server, round-robin.

    Unary answers are returned as raw bytes (``response_deserializer=None``) so
    timing never includes client-side decoding; decode later if needed.
    """

    def __init__(self, address: str, channels: int = 4):
        self.address = address
        self._channels = [
            grpc.aio.insecure_channel(address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1),
                                                         ("bench.channel", i)])
            for i in range(channels)
        ]
        self._next = 0
        self._methods = []
        for ch in self._channels:
            self._methods.append({
                "GetInsights": ch.unary_unary(SERVICE + "GetInsights",
                                              request_serializer=gw.GetInsightsRequest.SerializeToString,
                                              response_deserializer=None),
                "GetFatigue": ch.unary_unary(SERVICE + "GetFatigue",
                                             request_serializer=gw.GetFatigueRequest.SerializeToString,
                                             response_deserializer=None),
                "Refresh": ch.unary_unary(SERVICE + "Refresh", request_serializer=gw.RefreshRequest.SerializeToString,
                                          response_deserializer=gw.RefreshResponse.FromString),
                "GetStats": ch.unary_unary(SERVICE + "GetStats",
                                           request_serializer=gw.GetStatsRequest.SerializeToString,
                                           response_deserializer=gw.GatewayStats.FromString),
                "Subscribe": ch.unary_stream(SERVICE + "Subscribe",
                                             request_serializer=gw.SubscribeRequest.SerializeToString,
                                             response_deserializer=None),
            })

    def method(self, name: str):
        methods = self._methods[self._next]
        self._next = (self._next + 1) % len(self._methods)
        return methods[name]

    async def stats(self, metadata) -> gw.GatewayStats:
        return await self.method("GetStats")(gw.GetStatsRequest(), metadata=metadata, timeout=30)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()


async def call_with_tier(multicallable, request, metadata, timeout: float) -> tuple[bytes, str]:
    """Unary call returning (payload bytes, tier from trailing metadata or "")."""
    call = multicallable(request, metadata=metadata, timeout=timeout)
    payload = await call
    tier = ""
    for key, value in (await call.trailing_metadata()) or ():
        if key == TIER_TRAILER:
            tier = value if isinstance(value, str) else value.decode()
    return payload, tier


def stats_delta(after: gw.GatewayStats, before: gw.GatewayStats) -> dict[str, int]:
    names = ("l1_hits", "l1_misses", "l2_hits", "l2_misses", "upstream_calls", "upstream_calls_avoided",
             "stale_answers", "l2_reads", "l1_replica_loads")
    return {n: getattr(after, n) - getattr(before, n) for n in names}


def percentiles(values: Sequence[float] | Iterable[float], scale: float = 1000.0) -> dict[str, float | int]:
    """p50/p95/p99/max/mean of ``values`` (seconds) in milliseconds (``scale``), with the count.

    Nearest-rank percentiles (no interpolation): p99 of 100 samples is the 99th smallest.
    """
    data = sorted(values)
    n = len(data)
    if n == 0:
        return {"n": 0}

    def rank(p: float) -> float:
        return data[max(0, min(n - 1, math.ceil(p / 100 * n) - 1))] * scale

    return {"n": n, "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": data[-1] * scale,
            "mean": sum(data) / n * scale}


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICKS


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Per-process CPU seconds between two ``BenchSystem.cpu()`` snapshots, plus ``other processes``
    (machine busy time not used by any process of the run: other people's work on a shared machine)."""
    out = {k: round(after[k] - before.get(k, 0.0), 2) for k in after if k != "machine busy"}
    if "machine busy" in after and "machine busy" in before:
        ours = sum(out.values())
        out["other processes"] = round(max(0.0, after["machine busy"] - before["machine busy"] - ours), 2)
    return out


def machine() -> dict[str, str | int]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = os.cpu_count() or 0
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"nproc": nproc, "cpu": cpu, "mem_bytes": mem, "python": platform.python_version(),
            "kernel": platform.release(), "grpcio": grpc.__version__}


class Stopwatch:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0

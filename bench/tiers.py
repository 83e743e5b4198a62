"""Latency per tier, measured one request at a time (concurrency 1), tier known exactly.

Method: every sampled request is bracketed by two ``GetStats`` calls (not
timed) and classified by the counter deltas — gateway: ``l1_hits`` +1 → L1,
``l2_misses`` +1 → L3 (Meta was called before answering), ``l2_hits`` +1 → L2;
TTL cache: ``l1_hits`` +1 → hit, ``l1_misses`` +1 → miss (a fetch); naive:
every request is a fetch. Production time settings (gateway replica B: L1
TTL 60 s, provisional 6 h; the TTL proxy with its TTL in real seconds).

- L2 samples: accounts the day already loaded; a request L1 has not seen —
  GetInsights with a ``page_size`` never used before (it is part of the L1 key;
  every answer fits one page), or the first GetFatigue of an account/range on
  replica B.
- L1 samples: the same requests again.
- L3 samples: the calibration account nobody else touches, disjoint 3-day
  windows (each a cold range: one FetchInsights, one Graph page at the
  sandbox's latency), GetInsights and GetFatigue alternately.
- TTL cache / naive: the page's widgets (misses use fresh ``page_size``
  values so the whole-request key is new).
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta

import grpc

from bench.accounts import BenchAccount
from bench.common import GatewayClient, percentiles, stats_delta
from bench.workload import RANGES, method_name, page_ranges, widget_request


def classify(delta: dict[str, int], kind: str) -> str:
    if kind == "gateway":
        if delta["l1_hits"] >= 1:
            return "L1"
        if delta["l2_misses"] >= 1:
            return "L3"
        if delta["l2_hits"] >= 1:
            return "L2"
        return "?"
    if kind == "ttl":
        return "hit" if delta["l1_hits"] >= 1 else "miss"
    return "L3"


class TierSampler:
    def __init__(self, address: str, metadata, kind: str, timeout_s: float = 300.0):
        self.client = GatewayClient(address, 1)
        self.md = metadata
        self.kind = kind
        self.timeout = timeout_s
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.by_kind: dict[str, list[float]] = defaultdict(list)
        self.errors = 0

    async def one(self, widget_kind: str, request) -> str:
        before = await self.client.stats(self.md)
        t = time.perf_counter()
        try:
            await self.client.method(method_name(widget_kind))(request, metadata=self.md, timeout=self.timeout)
        except grpc.aio.AioRpcError:
            self.errors += 1
            return "error"
        latency = time.perf_counter() - t
        tier = classify(stats_delta(await self.client.stats(self.md), before), self.kind)
        self.samples[tier].append(latency)
        self.by_kind[f"{tier}:{widget_kind}"].append(latency)
        return tier

    def result(self) -> dict:
        return {"tiers_ms": {k: percentiles(v) for k, v in sorted(self.samples.items())},
                "by_kind_ms": {k: percentiles(v) for k, v in sorted(self.by_kind.items())},
                "errors": self.errors}

    async def close(self) -> None:
        await self.client.close()


async def gateway_tiers(address: str, metadata, accounts: list[BenchAccount], calibration: BenchAccount,
                        n_l2: int = 80, l1_repeats: int = 2, n_l3: int = 16) -> dict:
    s = TierSampler(address, metadata, "gateway")
    try:
        page_size = 4000
        for i in range(n_l2):
            account = accounts[i % len(accounts)]
            rng = RANGES[(i // len(accounts)) % len(RANGES)]
            since, until = page_ranges(account)[rng]
            if i < len(accounts) * len(RANGES):  # first GetFatigue of this account/range on this replica
                req = widget_request("fatigue", account.account_id, since, until)
                await s.one("fatigue", req)
                for _ in range(l1_repeats):
                    await s.one("fatigue", req)
            page_size += 1
            req = widget_request("insights", account.account_id, since, until, page_size=page_size)
            await s.one("insights", req)
            for _ in range(l1_repeats):
                await s.one("insights", req)
        for j in range(n_l3):
            until = calibration.last_day - timedelta(days=3 * j)
            since = until - timedelta(days=2)
            if since < calibration.first_day:
                break
            kind = "insights" if j % 2 == 0 else "fatigue"
            await s.one(kind, widget_request(kind, calibration.account_id, since.isoformat(), until.isoformat()))
        return {**s.result(), "method": "GetStats deltas around each request (concurrency 1); L2: new L1 key "
                                        "(unused page_size / first GetFatigue on the replica); L3: cold 3-day "
                                        "windows of an untouched account"}
    finally:
        await s.close()


async def proxy_tiers(address: str, metadata, accounts: list[BenchAccount], kind: str, n_miss: int = 16,
                      hit_repeats: int = 2) -> dict:
    s = TierSampler(address, metadata, kind)
    try:
        page_size = 4000
        for i in range(n_miss):
            account = accounts[i % len(accounts)]
            rng = RANGES[(i // len(accounts)) % len(RANGES)]
            widget_kind = "insights" if i % 2 == 0 else "fatigue"
            since, until = page_ranges(account)[rng]
            page_size += 1
            if widget_kind == "insights":
                req = widget_request("insights", account.account_id, since, until, page_size=page_size)
            else:
                req = widget_request("fatigue", account.account_id, since, until)
            await s.one(widget_kind, req)
            if kind == "ttl":
                for _ in range(hit_repeats):
                    await s.one(widget_kind, req)
        return {**s.result(), "method": "GetStats deltas around each request (concurrency 1); misses: requests "
                                        "never made before (fresh page_size), hits: the same again"}
    finally:
        await s.close()

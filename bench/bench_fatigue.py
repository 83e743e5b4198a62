"""Benchmark: fatigue scoring throughput (ads scored per second).

Synthetic, seeded: 10,000 ads x 90 days (FATIGUE_SPEC.md inputs: impressions,
link clicks, spend, leads, rankings, reach_cum), generated in chunks so
memory stays small. Only ``score_ads`` is timed (row generation is not).
A second, smaller measurement runs the gRPC servicer's pure path
(``score_request``: proto -> dataclasses -> score -> proto) without the
network.

    .venv/bin/python bench/bench_fatigue.py [--ads 10000] [--days 90] [--seed 7]

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_pb2
from services.fatigue_engine.config import DEFAULT_CONFIG
from services.fatigue_engine.proto_convert import row_to_proto
from services.fatigue_engine.scoring import score_ads
from services.fatigue_engine.servicer import score_request

RANKS = ("ABOVE_AVERAGE", "AVERAGE", "BELOW_AVERAGE_35", "BELOW_AVERAGE_20", "BELOW_AVERAGE_10", "UNKNOWN")
DAY0 = date(2026, 1, 1)


def synthetic_ads(rng: np.random.Generator, n_ads: int, n_days: int, first_id: int) -> list[list[InsightRow]]:
    """``n_ads`` ads of ``n_days`` calendar days: a ramp-up trickle, lognormal daily volume,
    ~8 % zero days (no row), CTR decaying with cumulative frequency, rising CPM, leads ~ Poisson."""
    ads = []
    dates = [DAY0 + timedelta(days=i) for i in range(n_days)]
    for a in range(n_ads):
        ad_id = str(first_id + a)
        base = rng.lognormal(8.0, 1.2)
        imps = np.maximum(0, rng.lognormal(np.log(base), 0.4, n_days)).astype(np.int64)
        imps[:3] = (imps[:3] * np.array([0.001, 0.01, 0.1])).astype(np.int64)
        imps[rng.random(n_days) < 0.08] = 0
        cum = np.cumsum(imps)
        audience = base * rng.uniform(8, 40)
        reach_cum = (audience * (1 - np.exp(-cum / audience))).astype(np.int64)
        freq = np.where(reach_cum > 0, cum / np.maximum(reach_cum, 1), 1.0)
        ctr = rng.uniform(0.008, 0.03) * np.exp(-rng.uniform(0.0, 0.25) * (freq - 1))
        clicks = rng.binomial(imps, np.clip(ctr, 0, 1))
        cpm = rng.uniform(8, 20) * (1 + rng.uniform(0, 0.006) * np.arange(n_days))
        spend_cents = np.round(imps * cpm / 10).astype(np.int64)
        leads = rng.poisson(clicks * rng.uniform(0.02, 0.15))
        rank_known = rng.random() < 0.5
        rows = []
        for d in range(n_days):
            n = int(imps[d])
            if n == 0:
                continue
            k, lead = int(clicks[d]), int(leads[d])
            actions = {}
            if k:
                actions["link_click"] = Decimal(k)
            if lead:
                actions["lead"] = Decimal(lead)
            r = RANKS[int(rng.integers(0, 5))] if rank_known and n >= 500 else "UNKNOWN"
            rows.append(InsightRow(
                account_id="1001", ad_id=ad_id, date_start=dates[d], date_stop=dates[d], impressions=n,
                inline_link_clicks=k, clicks=k, spend=Decimal(int(spend_cents[d])).scaleb(-2),
                actions=actions or None, quality_ranking=r, engagement_rate_ranking=r, conversion_rate_ranking=r,
                reach_cum=int(reach_cum[d]),
            ))
        ads.append(rows)
    return ads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ads", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--servicer-ads", type=int, default=1_000, help="ads for the proto path measurement")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    scored_time = 0.0
    rows_total = 0
    levels: Counter[str] = Counter()
    forecasts: Counter[str] = Counter()
    for start in range(0, args.ads, args.chunk):
        chunk = synthetic_ads(rng, min(args.chunk, args.ads - start), args.days, 10**14 + start)
        rows_total += sum(len(a) for a in chunk)
        t0 = time.perf_counter()
        results = score_ads(chunk, DEFAULT_CONFIG)
        scored_time += time.perf_counter() - t0
        levels.update(r.level.value for r in results)
        forecasts.update("days_to_critical=0" if r.forecast.days_to_critical == 0 else
                         "days_to_critical>0" if r.forecast.days_to_critical else
                         "projected, no crossing" if r.forecast.projected_scores else "no forecast"
                         for r in results)

    print(f"fatigue_engine benchmark  python {platform.python_version()}  {platform.machine()}  seed {args.seed}")
    print(f"score_ads: {args.ads} ads x {args.days} days ({rows_total} delivery-day rows) "
          f"in {scored_time:.2f} s -> {args.ads / scored_time:,.0f} ads/s "
          f"({scored_time / args.ads * 1e6:.0f} us/ad)")
    print("levels:", dict(sorted(levels.items())))
    print("forecasts:", dict(sorted(forecasts.items())))

    if args.servicer_ads:
        ads = synthetic_ads(np.random.default_rng(args.seed + 1), args.servicer_ads, args.days, 2 * 10**14)
        request = fatigue_engine_pb2.ScoreAdsRequest(account_id="1001", insights_version=1, ads=[
            fatigue_pb2.AdSeries(ad_id=a[0].ad_id, days=[row_to_proto(r) for r in a]) for a in ads])
        t0 = time.perf_counter()
        response = score_request(request)
        elapsed = time.perf_counter() - t0
        print(f"score_request (proto in -> proto out, no network): {len(response.results)} ads in {elapsed:.2f} s "
              f"-> {len(response.results) / elapsed:,.0f} ads/s; request {request.ByteSize() / 1e6:.1f} MB, "
              f"response {response.ByteSize() / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

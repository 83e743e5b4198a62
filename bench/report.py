"""The benchmark's outputs: a Markdown report, the JSON of every number, and a PNG chart."""

from __future__ import annotations

import statistics

import json
from pathlib import Path

CONTENDERS = ("naive", "ttl", "gateway")


def _ms(p: dict | None, key: str) -> str:
    if not p or p.get("n", 0) == 0 or key not in p:
        return "–"
    v = p[key]
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _trio(p: dict | None) -> str:
    if not p or not p.get("n"):
        return "–"
    return f"{_ms(p, 'p50')} / {_ms(p, 'p95')} / {_ms(p, 'p99')}"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _int(x) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _mib(x) -> str:
    return "–" if not x else f"{x / 2**20:.1f} MiB"


def _paired_ratio(a: dict, b: dict) -> float:
    """Throughput of ``a`` over ``b``: the median of the per-round ratios when both ran the same rounds (each pair ran
    back to back, so a slower minute of the machine falls on both), else the ratio of their results."""
    ra, rb = a.get("rounds_rps") or [], b.get("rounds_rps") or []
    if ra and len(ra) == len(rb):
        return statistics.median(x / y for x, y in zip(ra, rb))
    return a["requests_per_s"] / b["requests_per_s"]


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def issue14_targets(r: dict) -> list[str]:
    """Issue 14's targets as ratios measured in this run (they hold on any machine)."""
    c, tp = r.get("contenders", {}), r.get("throughput", {})
    gw_, ttl = c.get("gateway"), c.get("ttl")
    sfm, mixed, subs, floor = r.get("serve_from_memory", {}), r.get("mixed_load"), r.get("subscribers", {}), \
        r.get("fanout_floor", {})
    rows = []
    if gw_ and ttl:
        for p, target in (("p50", 0.3), ("p99", 0.5)):
            ratio = gw_["page_load_ms"][p] / ttl["page_load_ms"][p]
            rows.append(f"| page load {p} vs the plain TTL cache | ≤ {target}× | {ratio:.2f}× "
                        f"({_ms(gw_['page_load_ms'], p)} / {_ms(ttl['page_load_ms'], p)} ms){_verdict(ratio <= target)} |")
    if tp.get("gateway") and tp.get("ttl"):
        ratio = _paired_ratio(tp["gateway"], tp["ttl"])
        rounds = len(tp["gateway"].get("rounds_rps", [])) or 1
        rows.append(f"| throughput at saturation vs the plain TTL cache (median of {rounds} rounds' ratios) | ≥ 1.2× "
                    f"| {ratio:.2f}× ({_int(tp['gateway']['requests_per_s'])} / {_int(tp['ttl']['requests_per_s'])} "
                    f"/s, median rounds){_verdict(ratio >= 1.2)} |")
        if tp.get("bare"):
            ceiling = _paired_ratio(tp["bare"], tp["ttl"])
            rows.append(f"| … the ceiling: a bare grpc.aio server answering the same bytes from a dict, vs the TTL "
                        f"cache | (≥ 1.2× possible only below this) | {ceiling:.2f}× "
                        f"({_int(tp['bare']['requests_per_s'])} /s; gateway = "
                        f"{_paired_ratio(tp['gateway'], tp['bare']):.2f}× bare) |")
    e = sfm.get("echo")
    if e:
        ok = e["ratio_p50"] <= 1.3 and e["ratio_p99"] <= 1.3
        rows.append(f"| L1 hit p50 / p99 vs a bare grpc.aio echo of the same bytes | ≤ 1.3× | "
                    f"{e['ratio_p50']:.2f}× / {e['ratio_p99']:.2f}×{_verdict(ok)} |")
    sp, cr = sfm.get("steady_pages"), sfm.get("custom_range_page")
    if sp:
        rows.append(f"| L2 reads per page load, steady state | 0 | {sp['l2_reads_per_page_load']:.2f}"
                    + (f" (custom-range pages {cr['l2_reads_per_page_load']:.2f})" if cr else "")
                    + f"{_verdict(sp['l2_reads_per_page_load'] == 0)} |")
    if cr:
        rows.append(f"| custom-range page p50 vs a bare server returning the same bytes | small multiple | "
                    f"{cr['ratio_p50']:.1f}× ({_ms(cr['gateway_page_ms'], 'p50')} / {_ms(cr['bare_page_ms'], 'p50')} ms) |")
    if subs.get("write_to_receipt_ms") and floor.get("p99"):
        p99, fp99 = subs["write_to_receipt_ms"]["p99"], floor["p99"]
        rows.append(f"| {subs['subscribers']:,} subscribers on 2 replicas: write → receipt p99 vs the bare fan-out "
                    f"floor; and absolute | ≤ 1.5×, < 100 ms | {p99 / fp99:.2f}× ({_ms(subs['write_to_receipt_ms'], 'p99')}"
                    f" / {_ms(floor, 'p99')} ms){_verdict(p99 / fp99 <= 1.5 and p99 < 100)} |")
    if mixed:
        u, rss = mixed["unary_ms"], mixed.get("rss_idle_vs_before") or 0
        errors = sum(mixed["errors"].values())
        rows.append(f"| mixed load: unary p99, errors, RSS after {mixed['idle_s']:.0f} s idle vs before | ≤ 100 ms, 0, "
                    f"within 10 % | {_ms(u, 'p99')} ms, {errors}, {100 * (rss - 1):+.1f} %"
                    f"{_verdict(u['p99'] <= 100 and errors == 0 and abs(rss - 1) <= 0.10)} |")
    mem = r.get("replica_memory")
    if mem:
        rows.append(f"| bytes per resident account, real sample ({mem['rows']:,} rows) | reported | "
                    f"{_mib(mem['estimate_bytes'])} charged to L1_MAX_BYTES ({_mib(mem['measured_bytes'])} measured "
                    f"by tracemalloc) |")
    if not rows:
        return []
    return ["", "## Targets (issue 14: serve from memory; ratios within this run)", "",
            "| measure | target | measured |", "|---|---|---|", *rows]


def markdown(r: dict) -> str:
    m = r["meta"]
    c = r.get("contenders", {})
    cols = [k for k in CONTENDERS if k in c]
    labels = {k: c[k]["label"] for k in cols}
    lines = [
        f"# adfatigue benchmark — {m['date_utc']}",
        "",
        f"Machine: {m['machine']['cpu']}, `nproc` = {m['machine']['nproc']}, "
        f"{m['machine']['mem_bytes'] / 2**30:.1f} GiB RAM; Python {m['machine']['python']}, "
        f"grpcio {m['machine']['grpcio']}; L2 store: {m['store']}. Everything on this one machine, over loopback.",
        f"Command: `{m['command']}` — finished in {m['wall_s'] / 60:.1f} min. Other processes on the machine "
        f"used {100 * m.get('other_processes_cpu_share', 0):.0f} % of its CPU during the run"
        + (" — **the machine was shared: numbers may be slower than this system alone**."
           if m.get("other_processes_cpu_share", 0) > 0.1 else "."),
        "",
        f"Workload: {m['accounts']} ad accounts × 6 ads × {m['history_days']} days; an 8-hour working day "
        f"compressed {m['compression']:g}× into {m['day_seconds']:g} s; {m['page_loads']} page loads of "
        "`/ad-fatigue` (each 8 widgets at once: GetInsights + GetFatigue × last 7 / 14 / 28 days / lifetime), "
        f"{m['restatements']} restatements; Meta answers each Graph call after {m['meta_latency_ms']} ms "
        "(sandbox latency fault; real Meta takes seconds). Every time setting is divided by the compression "
        "(gateway L1 safety-net TTL 300 s → "
        f"{300 / m['compression']:.3g} s, provisional refresh 6 h → {21600 / m['compression']:.3g} s, "
        f"TTL cache {m['ttl_minutes']:g} min → {m['ttl_minutes'] * 60 / m['compression']:.3g} s). "
        "The day starts warm (every account's page loaded once before it, not counted: *cold start* row).",
    ]
    if m.get("baseline_scaled"):
        lines.append(f"Naive and TTL cache ran only the page loads of {m['baseline_accounts']} of the visited "
                     f"accounts (1/{m['baseline_scale']:.1f} of the traffic: they cannot serve all of it in the day); "
                     f"their call counts are scaled × {m['baseline_scale']:.2f} (marked *), and their latencies are "
                     "at that lighter load.")
    lines += ["", "## Side by side (the simulated day)", "",
              "| | " + " | ".join(labels[k] for k in cols) + " |",
              "|---|" + "---:|" * len(cols)]

    def row(name: str, fn) -> None:
        lines.append(f"| {name} | " + " | ".join(fn(k, c[k]) for k in cols) + " |")

    naive_calls = c.get("naive", {}).get("meta_calls_scaled")

    def star(k: str) -> str:
        return "*" if m.get("baseline_scaled") and k != "gateway" else ""

    row("Meta calls (Graph HTTP requests, counted at the sandbox)",
        lambda k, x: _int(x["meta_calls_scaled"]) + star(k))
    row("… vs naive", lambda k, x: "—" if k == "naive" or not naive_calls
        else f"−{100 * (1 - x['meta_calls_scaled'] / naive_calls):.1f} %")
    row("… busiest simulated hour (app budget: 200/h)",
        lambda k, x: _int(max(x["meta_calls_per_sim_hour"]) * x["scale"]) + star(k)
        if x["meta_calls_per_sim_hour"] else "–")
    row("FetchInsights calls", lambda k, x: _int(x["fetch_insights_calls"] * x["scale"]) + star(k))
    row("cache hit rate (answered without waiting on Meta)", lambda k, x: _pct(x["hit_rate"]))
    row("… L1 / L2 hit rate", lambda k, x: f"{_pct(x['l1_hit_rate'])} / {_pct(x['l2_hit_rate'])}"
        if k == "gateway" else "—")
    row("widget latency p50 / p95 / p99 (ms)", lambda k, x: _trio(x["latency_ms"]))
    row("page load p50 / p95 / p99 (ms, from arrival)", lambda k, x: _trio(x["page_load_ms"]))
    row("stale answers, silent (behind a restatement, said FRESH) / answers checked",
        lambda k, x: f"{x['stale']['silent_stale']} / {x['stale']['insights_answers_checked']}")
    row("answers marked stale (STALE_REVALIDATING / _UPSTREAM_ERROR) / all answers",
        lambda k, x: f"{x['stale']['marked_stale_answers']} / {x['ok']}")
    row("errors / unfinished page loads",
        lambda k, x: f"{sum(x['errors'].values())} / {x['unfinished_page_loads']}")
    tp = r.get("throughput", {})
    row("throughput at saturation (answers/s, "
        f"{next(iter(tp.values()), {}).get('clients', '?')} clients, production settings)",
        lambda k, x: _int(tp.get(k, {}).get("requests_per_s")))
    mem = r.get("memory", {})
    row("process RSS after the day (peak)",
        lambda k, x: f"{_mib(mem.get(k, {}).get('VmRSS'))} ({_mib(mem.get(k, {}).get('VmHWM'))})")
    row("cached bytes, peak of hourly samples in the day (L1 for the gateway)",
        lambda k, x: "—" if k == "naive" else f"{x['cache_bytes_peak'] / 2**20:.2f} MiB "
                                              f"({x['cache_entries_peak']} entries)")
    row("cached bytes after the throughput test (production TTLs)",
        lambda k, x: "—" if k == "naive" or k not in tp else f"{tp[k]['cache_bytes'] / 2**20:.2f} MiB "
                                                               f"({tp[k]['cache_entries']} entries)")
    row("cold start: warm-up wall time / Meta calls",
        lambda k, x: f"{x['warmup']['seconds']:.1f} s / {_int(x['warmup']['meta_calls'])}")
    gw = c.get("gateway", {})
    if gw.get("subscriptions"):
        s = gw["subscriptions"]
        lines.append("")
        lines.append(f"Gateway only: {s['opened']} Subscribe streams were open while pages were (snapshot "
                     f"p50/p95/p99 {_trio(s['snapshot_ms'])} ms); restatement acknowledged by Meta → open page "
                     f"p50/p95/p99 {_trio(s['restatement_to_open_page_ms'])} ms (n = "
                     f"{s['restatement_to_open_page_ms'].get('n', 0)}; includes the forced Refresh's Meta call); "
                     f"Refresh after a restatement {_trio(gw.get('refresh_ms'))} ms. The alternatives have no push: "
                     "a page sees a restatement only when reloaded.")
    # targets
    micro = r.get("micro", {})
    tiers = r.get("tiers", {})
    subs = r.get("subscribers", {})
    lines += ["", "## Targets (DESIGN.md §4)", "", "| measure | target (ours) | measured |", "|---|---|---|"]
    if gw:
        lines.append(f"| cache hit rate, steady page traffic | ≥ 99 % | {_pct(gw.get('hit_rate'))} |")
        if naive_calls:
            lines.append(f"| Meta calls vs one call per widget load | −97 % | "
                         f"−{100 * (1 - gw['meta_calls_scaled'] / naive_calls):.1f} % |")
    l1 = micro.get("l1_sequential_7d")
    if l1:
        lines.append(f"| L1 hit p50 / p95 / p99 (gRPC, loopback) | 0.5 / 1 / 2 ms | {_trio(l1)} ms |")
    l2 = tiers.get("gateway", {}).get("tiers_ms", {}).get("L2")
    if l2:
        lines.append(f"| L2 hit p99 | 10 ms | {_ms(l2, 'p99')} ms (all widgets; 7-day GetInsights: "
                     f"{_ms(micro.get('l2_hit_7d'), 'p99')} ms) |")
    l3 = tiers.get("gateway", {}).get("tiers_ms", {}).get("L3")
    if l3:
        lines.append(f"| L3 (Meta) p99 | 3 s + Meta's own time | {_ms(l3, 'p99')} ms with Meta at "
                     f"{m['meta_latency_ms']} ms per call |")
    if subs.get("write_to_receipt_ms"):
        lines.append(f"| change → subscriber, {subs['subscribers']:,} subscribers | p99 < 100 ms | "
                     f"p99 {_ms(subs['write_to_receipt_ms'], 'p99')} ms |")
    lines += issue14_targets(r)
    # tiers
    if tiers:
        lines += ["", "## Latency per tier (one request at a time, tier verified by GetStats; production settings)",
                  "", "| contender | tier | n | p50 | p95 | p99 | max (ms) |", "|---|---|---:|---:|---:|---:|---:|"]
        for k in CONTENDERS:
            for tier, p in tiers.get(k, {}).get("tiers_ms", {}).items():
                lines.append(f"| {labels.get(k, k)} | {tier} | {p['n']} | {_ms(p, 'p50')} | {_ms(p, 'p95')} | "
                             f"{_ms(p, 'p99')} | {_ms(p, 'max')} |")
        if any("latency_by_tier_ms" in c[k] for k in cols):
            lines.append("")
            lines.append("Under the day's load, by the tier the gateway reported: " + "; ".join(
                f"{t} {_trio(p)} ms (n = {p['n']})" for t, p in gw.get("latency_by_tier_ms", {}).items()))
    if micro:
        lines += ["", "## Micro-benchmarks", "", "| benchmark | result | method |", "|---|---|---|"]
        for name, v in micro.items():
            if "skipped" in v:
                lines.append(f"| {name} | skipped | {v['skipped']} |")
            elif name == "join_vs_encode":
                lines.append(f"| rows joined vs encoded | {v['rows']:,} rows: encode {v['encode_ms']:.1f} ms, join "
                             f"{v['join_ms']:.2f} ms ({v['speedup']:,.0f}×) | {v['method']} |")
            elif name == "gc_full_collection":
                lines.append(f"| full garbage collection, gateway heap | {v['unfrozen']['ms']:.1f} ms walking "
                             f"{v['unfrozen']['walked']:,} objects; start-up frozen {v['frozen']['ms']:.1f} ms "
                             f"walking {v['frozen']['walked']:,} ({v['ratio']:.2f}×) | {v['method']} |")
            elif name == "planner":
                lines.append(f"| planner | {v['p50_ms']:.2f} ms per plan ({v['days']} days → {v['ranges_planned']} "
                             f"ranges) | {v['method']} |")
            elif name == "fatigue_scoring":
                lines.append(f"| fatigue scoring | {v['ads_per_s']:,.0f} ads/s ({v['us_per_ad']:.0f} µs/ad) | "
                             f"{v['method']} |")
            else:
                extra = f", {v['requests_per_s']:,.0f} req/s" if "requests_per_s" in v else ""
                lines.append(f"| {name} | p50 / p95 / p99 {_trio(v)} ms{extra} | {v['method']} |")
    sfm = r.get("serve_from_memory", {})
    mixed = r.get("mixed_load", {})
    if sfm or mixed:
        lines += ["", "## Serving from memory (issue 14; gateway replica B, production settings)", "",
                  "| measure | target | gateway | bare grpc.aio | ratio |", "|---|---|---:|---:|---:|"]
        e = sfm.get("echo")
        if e:
            lines.append(f"| L1 hit vs echo of the same bytes, p50 / p99 (ms; {e['reply_bytes']:,} B reply, "
                         f"{e['verified_l1_hits']:,} verified hits) | ≤ 1.3× | {_ms(e['gateway_l1_ms'], 'p50')} / "
                         f"{_ms(e['gateway_l1_ms'], 'p99')} | {_ms(e['bare_echo_ms'], 'p50')} / "
                         f"{_ms(e['bare_echo_ms'], 'p99')} | {e['ratio_p50']:.2f}× / {e['ratio_p99']:.2f}× |")
        cr = sfm.get("custom_range_page")
        if cr:
            lines.append(f"| custom-range page (real account, {cr['rows']:,} rows, random end date, 8 widgets), "
                         f"p50 / p99 (ms; {cr['pages']} pages) | small multiple | {_ms(cr['gateway_page_ms'], 'p50')} / "
                         f"{_ms(cr['gateway_page_ms'], 'p99')} | {_ms(cr['bare_page_ms'], 'p50')} / "
                         f"{_ms(cr['bare_page_ms'], 'p99')} | {cr['ratio_p50']:.1f}× / {cr['ratio_p99']:.1f}× |")
        lines.append("")
        sl = sfm.get("small_while_large")
        if sl:
            lines.append(f"- Small answers (L1-hit GetInsights 7d, one at a time) p50 / p99: alone "
                         f"{_ms(sl['alone_ms'], 'p50')} / {_ms(sl['alone_ms'], 'p99')} ms; while 4 tasks ask large "
                         f"ones ({sl['large_answers']} lifetime answers of the real account, never memoised) "
                         f"{_ms(sl['with_large_ms'], 'p50')} / {_ms(sl['with_large_ms'], 'p99')} ms.")
        sp = sfm.get("steady_pages")
        if sp:
            lines.append(f"- L2 reads per page load, steady state ({sp['page_loads']} page loads of warm "
                         f"accounts): **{sp['l2_reads_per_page_load']:.2f}** (target 0)"
                         + (f"; custom-range pages: {cr['l2_reads_per_page_load']:.2f}" if cr else "")
                         + (f"; in the simulated day (restatements, due days, TTL reloads): "
                            f"{gw['l2_reads_per_page_load']:.2f}" if gw.get("l2_reads_per_page_load") is not None
                            else "") + ".")
        if mixed:
            u = mixed["unary_ms"]
            lines.append(f"- Mixed load ({mixed['callers']} callers + {mixed['streams']} streams + 1 write/s for "
                         f"{mixed['seconds']:.0f} s, {mixed['writes']} writes): unary p50 / p99 "
                         f"{_ms(u, 'p50')} / {_ms(u, 'p99')} ms (target p99 ≤ 100 ms), "
                         f"{mixed['unary_per_s']:,.0f} answers/s, errors {sum(mixed['errors'].values())} "
                         f"(target 0); gateway RSS {_mib(mixed['rss_before'])} before → "
                         f"{_mib(mixed['rss_after_load'])} after → {_mib(mixed['rss_after_idle'])} after "
                         f"{mixed['idle_s']:.0f} s idle ({100 * ((mixed['rss_idle_vs_before'] or 1) - 1):+.1f} %; "
                         "target within 10 %).")

    if subs:
        lines += ["", f"## Subscribers (issue 5): {subs['subscribers']:,} Subscribe streams on "
                      f"{len(subs['replicas'])} gateway replicas",
                  "", f"Streams opened in {subs['open_s']:.1f} s (snapshot p50/p95/p99 {_trio(subs['snapshot_ms'])} "
                      f"ms). {subs['rounds']} changes to {subs['hot_accounts']} account(s), each delivered to every "
                      f"subscriber: {subs['delivered']:,} of {subs['expected_deliveries']:,} received, "
                      f"{subs['lost']} lost, {subs['wrong_content']} with wrong content, "
                      f"{subs['stream_errors']} stream errors; fatigue scores not received within the round: "
                      f"{subs.get('scores_not_received_in_round', 0)}.", "",
                  "| measure | n | p50 | p95 | p99 | max (ms) |", "|---|---:|---:|---:|---:|---:|"]
        names = {"write_to_receipt_ms": "write (MongoDB commit wallTime) → receipt",
                 "commit_seen_to_receipt_ms": "gateway saw the commit (committed_at) → receipt",
                 "refresh_sent_to_receipt_ms": "Refresh sent → receipt (upper bound)",
                 "scores_write_to_receipt_ms": "write → fatigue scores received"}
        for key, name in names.items():
            p = subs.get(key)
            if p and p.get("n"):
                lines.append(f"| {name} | {p['n']:,} | {_ms(p, 'p50')} | {_ms(p, 'p95')} | {_ms(p, 'p99')} | "
                             f"{_ms(p, 'max')} |")
        floor = r.get("fanout_floor")
        if floor and floor.get("n"):
            lines.append(f"| transport floor: bare grpc.aio fan-out, same streams/processes | {floor['n']:,} | "
                         f"{_ms(floor, 'p50')} | {_ms(floor, 'p95')} | {_ms(floor, 'p99')} | {_ms(floor, 'max')} |")
    lines += ["", "## How the numbers are made", ""]
    lines += [f"- {n}" for n in r.get("notes", [])]
    lines.append("")
    return "\n".join(lines)


def chart(r: dict, path: Path) -> str | None:
    """Write the PNG; returns None, or why it was not written (matplotlib missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no PNG written"
    c = r.get("contenders", {})
    cols = [k for k in CONTENDERS if k in c]
    short = {"naive": "naive\npass-through", "ttl": "plain\nTTL cache", "gateway": "adfatigue\ngateway"}
    labels = [short[k] for k in cols]
    colors = {"naive": "#c44e52", "ttl": "#dd8452", "gateway": "#4c72b0"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle(f"adfatigue benchmark {r['meta']['date_utc']} — {r['meta']['accounts']} accounts, "
                 f"{r['meta']['machine']['nproc']} cores ({r['meta']['machine']['cpu']})", fontsize=11)

    ax = axes[0][0]
    vals = [c[k]["meta_calls_scaled"] or 0 for k in cols]
    ax.bar(labels, vals, color=[colors[k] for k in cols])
    ax.set_yscale("log")
    ax.set_title("Meta calls in the simulated day (log)")
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)

    ax = axes[0][1]
    vals = [100 * (c[k]["hit_rate"] or 0) for k in cols]
    ax.bar(labels, vals, color=[colors[k] for k in cols])
    ax.set_ylim(0, 105)
    ax.set_title("cache hit rate (%)")
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=9)

    ax = axes[0][2]
    width = 0.25
    for j, q in enumerate(("p50", "p95", "p99")):
        ys = [max(c[k]["latency_ms"].get(q, 0), 0.01) for k in cols]
        ax.bar([i + (j - 1) * width for i in range(len(cols))], ys, width, label=q)
    ax.set_xticks(range(len(cols)), labels)
    ax.set_yscale("log")
    ax.set_title("widget latency under the day's load (ms, log)")
    ax.legend()

    ax = axes[1][0]
    tiers = r.get("tiers", {})
    names, p50, p99 = [], [], []
    for k in CONTENDERS:
        for tier, p in tiers.get(k, {}).get("tiers_ms", {}).items():
            if p.get("n"):
                names.append(f"{short[k].split(chr(10))[-1] if k != 'naive' else 'naive'}\n{tier}")
                p50.append(p["p50"])
                p99.append(p["p99"])
    if names:
        ax.bar([i - 0.2 for i in range(len(names))], p50, 0.4, label="p50")
        ax.bar([i + 0.2 for i in range(len(names))], p99, 0.4, label="p99")
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_yscale("log")
        ax.legend(loc="upper center")
    ax.set_title("latency per tier, concurrency 1 (ms, log)")

    ax = axes[1][1]
    tp = r.get("throughput", {})
    tcols = [k for k in cols if k in tp]
    vals = [tp[k]["requests_per_s"] for k in tcols]
    ax.bar([short[k] for k in tcols], vals, color=[colors[k] for k in tcols])
    ax.set_yscale("log")
    ax.set_title("throughput at saturation (answers/s, log)")
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=9)

    ax = axes[1][2]
    subs = r.get("subscribers", {})
    bars = [(n, subs.get(key)) for n, key in (("write→\nreceipt", "write_to_receipt_ms"),
                                                ("committed_at→\nreceipt", "commit_seen_to_receipt_ms"),
                                                ("scores", "scores_write_to_receipt_ms"))]
    if r.get("fanout_floor", {}).get("n"):
        bars.append(("grpc.aio\nfloor", r["fanout_floor"]))
    bars = [(n, p) for n, p in bars if p and p.get("n")]
    if bars:
        for j, q in enumerate(("p50", "p95", "p99")):
            ax.bar([i + (j - 1) * 0.25 for i in range(len(bars))], [p[q] for _, p in bars], 0.25, label=q)
        ax.set_xticks(range(len(bars)), [n for n, _ in bars], fontsize=8)
        ax.axhline(100, color="grey", linestyle="--", linewidth=1)
        ax.legend()
    ax.set_title(f"{subs.get('subscribers', 0):,} subscribers: change → receipt (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(r: dict, directory: Path, name: str) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / f"{name}.json", "md": directory / f"{name}.md", "png": directory / f"{name}.png"}
    why = chart(r, paths["png"])
    if why:
        r.setdefault("notes", []).append(why)
        paths.pop("png")
    paths["md"].write_text(markdown(r))
    paths["json"].write_text(json.dumps(r, indent=2, default=str))
    return paths

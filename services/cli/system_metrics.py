"""The original design's SystemMetrics view, computed from the services' Prometheus ``/metrics``.

``collect(urls)`` scrapes each service's endpoint (text exposition format, parsed by
``prometheus_client``) and returns a ``SystemMetrics``: cumulative since each process started,
the same expressions as the recording rules of k8s/monitoring/adfatigue.rules.yml without their
5-minute windows:

* hit rate = reads answered from L1 or L2 / all reads (``adfatigue_cache_reads_total``);
* apiCallReduction = reads answered without a Meta call of their own / (those + Meta calls);
* p50 / p95 / p99 per tier (l1, l2, l3) from ``rpc_server_call_duration_seconds`` (its ``tier`` label), by the
  algorithm of PromQL's ``histogram_quantile`` (linear within the bucket);
* memory = resident set size per service (``process_memory_usage_bytes``, system-metrics);
* error rate = gRPC calls ending UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE or DATA_LOSS /
  all served calls (``rpc_server_call_duration_seconds_count``).

``alerts(metrics)`` evaluates the thresholds of the Prometheus alerts on those numbers (without
the rules' ``for`` durations, which need a time series): what would fire now.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: gRPC status codes counted as errors (a server fault or unavailability, not a caller's mistake).
ERROR_CODES = frozenset({"2", "4", "13", "14", "15"})
TIERS = ("l1", "l2", "l3")
QUANTILES = (0.5, 0.95, 0.99)
#: Thresholds of the alerts in k8s/monitoring/adfatigue.rules.yml (a test keeps them equal).
META_FAILURE_RATIO_MAX = 0.05
CACHE_HIT_RATIO_MIN = 0.90
META_BUDGET_USED_MAX = 0.90
META_USAGE_MAX = 0.85
DELIVERY_P99_MAX_S = 0.1
#: The original design's targets, shown beside the numbers.
TARGETS = {"hit_rate": 0.95, "api_call_reduction": 0.90, "error_rate": 0.001}

Sample = tuple[str, Mapping[str, str], float]


@dataclass
class SystemMetrics:
    services_up: dict[str, bool] = field(default_factory=dict)
    reads: int = 0
    hit_rate: float | None = None
    api_call_reduction: float | None = None
    meta_calls: int = 0
    meta_calls_avoided: int = 0
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)   # tier -> p50/p95/p99
    tier_reads: dict[str, int] = field(default_factory=dict)
    memory_bytes: dict[str, int] = field(default_factory=dict)
    rpc_calls: int = 0
    error_rate: float | None = None
    meta_requests: int = 0
    meta_failure_ratio: float | None = None
    meta_budget_limit: int | None = None
    meta_budget_granted: int = 0
    meta_usage_max: float | None = None
    delivery_p99_ms: float | None = None
    audit_dropped: int = 0
    last_cycle_at: float | None = None
    collected_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


def scrape(url: str, timeout_s: float = 5.0) -> list[Sample]:
    """Every sample of one ``/metrics`` endpoint; raises httpx.HTTPError when it does not answer."""
    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(response.text)
            for s in family.samples]


def _sum(samples: Iterable[Sample], name: str, **match: str) -> float:
    return sum(v for n, labels, v in samples if n == name and all(labels.get(k) == w for k, w in match.items()))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """PromQL's ``histogram_quantile`` over cumulative ``{le: count}`` (``inf`` included); None if empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # in the +Inf bucket: the highest finite bound
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _buckets(samples: Iterable[Sample], name: str, **match: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for n, labels, v in samples:
        if n == f"{name}_bucket" and all(labels.get(k) == w for k, w in match.items()):
            le = float(labels["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def compute(by_service: Mapping[str, list[Sample] | None]) -> SystemMetrics:
    """The view from each service's samples (None: the service did not answer)."""
    m = SystemMetrics(services_up={name: samples is not None for name, samples in by_service.items()})
    every = [s for samples in by_service.values() if samples for s in samples]
    l1 = _sum(every, "adfatigue_cache_reads_total", tier="l1")
    hits = _sum(every, "adfatigue_cache_reads_total", outcome="hit")
    m.reads, m.hit_rate = int(l1), _ratio(hits, l1)
    m.meta_calls = int(_sum(every, "adfatigue_meta_calls_total"))
    m.meta_calls_avoided = int(_sum(every, "adfatigue_meta_calls_avoided_total"))
    m.api_call_reduction = _ratio(m.meta_calls_avoided, m.meta_calls_avoided + m.meta_calls)
    for tier in TIERS:
        buckets = _buckets(every, "rpc_server_call_duration_seconds", tier=tier)
        m.tier_reads[tier] = int(_sum(every, "rpc_server_call_duration_seconds_count", tier=tier))
        m.latency_ms[tier] = {f"p{round(q * 100)}": (None if (v := histogram_quantile(q, buckets)) is None else v * 1000)
                              for q in QUANTILES}
    for name, samples in by_service.items():
        if samples:
            rss = _sum(samples, "process_memory_usage_bytes")
            m.memory_bytes[name] = int(rss or _sum(samples, "process_resident_memory_bytes"))
    calls = [(labels, v) for n, labels, v in every if n == "rpc_server_call_duration_seconds_count"]
    m.rpc_calls = int(sum(v for _, v in calls))
    m.error_rate = _ratio(sum(v for labels, v in calls if labels.get("rpc_grpc_status_code") in ERROR_CODES),
                          m.rpc_calls)
    m.meta_requests = int(_sum(every, "adfatigue_meta_requests_total"))
    failures = _sum(every, "adfatigue_meta_requests_total", outcome="error") - \
        _sum(every, "adfatigue_meta_requests_total", outcome="error", error_class="not_found")  # as the alert
    m.meta_failure_ratio = _ratio(failures, m.meta_requests)
    limits = [v for n, _, v in every if n == "adfatigue_meta_budget_limit"]
    m.meta_budget_limit = int(max(limits)) if limits else None
    m.meta_budget_granted = int(_sum(every, "adfatigue_meta_budget_acquisitions_total", outcome="granted"))
    usage = [v for n, _, v in every if n == "adfatigue_meta_usage"]
    m.meta_usage_max = max(usage) if usage else None
    delivery = histogram_quantile(0.99, _buckets(every, "adfatigue_subscriptions_delivery_duration_seconds"))
    m.delivery_p99_ms = None if delivery is None else delivery * 1000
    m.audit_dropped = int(_sum(every, "adfatigue_audit_entries_total", outcome="dropped"))
    cycles = [v for n, _, v in every if n == "adfatigue_scheduler_last_cycle_seconds"]
    m.last_cycle_at = max(cycles) if cycles else None
    return m


def collect(urls: Mapping[str, str], timeout_s: float = 5.0) -> SystemMetrics:
    """Scrape every service's ``/metrics`` (a service that does not answer counts as down)."""
    by_service: dict[str, list[Sample] | None] = {}
    for name, url in urls.items():
        try:
            by_service[name] = scrape(url, timeout_s)
        except (httpx.HTTPError, ValueError):
            by_service[name] = None
    return compute(by_service)


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    firing: bool
    detail: str


def alerts(m: SystemMetrics, now: float | None = None) -> list[Alert]:
    """The alerts of adfatigue.rules.yml, evaluated on the cumulative numbers (no ``for`` windows)."""
    now = time.time() if now is None else now
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"
    out = []
    fail = m.meta_failure_ratio
    out.append(Alert("MetaCallFailureRatioHigh", "critical", fail is not None and fail > META_FAILURE_RATIO_MAX,
                     f"Meta call failure ratio {pct(fail)} (fires above {META_FAILURE_RATIO_MAX:.0%})"))
    out.append(Alert("CacheHitRatioLow", "warning", m.hit_rate is not None and m.hit_rate < CACHE_HIT_RATIO_MIN,
                     f"cache hit ratio {pct(m.hit_rate)} (fires below {CACHE_HIT_RATIO_MIN:.0%})"))
    recent = m.last_cycle_at is not None and now - m.last_cycle_at <= 600
    out.append(Alert("RefreshCycleCompleted", "info", recent,
                     "no refresh cycle finished yet" if m.last_cycle_at is None else
                     f"last refresh cycle finished {max(0, now - m.last_cycle_at):.0f} s ago (shown for 10 min)"))
    used = _ratio(m.meta_budget_granted, m.meta_budget_limit or 0)
    over = (used is not None and used > META_BUDGET_USED_MAX) or (
        m.meta_usage_max is not None and m.meta_usage_max > META_USAGE_MAX)
    out.append(Alert("MetaBudgetNearlyExhausted", "warning", over,
                     f"budget granted {m.meta_budget_granted} of {m.meta_budget_limit or 'n/a'} per window since start"
                     f" (fires above {META_BUDGET_USED_MAX:.0%} in the last hour), Meta-reported usage "
                     f"{pct(m.meta_usage_max)} (fires above {META_USAGE_MAX:.0%})"))
    slow = m.delivery_p99_ms
    out.append(Alert("SubscriberDeliverySlow", "warning", slow is not None and slow > DELIVERY_P99_MAX_S * 1000,
                     "no change delivered yet" if slow is None else
                     f"change-to-subscriber p99 {slow:.1f} ms (fires above {DELIVERY_P99_MAX_S * 1000:.0f} ms)"))
    out.append(Alert("AuditEntriesDropped", "critical", m.audit_dropped > 0,
                     f"{m.audit_dropped} audit entries dropped (must stay 0)"))
    down = sorted(name for name, up in m.services_up.items() if not up)
    out.append(Alert("ServiceDown", "critical", bool(down),
                     f"not answering: {', '.join(down)}" if down else f"{len(m.services_up)} services answer"))
    return out


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}" if unit else f"{value:.1%}"


def render(m: SystemMetrics) -> str:
    """The SystemMetrics view as text (units in the column heads)."""
    lines = ["system metrics (cumulative since each service started)",
             f"  hit rate            {_fmt(m.hit_rate):>7}   target ≥ {TARGETS['hit_rate']:.0%}   ({m.reads} reads)",
             f"  apiCallReduction    {_fmt(m.api_call_reduction):>7}   target ≥ {TARGETS['api_call_reduction']:.0%}"
             f"   ({m.meta_calls} Meta calls, {m.meta_calls_avoided} avoided)",
             f"  error rate          {_fmt(m.error_rate):>7}   target < {TARGETS['error_rate']:.1%}"
             f"   ({m.rpc_calls} gRPC calls served)",
             f"  Meta failure ratio  {_fmt(m.meta_failure_ratio):>7}   ({m.meta_requests} Graph API requests)",
             "", "  latency (ms)   reads      p50      p95      p99"]
    for tier in TIERS:
        q = m.latency_ms.get(tier, {})
        lines.append(f"  {tier:<10} {m.tier_reads.get(tier, 0):>9} " + " ".join(
            f"{_fmt(q.get(k), ' ').strip():>8}" for k in ("p50", "p95", "p99")))
    lines += ["", "  memory (RSS, MiB)"]
    for name, up in sorted(m.services_up.items()):
        rss = m.memory_bytes.get(name)
        lines.append(f"  {name:<16} {'down' if not up else f'{rss / 2**20:8.1f}' if rss else 'n/a'}")
    return "\n".join(lines)


def render_alerts(items: list[Alert]) -> str:
    firing = [a for a in items if a.firing]
    lines = [f"alerts: {len(firing)} would fire" if firing else "alerts: none would fire"]
    for a in items:
        lines.append(f"  {'FIRING' if a.firing else 'ok':<7} {a.severity:<9} {a.name:<26} {a.detail}")
    return "\n".join(lines)

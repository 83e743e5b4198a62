"""services/cli/system_metrics.py: the SystemMetrics view and the alerts from /metrics text."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from services.cli import system_metrics as sm

EXPOSITION = """
# TYPE adfatigue_cache_reads_total counter
adfatigue_cache_reads_total{tier="l1",outcome="hit"} 90
adfatigue_cache_reads_total{tier="l1",outcome="miss"} 10
adfatigue_cache_reads_total{tier="l2",outcome="hit"} 6
adfatigue_cache_reads_total{tier="l2",outcome="miss"} 4
# TYPE adfatigue_meta_calls_total counter
adfatigue_meta_calls_total{outcome="ok"} 4
# TYPE adfatigue_meta_calls_avoided_total counter
adfatigue_meta_calls_avoided_total{reason="l1_fresh"} 90
adfatigue_meta_calls_avoided_total{reason="l2_fresh"} 6
# TYPE rpc_server_call_duration_seconds histogram
rpc_server_call_duration_seconds_bucket{tier="l1",rpc_method="GetInsights",rpc_grpc_status_code="0",le="0.001"} 80
rpc_server_call_duration_seconds_bucket{tier="l1",rpc_method="GetInsights",rpc_grpc_status_code="0",le="0.002"} 90
rpc_server_call_duration_seconds_bucket{tier="l1",rpc_method="GetInsights",rpc_grpc_status_code="0",le="+Inf"} 90
rpc_server_call_duration_seconds_count{tier="l1",rpc_method="GetInsights",rpc_grpc_status_code="0"} 90
rpc_server_call_duration_seconds_sum{tier="l1",rpc_method="GetInsights",rpc_grpc_status_code="0"} 0.07
rpc_server_call_duration_seconds_count{rpc_method="GetInsights",rpc_grpc_status_code="0"} 908
rpc_server_call_duration_seconds_count{rpc_method="GetInsights",rpc_grpc_status_code="14"} 2
rpc_server_call_duration_seconds_count{rpc_method="GetInsights",rpc_grpc_status_code="3"} 5
# TYPE process_memory_usage_bytes gauge
process_memory_usage_bytes 104857600
# TYPE adfatigue_audit_entries_total counter
adfatigue_audit_entries_total{outcome="written"} 100
"""


def samples(text: str):
    from prometheus_client.parser import text_string_to_metric_families
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_the_design_numbers_from_one_gateway():
    m = sm.compute({"cache_gateway": samples(EXPOSITION), "meta_fetcher": None})
    assert m.hit_rate == pytest.approx(0.96) and m.reads == 100
    assert m.api_call_reduction == pytest.approx(96 / 100)
    assert m.error_rate == pytest.approx(2 / 1005)           # UNAVAILABLE counts, INVALID_ARGUMENT does not
    assert m.memory_bytes == {"cache_gateway": 104857600}
    assert m.services_up == {"cache_gateway": True, "meta_fetcher": False}
    # p50 of 90: rank 45 in the first bucket (0..1 ms, 80 reads): 45/80 of the way
    assert m.latency_ms["l1"]["p50"] == pytest.approx(45 / 80)
    assert m.latency_ms["l1"]["p99"] == pytest.approx(1 + (89.1 - 80) / 10)
    assert m.latency_ms["l3"] == {"p50": None, "p95": None, "p99": None}


def test_histogram_quantile_follows_promql():
    assert sm.histogram_quantile(0.5, {}) is None
    assert sm.histogram_quantile(0.5, {0.1: 0, math.inf: 0}) is None
    assert sm.histogram_quantile(0.5, {0.1: 10, 0.2: 20, math.inf: 20}) == pytest.approx(0.1)
    assert sm.histogram_quantile(0.99, {0.1: 10, math.inf: 20}) == pytest.approx(0.1)  # in +Inf: highest bound


def test_alerts_fire_at_the_thresholds_and_not_below():
    quiet = sm.compute({"cache_gateway": samples(EXPOSITION)})
    assert [a.name for a in sm.alerts(quiet) if a.firing] == []
    cold = EXPOSITION.replace('outcome="hit"} 90', 'outcome="hit"} 80').replace('outcome="miss"} 10', 'outcome="miss"} 20')
    assert [a.name for a in sm.alerts(sm.compute({"gw": samples(cold)})) if a.firing] == ["CacheHitRatioLow"]
    dropped = EXPOSITION + 'adfatigue_audit_entries_total{outcome="dropped"} 1\n'
    assert "AuditEntriesDropped" in [a.name for a in sm.alerts(sm.compute({"gw": samples(dropped)})) if a.firing]
    failing = EXPOSITION + ('# TYPE adfatigue_meta_requests_total counter\n'
                            'adfatigue_meta_requests_total{outcome="ok"} 94\n'
                            'adfatigue_meta_requests_total{outcome="error",error_class="retry"} 6\n')
    assert "MetaCallFailureRatioHigh" in [a.name for a in sm.alerts(sm.compute({"f": samples(failing)})) if a.firing]
    down = sm.alerts(sm.compute({"gw": samples(EXPOSITION), "scheduler": None}))
    assert [a.detail for a in down if a.firing] == ["not answering: scheduler"]


def test_the_thresholds_are_those_of_the_prometheus_rules():
    rules = yaml.safe_load((Path(__file__).resolve().parents[2] / "k8s" / "monitoring" / "adfatigue.rules.yml")
                           .read_text())
    exprs = {r["alert"]: " ".join(r["expr"].split()) for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert re.search(rf"> {sm.META_FAILURE_RATIO_MAX}$", exprs["MetaCallFailureRatioHigh"])
    assert f"< {sm.CACHE_HIT_RATIO_MIN:.2f}" in exprs["CacheHitRatioLow"]
    assert f"> {sm.META_BUDGET_USED_MAX:.2f}" in exprs["MetaBudgetNearlyExhausted"]
    assert f"max(adfatigue_meta_usage) > {sm.META_USAGE_MAX}" in exprs["MetaBudgetNearlyExhausted"]
    assert exprs["SubscriberDeliverySlow"].endswith(f"> {sm.DELIVERY_P99_MAX_S}")


def test_render_shows_every_number_with_its_target():
    text = sm.render(sm.compute({"cache_gateway": samples(EXPOSITION)}))
    for part in ("hit rate", "96.0%", "apiCallReduction", "error rate", "p50", "p99", "l1", "memory (RSS, MiB)", "100.0"):
        assert part in text

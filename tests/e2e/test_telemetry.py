"""Telemetry of the whole system, with real parts: the services as processes, a real Prometheus
scraping their /metrics on loopback (Debian's prometheus), an OTLP receiver of ours collecting the
services' spans (the OTLP exporter is configured only by ``OTEL_EXPORTER_OTLP_ENDPOINT``), and
every log file the run wrote.

The traffic is known exactly: one GetInsights that waits on Meta (L3), ten identical ones (L1),
two with other page sizes (new L1 keys, answered from L2), one GetFatigue (L2, then the engine),
and after one scrape five more L1 hits.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from concurrent import futures
from datetime import date, timedelta

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from services.meta_sandbox.synthetic import SYNTHETIC_ACCOUNT_ID
from tests.monitoring.prometheus import Prometheus, require_prometheus

pytestmark = pytest.mark.e2e

ACCOUNT = f"act_{SYNTHETIC_ACCOUNT_ID}"
# a range older than the 28-day restatement window: FINAL days, fetched once, never due again
UNTIL = date.today() - timedelta(days=40)
SINCE = UNTIL - timedelta(days=13)
META_TOKEN = "EAAG" + secrets.token_hex(24)          # shaped like a Meta user token
VAULT_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
VAULT_TOKEN = "EAAV" + secrets.token_hex(24)         # stored in the vault for the account
APP_SECRET = secrets.token_hex(16)                   # signs every request (appsecret_proof= in the URL)
JOBS = ("cache_gateway", "meta_fetcher", "fatigue_engine", "scheduler")


class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps every span with its service.name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []

    def Export(self, request, context):
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend((attrs.get("service.name", ""), span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
def otlp():
    sink = SpanSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield sink, f"http://127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture(scope="module")
def system(tmp_path_factory, otlp):
    require_prometheus()
    _, endpoint = otlp
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("telemetry"), gateway_port=0, scheduler_interval_s=3600,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"e2e_tel_{os.getpid()}", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                   "OTEL_BSP_SCHEDULE_DELAY": "200", "LOG_LEVEL": "DEBUG",
                   "META_ACCESS_TOKEN": META_TOKEN, "META_APP_SECRET": APP_SECRET, "TOKEN_KEYS": f"k1:{VAULT_KEY}", "TOKEN_ACTIVE_KEY": "k1"},
    )
    with LocalSystem(config) as running:
        env = {**os.environ, **running.processes["meta_fetcher"].env}
        subprocess.run([sys.executable, "-m", "services.meta_fetcher.token_admin", "put", "--account", ACCOUNT,
                        "--token-file", "-", "--never-expires"], input=VAULT_TOKEN, text=True, env=env,
                       check=True, capture_output=True, timeout=60)
        yield running


@pytest.fixture(scope="module")
def prometheus(system, tmp_path_factory):
    targets = {f"adfatigue-{job.replace('_', '-')}": [url.removeprefix("http://").removesuffix("/metrics")]
               for job, url in system.metrics_urls().items()}
    assert len(targets) == 4, targets
    rules = os.path.join(os.path.dirname(__file__), "..", "..", "k8s", "monitoring", "adfatigue.rules.yml")
    workdir = tmp_path_factory.mktemp("prometheus")
    with Prometheus(workdir, targets, [every_second(os.path.abspath(rules), workdir)]) as prom:
        yield prom


def every_second(rules: str, workdir) -> str:
    """The rules file with every group evaluated each second (the scrape interval here), its rules unchanged:
    the recording group's 30-s interval made the test wait up to 30 s for its first evaluation."""
    doc = yaml.safe_load(open(rules))
    for group in doc["groups"]:
        group["interval"] = "1s"
    path = workdir / "adfatigue.rules.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def traffic(system, prometheus):
    """Drive the known traffic once (Prometheus already scraping); returns (GetStats after it, the JWT used)."""
    prometheus.wait_for('sum(up{job=~"adfatigue-.+"})', lambda r: r and float(r[0]["value"][1]) == 4)
    jwt = mint_token(system.jwt_secret, "telemetry-test", ["*"], ["operator"])  # GetStats is for operators
    channel = grpc.insecure_channel(system.processes["cache_gateway"].address)
    stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
    md = bearer(jwt)
    request = gw.GetInsightsRequest(account_id=ACCOUNT, since=SINCE.isoformat(), until=UNTIL.isoformat())
    first = stub.GetInsights(request, metadata=md, timeout=120)
    assert first.rows and first.version > 0
    for _ in range(10):
        assert stub.GetInsights(request, metadata=md, timeout=30).version == first.version
    for size in (1000, 2000):
        stub.GetInsights(gw.GetInsightsRequest(account_id=ACCOUNT, since=SINCE.isoformat(), until=UNTIL.isoformat(),
                                               page_size=size), metadata=md, timeout=30)
    stub.GetFatigue(gw.GetFatigueRequest(account_id=ACCOUNT, since=SINCE.isoformat(), until=UNTIL.isoformat()),
                    metadata=md, timeout=60)
    time.sleep(2.5)  # scraped; five more L1 hits give the rate() of the recording rules two points
    for _ in range(5):
        stub.GetInsights(request, metadata=md, timeout=30)
    stats = stub.GetStats(gw.GetStatsRequest(), metadata=md, timeout=10)
    channel.close()
    return stats, jwt


def test_get_stats_reads_the_instruments_the_traffic_moved(traffic):
    stats, _ = traffic
    # 19 reads; one waited on Meta; the rest came from L1 or L2 (how many from each depends on when the
    # first fetch's commit and its rescoring reach the change feed, which evicts L1 entries)
    assert stats.l1_hits + stats.l1_misses == 19 and stats.l1_hits >= 1
    assert stats.l1_misses == stats.l2_hits + stats.l2_misses and stats.l2_misses == 1
    assert stats.upstream_calls == 1 and stats.upstream_calls_avoided == 0


def test_prometheus_scrapes_every_service_and_answers_the_design_numbers(system, traffic, prometheus):
    stats, _ = traffic
    reads = stats.l1_hits + stats.l1_misses
    # the hit ratio: reads answered from L1 or L2 / all reads = (15 + 3) / 19
    hit_ratio = prometheus.wait_for(
        'sum(adfatigue_cache_reads_total{outcome="hit"}) / sum(adfatigue_cache_reads_total{tier="l1"})',
        lambda r: r and abs(float(r[0]["value"][1]) - (stats.l1_hits + stats.l2_hits) / reads) < 1e-9)
    assert float(hit_ratio[0]["value"][1]) == pytest.approx(18 / 19)
    # apiCallReduction: reads answered without a Meta call of their own / (those + Meta calls) = 18 / 19
    expected = (stats.l1_hits + stats.l2_hits + stats.upstream_calls_avoided) / (
        stats.l1_hits + stats.l2_hits + stats.upstream_calls_avoided + stats.upstream_calls)
    reduction = prometheus.wait_for(
        "sum(adfatigue_meta_calls_avoided_total) / (sum(adfatigue_meta_calls_avoided_total)"
        " + sum(adfatigue_meta_calls_total))",
        lambda r: r and abs(float(r[0]["value"][1]) - expected) < 1e-9)
    assert float(reduction[0]["value"][1]) == pytest.approx(18 / 19)
    # per-tier latency: one histogram series per tier, with the counts the traffic caused
    counts = prometheus.query('sum by (tier) (rpc_server_call_duration_seconds_count{tier!=""})')
    assert {r["metric"]["tier"]: float(r["value"][1]) for r in counts} == {
        "l1": stats.l1_hits, "l2": stats.l2_hits, "l3": 1.0}
    quantiles = {}
    for q in ("0.5", "0.95", "0.99"):
        result = prometheus.query(
            f'histogram_quantile({q}, sum by (le, tier) (rpc_server_call_duration_seconds_bucket{{tier!=""}}))')
        quantiles[q] = {r["metric"]["tier"]: float(r["value"][1]) for r in result}
        assert set(quantiles[q]) == {"l1", "l2", "l3"}
    assert quantiles["0.5"]["l1"] < quantiles["0.5"]["l3"]        # memory answers faster than Meta
    assert all(quantiles["0.5"][t] <= quantiles["0.99"][t] for t in ("l1", "l2", "l3"))
    # the recording rules of k8s/monitoring evaluate on the live series
    recorded = prometheus.wait_for("adfatigue:read_duration_seconds:p99_5m", lambda r: len(r) >= 1)
    assert {r["metric"]["tier"] for r in recorded} <= {"l1", "l2", "l3"}
    # (rate() over a few seconds of samples extrapolates: only its presence as a ratio is checked here)
    prometheus.wait_for("adfatigue:cache_hit_ratio:rate5m", lambda r: r and 0.0 <= float(r[0]["value"][1]) <= 1.0)
    # RPC durations per method and status code (RPC semantic conventions), process memory per service
    rpc = prometheus.query('sum by (rpc_method, rpc_grpc_status_code) (rpc_server_call_duration_seconds_count'
                           '{job="adfatigue-cache-gateway", rpc_method="GetInsights"})')
    assert [(r["metric"]["rpc_grpc_status_code"], float(r["value"][1])) for r in rpc] == [("0", 18.0)]
    rss = prometheus.query("process_memory_usage_bytes")
    assert {r["metric"]["job"] for r in rss} == {f"adfatigue-{j.replace('_', '-')}" for j in JOBS}


def test_one_trace_spans_gateway_meta_fetcher_meta_and_the_engine(otlp, traffic):
    sink, _ = otlp
    deadline = time.monotonic() + 30
    while True:
        by_name = {}
        for service, span in sink.spans:
            by_name.setdefault((service, span.name), []).append(span)
        fetch = [s for s in by_name.get(("meta_fetcher", "/adfatigue.v1.MetaFetcher/FetchInsights"), [])]
        score = by_name.get(("fatigue_engine", "/adfatigue.v1.FatigueEngine/ScoreAds"), [])
        if fetch and score or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fetch, sorted(by_name)
    trace_id = fetch[0].trace_id
    in_trace = {(service, span.name, span.kind) for service, span in sink.spans if span.trace_id == trace_id}
    SERVER, CLIENT = 2, 3  # opentelemetry.proto Span.SpanKind
    assert ("cache_gateway", "/adfatigue.v1.CacheGateway/GetInsights", SERVER) in in_trace
    assert ("cache_gateway", "/adfatigue.v1.MetaFetcher/FetchInsights", CLIENT) in in_trace
    assert ("meta_fetcher", "/adfatigue.v1.MetaFetcher/FetchInsights", SERVER) in in_trace
    assert any(service == "meta_fetcher" and kind == CLIENT and name.startswith("GET")
               for service, name, kind in in_trace), in_trace      # httpx → the Graph API
    # gateway → fatigue_engine: the GetFatigue call and the engine's ScoreAds share one trace (other
    # ScoreAds calls are the background rescoring's, each its own trace)
    fatigue = [span for service, span in sink.spans
               if service == "cache_gateway" and span.name == "/adfatigue.v1.CacheGateway/GetFatigue"]
    assert len(fatigue) == 1
    assert any(span.trace_id == fatigue[0].trace_id for span in score)


def test_logs_are_json_lines_with_trace_ids_and_no_secret(system, traffic, otlp):
    _, jwt = traffic
    import json

    files = sorted(p for p in system.logs.iterdir() if p.is_file())
    assert {f"{j}.jsonl" for j in JOBS} <= {p.name for p in files}
    fetch_traces = {span.trace_id.hex() for service, span in otlp[0].spans
                    if service == "meta_fetcher" and span.name.endswith("FetchInsights")}
    traced = 0
    for name in (f"{j}.jsonl" for j in JOBS):
        for line in (system.logs / name).read_text().splitlines():
            record = json.loads(line)          # every line is one JSON object
            assert {"timestamp", "level", "logger", "message", "service.name", "trace_id", "span_id"} <= set(record)
            assert record["service.name"] == name.removesuffix(".jsonl")
            traced += name == "meta_fetcher.jsonl" and record["trace_id"] in fetch_traces
    assert traced > 0, "no meta_fetcher log line carries the trace id of a FetchInsights span"
    forbidden = [jwt, system.jwt_secret, META_TOKEN, VAULT_KEY, VAULT_TOKEN, APP_SECRET]
    jwt_shape = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")
    for path in files:
        text = path.read_text(errors="replace")
        for secret in forbidden:
            assert secret not in text, f"{path.name} contains a secret"
        assert not jwt_shape.search(text), f"{path.name} contains a JWT"
    # the filter had work to do: at DEBUG httpx logs each request URL, whose appsecret_proof it hid
    assert "appsecret_proof=[REDACTED]" in (system.logs / "meta_fetcher.jsonl").read_text()


def _cli(system, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--data-dir", str(system.config.data_dir)],
                          capture_output=True, text=True, timeout=60)


def test_adfatigue_stats_prints_the_system_metrics_view(system, traffic):
    import json

    result = _cli(system, "stats", "--json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["hit_rate"] == pytest.approx(18 / 19) and view["api_call_reduction"] == pytest.approx(18 / 19)
    stats, _ = traffic
    assert view["tier_reads"] == {"l1": stats.l1_hits, "l2": stats.l2_hits, "l3": 1}
    assert all(view["latency_ms"][t]["p50"] <= view["latency_ms"][t]["p99"] for t in ("l1", "l2", "l3"))
    assert set(view["memory_bytes"]) == set(JOBS) and all(v > 10 * 2**20 for v in view["memory_bytes"].values())
    assert view["error_rate"] == 0.0 and view["services_up"] == dict.fromkeys(JOBS, True)
    text = _cli(system, "stats")
    assert text.returncode == 0 and "apiCallReduction" in text.stdout and "94.7%" in text.stdout


def test_status_shows_which_alerts_would_fire_and_prometheus_sees_a_service_down(system, traffic, prometheus):
    status = _cli(system, "status")
    assert status.returncode == 0, status.stderr
    assert "alerts: none would fire" in status.stdout or "alerts: 1 would fire" in status.stdout
    assert re.search(r"ok\s+warning\s+CacheHitRatioLow", status.stdout)
    system.processes["fatigue_engine"].stop()          # the last test of the module: the engine goes away
    down = _cli(system, "stats")
    assert down.returncode == 1 and re.search(r"fatigue_engine\s+down", down.stdout)
    status = _cli(system, "status")
    assert re.search(r"FIRING\s+critical\s+ServiceDown\s+not answering: fatigue_engine", status.stdout), status.stdout
    # the real rule: Prometheus holds ServiceDown pending for its 2 minutes (then it would fire)
    pending = prometheus.wait_for('ALERTS{alertname="ServiceDown"}', lambda r: len(r) == 1, timeout=60)
    assert pending[0]["metric"]["job"] == "adfatigue-fatigue-engine"
    assert pending[0]["metric"]["alertstate"] == "pending" and pending[0]["metric"]["severity"] == "critical"
    listed = subprocess.run([sys.executable, "-m", "services.cli.main", "status", "--json", "--prometheus",
                             prometheus.url, "--data-dir", str(system.config.data_dir)],
                            capture_output=True, text=True, timeout=60)
    assert {"name": "ServiceDown", "severity": "critical", "firing": False,
            "detail": "adfatigue-fatigue-engine on " + pending[0]["metric"]["instance"] + " is down"} \
        in json.loads(listed.stdout)["alerts"]
    assert "instance_id" in json.loads(listed.stdout) and "instanceId" not in listed.stdout  # the proto's names

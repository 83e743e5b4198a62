"""The BFF's own telemetry, as an operator meets it: its /metrics over HTTP, its log file, its traces.

A BFF process of its own (real sockets) in front of the session's gateway: requests counted by route
and status in ``http_server_request_duration_seconds``, live streams counted apart (not timed), no
sign-in token or session cookie in its JSON log, and with an OTLP collector (a real gRPC receiver on
loopback) a server span per request that parents the BFF → gateway gRPC client span.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from services.bff.sign_in import mint_sign_in_link
from tests.bff.conftest import REAL, SINCE, UNTIL
from tests.bff.test_bff_process import start_bff

pytestmark = pytest.mark.e2e
DURATION = "http_server_request_duration_seconds"
RANGE = {"since": SINCE, "until": UNTIL}


def scrape(url: str) -> dict[str, list[tuple[dict, float]]]:
    """``{sample name: [(labels, value), ...]}`` of one scrape of ``url`` (Prometheus text format)."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def counts(samples, route: str | None = None) -> dict[tuple[str, str, str], float]:
    """``{(method, route, status): count}`` of the request-duration histogram."""
    return {(s["http_request_method"], s.get("http_route", ""), s["http_response_status_code"]): v
            for s, v in samples.get(DURATION + "_count", []) if route is None or s.get("http_route") == route}


def wait_for(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def test_metrics_count_requests_by_route_and_status_and_logs_hide_the_sign_in(system, tmp_path):
    log_file = tmp_path / "bff_tel.jsonl"
    bff = start_bff(system, tmp_path, "bff_tel", METRICS_PORT="0", LOG_FILE=str(log_file), BFF_HEARTBEAT_S="0.3")
    base = f"http://{bff.address}"
    try:
        metrics_url = bff.metrics_url()
        assert metrics_url and metrics_url.startswith("http://127.0.0.1:"), bff.tail()
        link = mint_sign_in_link(base, system.jwt_secret, "tel@example.com", ["*"]).removeprefix(base)
        token = link.split("token=", 1)[1]
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.get(link).status_code == 303
            cookie = c.cookies.get("adfatigue_session")
            assert cookie and len(cookie) > 20
            for _ in range(3):
                assert c.get("/api/v1/session").status_code == 200
            for _ in range(2):
                assert c.get(f"/api/v1/accounts/{REAL}/fatigue", params=RANGE).status_code == 200
            assert c.get("/api/v1/accounts/act_1001/fatigue", params={"since": UNTIL, "until": SINCE}).status_code == 400
            assert c.get(link).status_code == 401                      # a used link: refused (and logged)
            assert httpx.get(base + "/api/v1/session").status_code == 401   # no cookie
            assert c.get("/no/such/page").status_code == 404
            assert httpx.get(base + "/healthz").json() == {"status": "ok"}   # a probe: not counted

            # a live stream is open: counted as one, and not timed while it lasts
            snapshot = threading.Event()
            stop = threading.Event()

            def read():
                with c.stream("GET", f"/api/v1/accounts/{REAL}/events", params=RANGE) as s:
                    for line in s.iter_lines():
                        if line.startswith("event: snapshot"):
                            snapshot.set()
                        if stop.is_set():
                            break

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            assert snapshot.wait(30), "no snapshot on the live stream"
            during = scrape(metrics_url)
            stop.set()
            reader.join(15)
            assert httpx.get(f"{base}/api/v1/accounts/{REAL}/events", params=RANGE).status_code == 401

        assert [v for _, v in during["adfatigue_bff_live_open_streams"]] == [1.0]
        assert not any("events" in route for _, route, _ in counts(during))

        def closed():
            now = scrape(metrics_url)
            return now if [v for _, v in now["adfatigue_bff_live_open_streams"]] == [0.0] else None

        after = wait_for("the closed stream leaves the open-streams gauge", closed)

        got = counts(after)
        assert got[("GET", "/api/v1/session", "200")] == 3
        assert got[("GET", "/api/v1/session", "401")] == 1
        assert got[("GET", "/api/v1/accounts/{act}/fatigue", "200")] == 2
        assert got[("GET", "/api/v1/accounts/{act}/fatigue", "400")] == 1
        assert got[("GET", "/ad-fatigue/sign-in", "303")] == 1
        assert got[("GET", "/ad-fatigue/sign-in", "401")] == 1
        assert got[("GET", "", "404")] == 1                       # no route matched: no route label
        assert not any("events" in route or "healthz" in route for _, route, _ in got), got  # not timed
        assert sum(got.values()) == 10
        # every series is a histogram in seconds with the same count in its +Inf bucket
        inf = {(s["http_request_method"], s.get("http_route", ""), s["http_response_status_code"]): v
               for s, v in after[DURATION + "_bucket"] if s["le"] == "+Inf"}
        assert inf == got
        assert all(0 < v < 60 for _, v in after[DURATION + "_sum"])
        live = {s["http_response_status_code"]: v for s, v in after["adfatigue_bff_live_requests_total"]}
        assert live == {"200": 1.0, "401": 1.0}
    finally:
        bff.stop()

    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(line["service.name"] == "bff" for line in lines)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("signed in with a one-time link: tel@example.com") for m in messages), messages
    assert any(m.startswith("sign-in link refused: this sign-in link was used already") for m in messages), messages
    assert token not in text and cookie not in text
    assert token not in bff.log_path.read_text() and cookie not in bff.log_path.read_text()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on loopback: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope_spans in resource_spans.scope_spans:
                self.spans += [(service, span) for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


def test_with_a_collector_each_request_has_a_server_span_parenting_the_gateway_call(system, tmp_path):
    collector = Collector()
    bff = start_bff(system, tmp_path, "bff_traced", METRICS_PORT="0",
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}", OTEL_EXPORTER_OTLP_INSECURE="true",
                    OTEL_BSP_SCHEDULE_DELAY="100")
    base = f"http://{bff.address}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.get(mint_sign_in_link(base, system.jwt_secret, "tr", ["*"]).removeprefix(base)).status_code == 303
            answer = c.get(f"/api/v1/accounts/{REAL}/fatigue", params=RANGE)
            assert answer.status_code == 200
        route = "/api/v1/accounts/{act}/fatigue"

        def found():
            servers = [s for svc, s in collector.spans if svc == "bff" and s.kind == s.SPAN_KIND_SERVER
                       and s.name == f"GET {route}"]
            if not servers:
                return None
            server = servers[0]
            clients = [s for _, s in collector.spans if s.kind == s.SPAN_KIND_CLIENT
                       and s.trace_id == server.trace_id and s.parent_span_id == server.span_id]
            return (server, clients) if clients else None

        server, clients = wait_for("the server span and its gateway client span reach the collector", found)
        attrs = {a.key: (a.value.string_value or a.value.int_value) for a in server.attributes}
        assert attrs["http.route"] == route and attrs["http.request.method"] == "GET"
        assert attrs["http.response.status_code"] == 200
        rpc = {a.key: a.value.string_value for a in clients[0].attributes}
        assert rpc["rpc.system"] == "grpc" and "CacheGateway" in rpc["rpc.service"], rpc
        # no per-message ASGI send / receive spans
        assert not [s for _, s in collector.spans if s.name.endswith((" http send", " http receive"))]
    finally:
        bff.stop()
        collector.server.stop(0)

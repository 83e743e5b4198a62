"""services/common/telemetry.py: settings, and RPC durations of real gRPC calls.

Server durations come from ``RpcMetrics`` (timed in the ErrorBoundary's wrapper), client durations from the spans of the
contrib gRPC aio client interceptor, on a loopback server and channel, with an in-memory span
exporter and an in-memory metric reader of their own (no global provider is set, so other tests
are not affected).
"""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from services.common.settings import SettingsError

from services.common.error_boundary import ErrorBoundary
from services.common.telemetry import DURATION_BUCKETS_S, RpcDurationFromSpans, RpcMetrics, TelemetrySettings


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "9464")
    monkeypatch.setenv("ADFATIGUE_TELEMETRY", "off")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    s = TelemetrySettings.from_env()
    assert (s.metrics_port, s.telemetry_enabled, s.otlp_endpoint) == (9464, False, "http://collector:4317")
    assert TelemetrySettings(metrics_port=0).metrics_port == 0


def test_a_bad_metrics_port_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "70000")
    with pytest.raises(SettingsError, match="METRICS_PORT='70000' is invalid"):
        TelemetrySettings.from_env()


async def _echo(request: bytes, context) -> bytes:
    if request == b"missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return request


async def test_rpc_durations_per_method_and_status_code_from_grpc_spans():
    from prometheus_client import CollectorRegistry

    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    registry = CollectorRegistry()  # RpcMetrics records with prometheus_client (see its docstring)
    tracer = TracerProvider()
    tracer.add_span_processor(RpcDurationFromSpans(meters))
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    # as GrpcHost times calls: inside the ErrorBoundary's own wrapper, behind the contrib tracing interceptor
    server = grpc.aio.server(interceptors=[aio_server_interceptor(tracer_provider=tracer), ErrorBoundary(RpcMetrics(registry))])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_echo)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             interceptors=aio_client_interceptors(tracer_provider=tracer)) as ch:
            say = ch.unary_unary("/test.Echo/Say")
            assert await say(b"hi") == b"hi" and await say(b"again") == b"again"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await say(b"missing")
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(0)
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points[(metric.name, p.attributes["rpc.method"], p.attributes["rpc.grpc.status_code"])] = p
                assert metric.unit == "s"
    def served(code: int, le: str | None = None) -> float | None:
        labels = {"rpc_system": "grpc", "rpc_service": "test.Echo", "rpc_method": "Say",
                  "rpc_grpc_status_code": str(code), "tier": ""}
        if le is None:
            return registry.get_sample_value("rpc_server_call_duration_seconds_count", labels)
        return registry.get_sample_value("rpc_server_call_duration_seconds_bucket", {**labels, "le": le})

    assert served(0) == 2 and served(grpc.StatusCode.NOT_FOUND.value[0]) == 1
    assert served(0, le="+Inf") == 2 and served(0, le=str(DURATION_BUCKETS_S[-1])) is not None  # our buckets
    assert points[("rpc.client.call.duration", "Say", 0)].count == 2
    assert {s.kind.name for s in spans.get_finished_spans()} == {"SERVER", "CLIENT"}
    # client and server spans of one call share its trace
    by_trace = {}
    for s in spans.get_finished_spans():
        by_trace.setdefault(s.context.trace_id, set()).add(s.kind.name)
    assert all(kinds == {"SERVER", "CLIENT"} for kinds in by_trace.values()) and len(by_trace) == 3

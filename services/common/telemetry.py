"""One OpenTelemetry set-up for every service: call ``setup_telemetry`` once at start.

What it installs (DESIGN.md §monitoring; issue 13):

* a ``Resource`` with ``service.name``, ``service.version`` (the package's version) and
  ``service.instance.id`` (a UUID per process), merged with ``OTEL_RESOURCE_ATTRIBUTES`` /
  ``OTEL_SERVICE_NAME`` by the SDK;
* a ``MeterProvider`` read by two readers: the **Prometheus exporter**, served at
  ``http://METRICS_HOST:METRICS_PORT/metrics`` (0 = any free port; the service prints
  ``<name> metrics on http://HOST:PORT/metrics`` right after its ``listening on`` line), and an in-memory
  reader that ``GetStats`` and tests read (``Telemetry.sums`` / ``Telemetry.metrics``);
* ``rpc.server.call.duration`` histograms (seconds, per ``rpc.service``, ``rpc.method`` and
  ``rpc.grpc.status_code`` — the RPC semantic conventions — plus ``tier`` on the gateway's reads) from
  ``RpcMetrics``, which ``GrpcHost``'s ErrorBoundary calls from the wrapper it puts around every handler
  (the contrib gRPC instrumentation makes spans, no metrics), recorded through ``prometheus_client`` into the exporter's registry (same
  ``/metrics``; why: its docstring; no exporter, no RPC durations);
* process metrics (RSS, CPU) from the contrib system-metrics instrumentation;
* **traces when there is somewhere to send them**: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (every
  other ``OTEL_EXPORTER_OTLP_*`` / ``OTEL_TRACES_SAMPLER`` variable is the SDK's), or a test's
  ``span_exporter``, a ``TracerProvider`` and the contrib instrumentations: gRPC aio server and client
  (W3C trace context over gRPC metadata), httpx (meta_fetcher → Graph API), pymongo, redis; and
  ``rpc.client.call.duration`` from the client spans (``RpcDurationFromSpans``). Without an exporter
  spans would be made and thrown away on every call, which the overhead benchmark showed is most of
  telemetry's cost, so they are not made (and log lines carry no trace id).

``ADFATIGUE_TELEMETRY=off`` leaves out the exporter, tracing and instrumentation; the in-memory
reader stays, so ``GetStats`` keeps answering (the overhead benchmark compares the two).
``OTEL_SDK_DISABLED=true`` (the SDK's switch) turns every instrument into a no-op.

Domain instruments are created at import time from the global API (``meter(__name__)``), the
OpenTelemetry idiom: before ``setup_telemetry`` they are proxies that record nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from typing import Iterable, Mapping

import grpc
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.metrics.view import DropAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind

from services.common.settings import TelemetrySettings  # noqa: F401  (the settings part; re-exported)

log = logging.getLogger(__name__)

#: Histogram buckets for durations in seconds: an L1 hit is ~0.3 ms, a Meta fetch seconds.
DURATION_BUCKETS_S = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                      5.0, 10.0, 30.0, 60.0)


@dataclass
class Telemetry:
    """What ``setup_telemetry`` installed."""

    service_name: str
    resource: Resource
    meter_provider: MeterProvider
    tracer_provider: TracerProvider | None
    stats_reader: InMemoryMetricReader
    metrics_url: str | None = None
    rpc_metrics: "RpcMetrics | None" = None
    _http_server: object | None = field(default=None, repr=False)
    _instrumentors: list = field(default_factory=list, repr=False)

    def metrics(self) -> Iterable:
        """Every metric point the in-memory reader holds now (cumulative), as SDK ``Metric`` objects."""
        data = self.stats_reader.get_metrics_data()
        if data is None:
            return []
        return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]

    def sums(self, names: Iterable[str]) -> dict[str, list[tuple[Mapping[str, object], float]]]:
        """For each counter / up-down counter / gauge named: ``[(attributes, value), ...]`` now."""
        wanted = set(names)
        out: dict[str, list] = {n: [] for n in wanted}
        for metric in self.metrics():
            if metric.name in wanted:
                out[metric.name].extend((dict(p.attributes or {}), p.value) for p in metric.data.data_points
                                        if hasattr(p, "value"))
        return out

    def announce(self) -> None:
        """Print ``<service> metrics on URL`` (after the ``listening on`` line, which launchers wait for)."""
        if self.metrics_url:
            print(f"{self.service_name} metrics on {self.metrics_url}", flush=True)

    def shutdown(self) -> None:
        for instrumentor in self._instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:  # an instrumentation that never took is fine to leave
                pass
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The process's telemetry, or None before ``setup_telemetry``."""
    return _current


def meter(name: str) -> metrics.Meter:
    """The meter domain instruments are created from (the global provider's, once set up)."""
    return metrics.get_meter(name, _version())


def _version() -> str:
    try:
        return metadata.version("adfatigue")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class Tally:
    """A counter for the hottest paths: ``add`` is a plain integer increment, and the sums are exported
    as an OpenTelemetry *asynchronous* counter (``ObservableCounter``, read at each collection).

    A synchronous counter's ``add`` costs a few microseconds per call per reader; an L1 hit makes
    several, which the overhead benchmark counted against the 5 % budget. Same name, unit and
    attributes in Prometheus either way. Single event loop per process: no lock needed.
    """

    def __init__(self, meter_: metrics.Meter, name: str, unit: str, description: str) -> None:
        self._series: dict[tuple, list] = {}   # attribute items -> [attributes, count]
        meter_.create_observable_counter(name, [self._observe], unit=unit, description=description)

    def series(self, **attributes: str) -> list:
        """The ``[attributes, count]`` cell of one attribute set (keep it: ``cell[1] += 1`` is the add)."""
        key = tuple(sorted(attributes.items()))
        cell = self._series.get(key)
        if cell is None:
            cell = self._series[key] = [dict(attributes), 0]
        return cell

    def add(self, amount: int, attributes: Mapping[str, str] | None = None) -> None:
        self.series(**(attributes or {}))[1] += amount

    def _observe(self, _options) -> list:
        from opentelemetry.metrics import Observation

        return [Observation(count, attrs) for attrs, count in list(self._series.values())]


class RpcDurationFromSpans(SpanProcessor):
    """``rpc.{server,client}.call.duration`` (s) from each finished gRPC span, one measurement per call.

    The contrib gRPC instrumentation makes spans but no metrics; the span already holds what the
    semantic conventions ask for (``rpc.system``, ``rpc.service``, ``rpc.method``,
    ``rpc.grpc.status_code``), so the histogram is filled from it instead of a second interceptor.
    """

    KEYS = ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code")

    def __init__(self, meter_provider: MeterProvider) -> None:
        m = meter_provider.get_meter("adfatigue.rpc", _version())
        self._client = m.create_histogram("rpc.client.call.duration", unit="s",
                                          description="Duration of outgoing RPCs",
                                          explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        if attrs.get("rpc.system") != "grpc" or span.start_time is None or span.end_time is None:
            return
        histogram = self._client if span.kind == SpanKind.CLIENT else None  # server side: RpcMetrics
        if histogram is None:
            return
        point = {k: attrs[k] for k in self.KEYS if k in attrs}
        point.setdefault("rpc.grpc.status_code", 0)
        histogram.record((span.end_time - span.start_time) / 1e9, point)


def setup_telemetry(service_name: str, host: str = "127.0.0.1", settings: TelemetrySettings | None = None,
                    span_exporter: SpanExporter | None = None, extra_readers: Iterable[MetricReader] = ()
                    ) -> Telemetry:
    """Install metrics, traces and instrumentation for this process; returns what it installed.

    Idempotent: a second call in the same process returns the first set-up. Raises OSError when
    the metrics port is taken (a clear start-up failure, like a taken gRPC port).
    """
    global _current
    if _current is not None:
        return _current
    settings = settings or TelemetrySettings.from_env()
    resource = Resource.create({
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name,
        "service.namespace": "adfatigue",
        "service.version": _version(),
        "service.instance.id": str(uuid.uuid4()),
    })
    # GetStats reads sums only: histograms are not aggregated a second time for it (each reader
    # aggregates every measurement, and an L1 hit records two durations)
    stats_reader = InMemoryMetricReader(preferred_aggregation={Histogram: DropAggregation()})
    readers: list[MetricReader] = [stats_reader, *extra_readers]
    http_server = None
    url = None
    if settings.telemetry_enabled and settings.metrics_port >= 0:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        readers.append(PrometheusMetricReader())
        bind = settings.metrics_host or host
        try:
            http_server, _thread = start_http_server(settings.metrics_port, addr=bind)
        except OSError as exc:
            raise OSError(f"cannot serve /metrics on {bind}:{settings.metrics_port}: {exc.strerror or exc}"
                          " (set METRICS_PORT to a free port, 0 for any)") from None
        shown = "127.0.0.1" if bind in ("0.0.0.0", "", "::") else bind
        url = f"http://{shown}:{http_server.server_port}/metrics"
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)

    tracer_provider = None
    instrumentors: list = []
    if settings.telemetry_enabled:
        instrumentors.append(_system_metrics(meter_provider))
    if (settings.telemetry_enabled and settings.otlp_endpoint) or span_exporter is not None:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(RpcDurationFromSpans(meter_provider))
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if span_exporter is not None:
            tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        trace.set_tracer_provider(tracer_provider)
        instrumentors += _instrument(tracer_provider, meter_provider)
    _current = Telemetry(service_name, resource, meter_provider, tracer_provider, stats_reader, url,
                         RpcMetrics() if http_server is not None else None, http_server, instrumentors)
    return _current


def _instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list:
    """The contrib instrumentations (each optional: one missing never stops a service)."""
    done = []
    kw = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    # health checks and reflection are not traffic: no spans, no RPC durations for them
    excluded = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES")
    os.environ.setdefault("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES",
                          "grpc.health.v1.Health,grpc.reflection.v1alpha.ServerReflection")
    candidates = [GrpcAioInstrumentorServer(), GrpcAioInstrumentorClient()]
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        candidates.append(HTTPXClientInstrumentor())
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
        candidates.append(PymongoInstrumentor())
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        candidates.append(RedisInstrumentor())
    except ImportError as exc:  # pragma: no cover - all are dependencies of the package
        log.warning("an instrumentation is not installed: %s", exc)
    for instrumentor in candidates:
        try:
            instrumentor.instrument(**kw)
            done.append(instrumentor)
        except Exception:
            log.exception("instrumentation %s failed; the service runs without it", type(instrumentor).__name__)
    if excluded is None:
        os.environ.pop("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", None)
    return done


def _system_metrics(meter_provider: MeterProvider):
    """Process RSS, CPU, threads, file descriptors (contrib system-metrics instrumentation)."""
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    system = SystemMetricsInstrumentor(config={
        "process.cpu.time": ["user", "system"], "process.cpu.utilization": None,
        "process.memory.usage": None, "process.memory.virtual": None, "process.thread.count": None,
        "process.open_file_descriptor.count": None,
    })
    system.instrument(meter_provider=meter_provider)
    return system


_NOT_TRAFFIC = ("/grpc.health.v1.Health/", "/grpc.reflection.")

#: The cache tier that answered the RPC being served (``l1`` / ``l2`` / ``l3``; None: not a read). A servicer
#: sets it before returning; ``RpcMetrics`` records it as the ``tier`` attribute of the call's
#: ``rpc.server.call.duration`` point, so a read costs one histogram measurement, not two (issue 13's
#: overhead budget), and per-tier latency quantiles come from the same histogram as per-method ones.
rpc_tier: contextvars.ContextVar[str | None] = contextvars.ContextVar("rpc_tier", default=None)


def prometheus_histogram(name: str, documentation: str, labelnames: tuple[str, ...] = (), registry=None,
                         buckets: tuple[float, ...] = DURATION_BUCKETS_S):
    """A duration histogram (seconds) for a per-call or per-delivery hot path, on ``prometheus_client`` in the
    exporter's registry (served at the same ``/metrics``), named as the OpenTelemetry exporter would name the
    instrument (``adfatigue.x.duration`` -> ``adfatigue_x_duration_seconds``). Why not the SDK: ``RpcMetrics``."""
    from prometheus_client import REGISTRY, Histogram as PrometheusHistogram

    return PrometheusHistogram(name, documentation, labelnames=labelnames, buckets=buckets,
                               registry=REGISTRY if registry is None else registry)


class RpcMetrics:
    """``rpc.server.call.duration`` (s) of every call, per ``rpc.service``, ``rpc.method`` and
    ``rpc.grpc.status_code`` (the RPC semantic conventions), plus ``tier`` when the servicer set ``rpc_tier``
    (health checks and reflection left out). Streams are timed to their end. Not an interceptor of its own:
    ``ErrorBoundary(timer)`` calls ``record`` from the wrapper it already puts around every handler.

    Recorded with the Prometheus client's own histogram (``prometheus_client``, the exposition library the
    OpenTelemetry Prometheus exporter serves through, in the same registry: one ``/metrics``), named and
    labelled as the exporter would name the OpenTelemetry instrument (``rpc_server_call_duration_seconds``,
    ``rpc_method``, ...). Why not the SDK histogram: on the gateway's fastest path its ``record`` was the
    whole of telemetry's cost — about 125,000 instructions of a ~1,000,000-instruction L1 hit (13 %, counted
    under callgrind by ``bench/telemetry_overhead.py``) against a 5 % budget; ``observe`` on a label child
    costs about 1 µs. What is lost: OTLP export of this one metric (metrics are scraped, not pushed) and the
    ``otel_scope_*`` labels.
    """

    LABELS = ("rpc_system", "rpc_service", "rpc_method", "rpc_grpc_status_code", "tier")

    def __init__(self, registry=None) -> None:
        self._histogram = prometheus_histogram(
            "rpc_server_call_duration_seconds", "Duration of incoming RPCs (tier: the cache tier that answered a "
            "read)", self.LABELS, registry)
        self._children: dict[tuple[str, int, str | None], object] = {}

    #: what ErrorBoundary(timer=...) uses when it times calls in its own wrapper (services/common/grpc_server.py)
    tier = rpc_tier

    @staticmethod
    def times(method: str) -> bool:
        """Whether ``method`` is traffic (health checks and reflection are not)."""
        return not method.startswith(_NOT_TRAFFIC)

    def record(self, started: float, full_method: str, context, failed: BaseException | None,
               tier: str | None) -> None:
        """One call's duration since ``started`` (``time.perf_counter``), with its final status."""
        code = context.code() if hasattr(context, "code") else None
        if isinstance(code, grpc.StatusCode):
            value = code.value[0]
        else:
            value = 2 if failed is not None and not isinstance(failed, asyncio.CancelledError) else 0
            if isinstance(failed, asyncio.CancelledError):
                value = 1
        key = (full_method, value, tier)
        child = self._children.get(key)
        if child is None:
            service, _, method = full_method.lstrip("/").rpartition("/")
            child = self._children[key] = self._histogram.labels("grpc", service, method, str(value), tier or "")
        child.observe(time.perf_counter() - started)


def server_timer() -> "RpcMetrics | None":
    """What times every GrpcHost's calls, inside its ErrorBoundary (None before ``setup_telemetry`` or with it
    off)."""
    tel = _current
    return tel.rpc_metrics if tel is not None else None

"""HTTP server telemetry of the BFF: request durations, server spans, and the live streams counted apart.

``instrument(app, settings)`` (``create_app`` calls it once ``setup_telemetry`` has run) installs the
contrib FastAPI instrumentation (``opentelemetry-instrumentation-fastapi``) with the **stable HTTP
semantic conventions** (``OTEL_SEMCONV_STABILITY_OPT_IN=http``, which ``use_stable_http_conventions``
sets unless the environment chose already):

* ``http.server.request.duration`` (histogram, seconds; Prometheus
  ``http_server_request_duration_seconds``) per ``http.request.method``, ``http.route`` (the
  route template, e.g. ``/api/v1/accounts/{act}/fatigue``; absent for a path no route matches),
  ``http.response.status_code``, ``url.scheme`` and ``network.protocol.version``;
* ``http.server.active_requests`` and the request / response body sizes;
* a SERVER span per request when traces are exported (OTLP), parent of the gRPC client spans to the
  gateway; the per-message ASGI ``send`` / ``receive`` child spans are left out (noise).

``GET /healthz`` (probes) is not instrumented. **Live streams** (``GET /api/v1/accounts/{act}/events``,
Server-Sent Events) are left out of all of that: the instrumentation times a request to its last
byte, and a stream stays open for as long as the page does (hours), so one open tab would own every
high quantile of the histogram. They are counted by ``LiveStreamMetrics`` instead:

* ``adfatigue.bff.live.requests`` (counter, ``{request}``) per ``http.request.method`` and
  ``http.response.status_code`` — 200 is a stream opened; 4xx / 5xx the problem answers sent
  before any stream (bad range, not signed in, gateway down), so error ratios still see them;
* ``adfatigue.bff.live.open_streams`` (up-down counter, ``{stream}``): streams open now.
"""

from __future__ import annotations

import logging
import os
import re

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from services.common import telemetry

log = logging.getLogger(__name__)

#: The live-stream route (regular expression on the URL; also ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` syntax).
LIVE_EVENTS = r"/api/v1/accounts/[^/]+/events$"
_LIVE_PATH = re.compile(r"^" + LIVE_EVENTS)
#: Not instrumented: the live streams (counted by LiveStreamMetrics) and the probes (not traffic).
EXCLUDED_URLS = LIVE_EVENTS + r",/healthz$"


def use_stable_http_conventions() -> None:
    """Ask the contrib HTTP instrumentations for the stable conventions (``http.server.request.duration``
    in seconds) rather than the old ``http.server.duration`` in ms. Call before ``setup_telemetry``:
    the choice is read once per process, by the first instrumentation that starts."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


class LiveStreamMetrics:
    """ASGI middleware counting live-stream requests by status and the streams open (see the module doc)."""

    def __init__(self, app) -> None:
        self.app = app
        m = telemetry.meter("services.bff")
        self._requests = m.create_counter(
            "adfatigue.bff.live.requests", unit="{request}",
            description="Live-stream (/events) requests by status: 200 opened a stream (kept out of "
                        "http.server.request.duration, a stream lasts as long as the page is open)")
        self._open = m.create_up_down_counter("adfatigue.bff.live.open_streams", unit="{stream}",
                                              description="Live streams (Server-Sent Events) open now")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not _LIVE_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        status: int | None = None
        opened = False

        async def counted_send(message) -> None:
            nonlocal status, opened
            if message["type"] == "http.response.start" and status is None:
                status = int(message["status"])
                self._requests.add(1, {"http.request.method": method, "http.response.status_code": status})
                if status == 200:
                    opened = True
                    self._open.add(1)
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        except BaseException:
            if status is None:  # the server's error middleware answers 500 after us
                self._requests.add(1, {"http.request.method": method, "http.response.status_code": 500})
            raise
        finally:
            if opened:
                self._open.add(-1)


def instrument(app, enabled: bool = True) -> bool:
    """Install the HTTP server instrumentation on ``app`` when this process has set up telemetry (and
    ``ADFATIGUE_TELEMETRY`` is not off); returns whether it did. Without ``setup_telemetry`` (an app
    built in a test) nothing is installed."""
    tel = telemetry.current()
    if tel is None or not enabled:
        return False
    app.add_middleware(LiveStreamMetrics)
    FastAPIInstrumentor.instrument_app(app, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"],
                                       meter_provider=tel.meter_provider, tracer_provider=tel.tracer_provider)
    return True

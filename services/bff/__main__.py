"""``python -m services.bff [--host H] [--port P] [--gateway HOST:PORT]``; prints ``bff listening on http://H:P``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

import uvicorn

from services.bff.app import create_app
from services.bff.http_telemetry import use_stable_http_conventions
from services.bff.settings import BffSettings
from services.common.logs import configure_logging
from services.common.settings import parse_service_args
from services.common.telemetry import setup_telemetry
from services.common.heap import freeze_startup_heap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.bff", description=__doc__)
    parser.add_argument("--host", help="bind address (BFF_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port, 0 = any free one (BFF_PORT, default 8080)")
    parser.add_argument("--gateway", help="CacheGateway host:port (BFF_GATEWAY_ADDR)")
    parser.set_defaults(gateway_addr=None)
    args = parse_service_args(parser, BffSettings, argv)
    if args.gateway:
        args.settings = args.settings.replace(gateway_addr=args.gateway)
    settings = args.settings
    configure_logging("bff", settings)  # JSON lines, the one redaction filter (LOG_* settings)
    use_stable_http_conventions()  # http.server.request.duration in seconds (read once, by the first instrumentation)
    # /metrics (METRICS_PORT), traces into the gateway (OTEL_*); create_app adds the HTTP server instrumentation
    telemetry = setup_telemetry("bff", settings.host, settings)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        print(f"bff: cannot listen on {settings.host}:{settings.port}: {exc.strerror}; choose another port "
              "(--port; under `adfatigue up`: --bff-port)", file=sys.stderr)
        return 1
    settings = settings.replace(port=sock.getsockname()[1])
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=5,
                            lifespan="on", proxy_headers=False, log_config=None)  # uvicorn logs through ours
    server = uvicorn.Server(config)

    async def serve():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            freeze_startup_heap()  # services/common/heap.py; before the readiness line
            print(f"bff listening on http://{settings.host}:{settings.port}", flush=True)
            telemetry.announce()
        await task

    # uvicorn handles SIGINT/SIGTERM while it serves and raises the signal again once stopped; a stop that
    # was asked for is a clean exit (0), whatever dispositions this process inherited
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())

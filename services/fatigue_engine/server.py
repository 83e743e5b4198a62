"""Run the FatigueEngine gRPC server (health checking and reflection included).

Only the gateway's service identity may call it (bearer JWT, keys from ``JWT_*``;
anonymous callers get UNAUTHENTICATED, other roles PERMISSION_DENIED).
"""

from __future__ import annotations

from services.common.auth import GATEWAY
from services.common.grpc_server import GrpcHost
from services.common.telemetry import setup_telemetry
from services.common.service_callers import ServiceCallers
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2_grpc
from services.common.heap import freeze_startup_heap
from services.fatigue_engine.servicer import SERVICE_NAME, FatigueEngineServicer


def build_host(host: str = "127.0.0.1", port: int = 0, callers: ServiceCallers | None = None) -> GrpcHost:
    """A GrpcHost for ``host:port`` with the FatigueEngine servicer added (not started).

    ``callers``: who may call (``serve`` always passes the gateway identity check; None, for in-process
    tests only, lets anyone in)."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    grpc_host = GrpcHost(address, [callers] if callers is not None else [])
    fatigue_engine_pb2_grpc.add_FatigueEngineServicer_to_server(FatigueEngineServicer(), grpc_host.server)
    return grpc_host


async def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Start, print ``fatigue_engine listening on HOST:PORT`` (flushed), stop on SIGINT/SIGTERM."""
    telemetry = setup_telemetry("fatigue_engine", host)
    grpc_host = build_host(host, port, ServiceCallers.from_env({GATEWAY}, "fatigue_engine"))
    bound = await grpc_host.start([SERVICE_NAME])
    shown = f"[{host}]" if ":" in host else host
    freeze_startup_heap()  # services/common/heap.py; before the readiness line: no caller waits on it
    print(f"fatigue_engine listening on {shown}:{bound}", flush=True)
    telemetry.announce()
    try:
        await grpc_host.wait_for_termination_signal()
    finally:
        await grpc_host.stop()
        telemetry.shutdown()

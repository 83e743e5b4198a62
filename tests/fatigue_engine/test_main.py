"""``python -m services.fatigue_engine``: the listening line, a call, a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_engine_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_module_serves_and_stops_on_signal(sig) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "services.fatigue_engine", "--port", "0", "--host", "127.0.0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("fatigue_engine listening on 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = fatigue_engine_pb2_grpc.FatigueEngineStub(ch).ScoreAds(
                fatigue_engine_pb2.ScoreAdsRequest(insights_version=7), timeout=10)
        assert len(reply.results) == 0
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""``python -m services.fatigue_engine``: the listening line, a call, a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from services.common.auth import GATEWAY, ServiceToken, bearer, mint_token
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_engine_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
SECRET = "engine-test-secret-of-at-least-32-bytes"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_module_serves_and_stops_on_signal(sig) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "services.fatigue_engine", "--port", "0", "--host", "127.0.0.1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "JWT_HS256_SECRET": SECRET})
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("fatigue_engine listening on 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = fatigue_engine_pb2_grpc.FatigueEngineStub(ch)
            request = fatigue_engine_pb2.ScoreAdsRequest(insights_version=7)
            # finding: the engine answered anonymous callers; only the gateway's identity may call it
            for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                                   (bearer(mint_token(SECRET, "reader", ["*"], ["operator"])),
                                    grpc.StatusCode.PERMISSION_DENIED)):
                with pytest.raises(grpc.RpcError) as err:
                    stub.ScoreAds(request, timeout=10, metadata=metadata)
                assert err.value.code() == code, err.value.details()
                assert ("gateway" if code == grpc.StatusCode.PERMISSION_DENIED else "Bearer") in err.value.details()
            reply = stub.ScoreAds(request, timeout=10, metadata=ServiceToken(GATEWAY, {"JWT_HS256_SECRET": SECRET})
                                  .metadata())
        assert len(reply.results) == 0
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

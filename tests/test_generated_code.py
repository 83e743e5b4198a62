"""The committed generated code matches protos/ (fails when someone edits a .proto and forgets to regenerate)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_modules_import_without_path_tricks():
    code = "from services.common.pb.adfatigue.v1 import cache_gateway_pb2_grpc, meta_fetcher_pb2_grpc, " \
           "fatigue_engine_pb2_grpc, scheduler_pb2_grpc; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.stdout.strip() == "ok", result.stderr

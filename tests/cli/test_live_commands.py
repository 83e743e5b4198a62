"""`up --live-demo`, `watch`, `refresh` and `token` as a person runs them: each CLI command its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import jwt
import pytest

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from tests.terminal import run_on_terminal

pytestmark = pytest.mark.e2e

SYNTH = "act_900000000001"
CLI = [sys.executable, "-m", "services.cli.main"]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("ADFATIGUE_TOKEN", "ADFATIGUE_HOME", "JWT_HS256_SECRET",
                                                            "ADFATIGUE_GATEWAY_ADDR")}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """`adfatigue up --live-demo` (global option after the subcommand); yields (data dir, its output so far)."""
    home = tmp_path_factory.mktemp("live")
    log = home / "up.log"
    up = subprocess.Popen([*CLI, "up", "--live-demo", "--gateway-port", "0", "--bff-port", "0", "--no-page",
                           "--data-dir", str(home / "data")],
                          stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=clean_env())
    try:
        deadline = time.monotonic() + 120
        while "press Ctrl-C" not in log.read_text(errors="replace"):
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield home / "data", log.read_text()
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def run(data: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=300,
                          env={**clean_env(), **(env or {})})


def test_watch_waits_with_a_heartbeat_and_shows_live_demo_changes_within_a_minute(live):
    data, output = live
    hint = re.search(r"adfatigue watch --account (\S+) --since (\S+) --until (\S+)", output)
    assert hint and hint[1] == SYNTH, output
    watch = subprocess.Popen([*CLI, "watch", "--account", hint[1], "--since", hint[2], "--until", hint[3],
                              "--heartbeat-seconds", "2", "--data-dir", str(data)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = watch.stdout.readline()
            assert line, "watch ended: " + "".join(seen)
            seen.append(line)
            changes = [x for x in seen if x.startswith(("CHANGE", "SCORE"))]
            if changes and any(x.startswith("still waiting (version") for x in seen):
                break
        text = "".join(seen)
        assert seen[0].startswith("SNAPSHOT"), text
        assert re.search(r"^waiting for changes \(version \d+\)…$", text, re.M), text
        assert re.search(r"^still waiting \(version \d+, last change \d+ s ago\)$", text, re.M), text
        assert any(x.startswith(("CHANGE", "SCORE")) for x in seen), text
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(30)


def test_on_a_terminal_watch_shows_a_live_waiting_line(live):
    data, _ = live
    status, text = run_on_terminal([*CLI, "watch", "--account", SYNTH, "--data-dir", str(data)],
                                   env={"ADFATIGUE_TOKEN": None, "NO_COLOR": None}, stop_after=6)
    assert status == 0, text
    assert "SNAPSHOT" in text and "waiting for changes (version" in text
    assert re.search(r"waiting for changes \(version \d+\)… \d+ s", text), text  # the spinner counts seconds
    assert "still waiting" not in text  # the plain heartbeat lines are for logs only


def test_token_mints_a_development_token_a_grpc_client_can_use(live):
    data, output = live
    out = run(data, "token", "--account", SYNTH, "--ttl", "120")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["accounts"] == [SYNTH] and claims["roles"] == [] and claims["exp"] - claims["iat"] == 120
    gateway = json.loads((data / "endpoints.json").read_text())["cache_gateway"]
    with grpc.insecure_channel(gateway) as channel:  # what the README's grpcurl call does
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        md = (("authorization", f"Bearer {token}"),)
        reply = stub.GetFatigue(gw.GetFatigueRequest(account_id=SYNTH, since="2026-01-01", until="2026-01-02"),
                                metadata=md, timeout=120)
        assert reply.account_id == SYNTH.removeprefix("act_")
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetFatigue(gw.GetFatigueRequest(account_id="act_1001", since="2026-01-01", until="2026-01-02"),
                            metadata=md, timeout=60)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    operator = jwt.decode(run(data, "token", "--account", "*", "--operator").stdout.strip(),
                          options={"verify_signature": False})
    assert operator["roles"] == ["operator"] and operator["accounts"] == ["*"]
    for bad, says in ((["--ttl", "0"], "--ttl 0"), (["--account", "act_x"], "act_<digits>")):
        args = ["token", "--account", SYNTH, *bad] if bad[0] == "--ttl" else ["token", *bad]
        refused = run(data, *args)
        assert refused.returncode == 2 and says in refused.stderr
    nowhere = subprocess.run([*CLI, "token", "--account", SYNTH, "--data-dir", str(data.parent / "nothing")],
                             capture_output=True, text=True, env=clean_env(), timeout=60)
    assert nowhere.returncode == 2 and "dev-jwt-secret" in nowhere.stderr


def test_refresh_fetches_due_days_and_force_needs_the_operator_role(live):
    data, _ = live
    args = ["refresh", "--account", SYNTH, "--since", "2026-02-01", "--until", "2026-02-28"]
    first = run(data, *args)
    assert first.returncode == 0, first.stderr
    assert "fetched 2026-02-01 … 2026-02-28" in first.stdout and "Meta call" in first.stdout
    again = run(data, *args)
    assert "nothing was due, no Meta call" in again.stdout
    forced = run(data, *args, "--force")
    assert forced.returncode == 0 and "fetched 2026-02-01 … 2026-02-28" in forced.stdout
    reader = run(data, "token", "--account", SYNTH).stdout.strip()
    refused = run(data, *args, "--force", env={"ADFATIGUE_TOKEN": reader})
    assert refused.returncode == 2 and refused.stderr.startswith("PERMISSION_DENIED"), refused.stderr
    bad = run(data, "refresh", "--account", SYNTH, "--since", "2026-01-31", "--until", "2026-01-01")
    assert bad.returncode == 2 and bad.stderr.startswith("INVALID_ARGUMENT") and "swap" in bad.stderr

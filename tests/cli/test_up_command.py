"""`adfatigue up` as a user runs it: one per data folder, and SIGTERM or Ctrl-C leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and (Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z")


def ignore_stop_signals() -> None:
    """What a script's background job inherits (SIGINT ignored), and worse: SIGTERM ignored too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def start_up(data_dir: Path, log: Path, inherit_ignored: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli.main", "up", "--data-dir", str(data_dir),
                             "--gateway-port", "0", "--bff-port", "0"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, preexec_fn=ignore_stop_signals if inherit_ignored else None)


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.mark.parametrize("stop_signal,inherit_ignored", [(signal.SIGTERM, False), (signal.SIGINT, False),
                                                        (signal.SIGINT, True), (signal.SIGTERM, True)])
def test_second_up_on_the_same_folder_is_refused_and_a_signal_stops_everything(tmp_path, stop_signal,
                                                                               inherit_ignored, page_built):
    # page_built: `up` builds the page in web/ on its first run; the fixture does it once, under the lock that keeps
    # two pytest-xdist workers from running npm there at the same time
    data_dir = tmp_path / "home"
    first = start_up(data_dir, tmp_path / "first.log", inherit_ignored)
    try:
        wait_for(tmp_path / "first.log", "press Ctrl-C", first)
        kids = children_of(first.pid)
        assert len(kids) == 7  # store, sandbox, fetcher, engine, gateway, scheduler, bff
        assert "/ad-fatigue/sign-in?token=" in (tmp_path / "first.log").read_text()
        second = subprocess.run([sys.executable, "-m", "services.cli.main", "--data-dir", str(data_dir), "up",
                                 "--gateway-port", "0", "--bff-port", "0"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr
        assert (data_dir / "endpoints.json").exists()  # the refused one left the running one alone
        first.send_signal(stop_signal)
        if stop_signal == signal.SIGINT:
            time.sleep(0.3)
            first.send_signal(signal.SIGINT)  # an impatient second Ctrl-C
        assert first.wait(60) == 0
        deadline = time.monotonic() + 10
        while any(alive(k) for k in kids):
            assert time.monotonic() < deadline, [k for k in kids if alive(k)]
            time.sleep(0.1)
        log = (tmp_path / "first.log").read_text()
        assert "Traceback" not in log
        # not a terminal: start-up progress as plain lines, one per part, then the total
        assert "starting cache_gateway (5/7) ..." in log and "starting: 7/7 parts done in " in log
    finally:
        if first.poll() is None:
            first.kill()


def test_a_taken_port_is_said_in_one_line_with_what_to_do():
    """Finding: a second `up` from another folder printed the gateway's whole traceback."""
    from services.cli.up_command import _failure_text

    text = _failure_text("cache_gateway exited with code 1:\nTraceback (most recent call last):\n  File ...\n"
                         "OSError: cannot listen on 127.0.0.1:50051: the port is in use or the address is not local")
    assert text.startswith("cache_gateway: cannot listen on 127.0.0.1:50051") and "Traceback" not in text
    assert "--gateway-port 0 --bff-port 0" in text and "--data-dir" in text
    assert _failure_text("meta_fetcher exited with code 2: bad setting") == "meta_fetcher exited with code 2: bad setting"
    # the BFF's own words for it (a new-user trial: its hint named the BFF's --port, not up's flags)
    bff = _failure_text("bff exited with code 1:\nbff: cannot listen on 127.0.0.1:8080: Address already in use; "
                        "choose another port (--port; under `adfatigue up`: --bff-port)")
    assert bff.startswith("bff: cannot listen on 127.0.0.1:8080: Address already in use. Another") and \
        "--gateway-port 0 --bff-port 0" in bff
    # a real traceback echoes the source line that raised, with its f-string unformatted (a new user saw
    # "cannot listen on {self.address}: ... not local\")" printed): the message is the exception's own line
    traced = _failure_text(
        "cache_gateway exited with code 1:\nTraceback (most recent call last):\n"
        '  File "services/common/grpc_server.py", line 146, in start\n'
        '    raise OSError(f"cannot listen on {self.address}: the port is in use or the address is not local")\n'
        "OSError: cannot listen on 127.0.0.1:50051: the port is in use or the address is not local")
    assert traced.startswith("cache_gateway: cannot listen on 127.0.0.1:50051: the port is in use or the address is "
                             "not local. Another") and "{" not in traced and '")' not in traced


def test_status_names_its_own_flag_when_the_scheduler_does_not_answer():
    """Finding: `status` said to pass --gateway / ADFATIGUE_GATEWAY_ADDR; it takes --scheduler."""
    import grpc

    from services.cli.gateway_calls import rpc_failure_text, unreachable_hint

    class Refused(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "failed to connect to all addresses; last error: connection refused"

    hint = unreachable_hint(Refused(), "127.0.0.1:50054", flag="--scheduler", variable="")
    assert "--scheduler HOST:PORT" in hint and "--gateway" not in hint and "ADFATIGUE_GATEWAY_ADDR" not in hint
    assert "--gateway HOST:PORT / set ADFATIGUE_GATEWAY_ADDR" in unreachable_hint(Refused(), "127.0.0.1:50051")
    # said alone: gRPC's transport text is not shown before it (a new-user trial)
    assert rpc_failure_text(Refused(), "127.0.0.1:50054").startswith("nothing answers at 127.0.0.1:50054")


def test_a_service_that_dies_is_started_again_on_its_port_and_up_keeps_running(tmp_path, page_built):
    """Attacker trial finding: one child exiting stopped the whole system."""
    import json
    data_dir = tmp_path / "home"
    log = tmp_path / "up.log"
    up = start_up(data_dir, log)
    try:
        wait_for(log, "press Ctrl-C", up)
        before = json.loads((data_dir / "endpoints.json").read_text())
        engine = next(k for k in children_of(up.pid)
                      if b"services.fatigue_engine" in Path(f"/proc/{k}/cmdline").read_bytes())
        os.kill(engine, signal.SIGKILL)
        wait_for(log, f"fatigue_engine is back on {before['fatigue_engine']}", up)
        assert "fatigue_engine exited (code -9); starting it again" in log.read_text()
        assert not alive(engine) and up.poll() is None
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            up.kill()
    assert "Traceback" not in log.read_text()


def test_supervise_gives_up_after_too_many_restarts(capsys, tmp_path):
    """A service that keeps dying is restarted RESTARTS_MAX times, then `up` stops with status 1."""
    from types import SimpleNamespace

    from services.cli.up_command import RESTARTS_MAX, supervise

    class Dying:
        proc = SimpleNamespace(returncode=3)
        address = "127.0.0.1:1"

        def alive(self):
            return False

    class System:
        logs = tmp_path
        processes = {"meta_fetcher": Dying()}
        restarted = 0

        def restart(self, name):
            self.restarted += 1
            return self.processes[name]

    system = System()
    assert supervise(system, poll_s=0) == 1
    assert system.restarted == RESTARTS_MAX
    assert f"{RESTARTS_MAX} restarts in the last 5 min were not enough" in capsys.readouterr().err

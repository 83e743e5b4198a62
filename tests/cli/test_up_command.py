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
                                                                               inherit_ignored):
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

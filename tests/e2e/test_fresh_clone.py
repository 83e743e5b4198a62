"""A clone alone runs: the README's run command needs nothing beside the repository.

The repository is cloned into an empty folder (so there is no ``../shared``
beside it), and the README's run command is started there as written, with
the project's interpreter standing in for ``.venv/bin/adfatigue`` (installing
a second virtualenv would only test pip). It must come far enough to print
the sample account's fatigue report, and ``adfatigue report`` run from the
clone's folder must read that account from it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def readme_run_command() -> list[str]:
    """The ``adfatigue up ...`` part of the first bash block of the README, as argv after ``adfatigue``."""
    block = re.search(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    assert block, "README has no bash block"
    last = block[1].split("&&")[-1].strip()
    words = shlex.split(last)
    assert words[0] == ".venv/bin/adfatigue" and words[1] == "up", last
    return words[1:]


def clone(tmp_path: Path) -> Path:
    target = tmp_path / "empty" / "adfatigue"
    target.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True, timeout=120)
    assert not (target.parent.parent / "shared").exists() and sorted(p.name for p in target.parent.iterdir()) == ["adfatigue"]
    return target


def test_readme_links_point_to_files_that_exist():
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links, "the README links to the docs"
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert not missing
    for doc in ("docs/fatigue-score.md", "data/README.md"):
        assert doc in text
    # no file of the README's own words lives outside the repository
    for outside in ("../shared", "FATIGUE_SPEC.md", "DESIGN.md", "META_GRAPH_API.md", "DATA_PITFALLS.md"):
        assert outside not in text, f"the README names {outside}, which is not in the repository"


def test_the_readme_run_command_serves_the_sample_account_from_a_clone_alone(tmp_path):
    argv = readme_run_command()
    assert not any(a.startswith("..") or "/shared/" in a for a in argv), argv
    folder = clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("ADFATIGUE_HOME", "ADFATIGUE_GATEWAY_ADDR",
                                                           "ADFATIGUE_TOKEN", "JWT_HS256_SECRET")}
    env["PYTHONPATH"] = str(folder)  # the clone's code, not this checkout's
    which = subprocess.run([sys.executable, "-c", "import services; print(services.__file__)"], cwd=folder,
                           env=env, capture_output=True, text=True, check=True)
    assert which.stdout.strip().startswith(str(folder))
    log = tmp_path / "up.log"
    # free ports: the only change to the README's command, so that tests never collide on 50051 / 8080
    up = subprocess.Popen([sys.executable, "-m", "services.cli.main", *argv, "--gateway-port", "0", "--bff-port", "0"],
                          cwd=folder,
                          env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "press Ctrl-C" not in log.read_text(errors="replace"):
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert "fatigue of act_1001" in text and "Ad 001 Video 003" in text, text
        report = subprocess.run([sys.executable, "-m", "services.cli.main", "report", "--account", "act_1001",
                                 "--since", "2025-10-29", "--until", "2026-04-29", "--format", "json"],
                                cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        assert report.returncode == 0, report.stderr
        assert '"Ad 001 Video 003"' in report.stdout
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, log.read_text()
    finally:
        if up.poll() is None:  # a failed assertion: let `up` stop its services, then make sure
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()

"""Long steps show progress: a rich bar on a terminal, plain lines otherwise (backup and restore through the
CLI as processes, plain and on a pseudo-terminal; the helper itself on both kinds of console)."""

from __future__ import annotations

import io
import subprocess
import sys

from pymongo import MongoClient
from rich.console import Console

from services.cli.progress import Steps, waiting
from tests.terminal import run_on_terminal

CLI = [sys.executable, "-m", "services.cli.main"]


def test_plain_lines_off_a_terminal_and_a_bar_on_one():
    for terminal in (False, True):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=100)
        with Steps(console, "starting", 3, "parts") as steps:
            for name in ("mongodb", "meta_fetcher", "cache_gateway"):
                steps.step(name)
        with waiting(console, "fetching act_1"):
            pass
        text = out.getvalue()
        if terminal:
            assert "━" in text and "3/3" in text and "\x1b[" in text
        else:
            assert text.splitlines() == ["starting mongodb (1/3) ...", "starting meta_fetcher (2/3) ...",
                                         "starting cache_gateway (3/3) ...", text.splitlines()[3],
                                         "fetching act_1 ...", text.splitlines()[5]]
            assert text.splitlines()[3].startswith("starting: 3/3 parts done in ")
            assert "\x1b[" not in text


def on_terminal(argv: list[str], cwd) -> str:
    status, text = run_on_terminal(argv, cwd=cwd)
    assert status == 0, text
    return text


def test_backup_and_restore_show_progress(mongo_uri, db_name, tmp_path):
    with MongoClient(mongo_uri) as client:
        client[db_name]["insights"].insert_many([{"n": i} for i in range(2500)])
        client[db_name]["scores"].insert_many([{"n": i} for i in range(10)])
        try:
            store = ["--mongodb-uri", mongo_uri, "--db", db_name]
            plain = subprocess.run([*CLI, "backup", "--out", str(tmp_path / "a"), *store], capture_output=True,
                                   text=True, timeout=120, cwd=tmp_path)
            assert plain.returncode == 0, plain.stderr
            lines = plain.stdout.splitlines()
            assert "backing up insights (1/2) ..." in lines and "backing up scores (2/2) ..." in lines
            assert any(line.startswith("backing up: 2/2 collections done in ") for line in lines)
            bar = on_terminal([*CLI, "backup", "--out", str(tmp_path / "b"), *store], tmp_path)
            assert "━" in bar and "2/2" in bar
            client.drop_database(db_name)
            restored = subprocess.run([*CLI, "restore", str(tmp_path / "a"), *store], capture_output=True,
                                      text=True, timeout=120, cwd=tmp_path)
            assert restored.returncode == 0, restored.stderr
            assert "restoring insights (0/2510 documents so far) ..." in restored.stdout
            assert "restoring scores (2500/2510 documents so far) ..." in restored.stdout
            assert "restoring: 2510/2510 documents done in " in restored.stdout
            assert client[db_name]["insights"].count_documents({}) == 2500
        finally:
            client.drop_database(db_name)

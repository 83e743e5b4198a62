"""Run a command with a pseudo-terminal as its stdout: a real tty, so rich decides colour and live output itself."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time


def run_on_terminal(argv: list[str], env: dict | None = None, cwd=None, stop_after: float | None = None,
                    timeout: float = 120) -> tuple[int, str]:
    """(exit status, everything written to the terminal). ``env`` values of None unset a variable;
    ``stop_after``: send SIGINT after that many seconds."""
    master, slave = pty.openpty()
    merged = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color", **(env or {})}
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.STDOUT, cwd=cwd,
                            env={k: v for k, v in merged.items() if v is not None})  # None: unset it
    os.close(slave)
    chunks: list[bytes] = []
    started = time.monotonic()
    interrupted = False
    try:
        while True:
            if stop_after is not None and not interrupted and time.monotonic() - started > stop_after:
                proc.send_signal(signal.SIGINT)
                interrupted = True
            assert time.monotonic() - started < timeout, b"".join(chunks).decode(errors="replace")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None and not interrupted:
            proc.send_signal(signal.SIGINT)
    return proc.wait(30), b"".join(chunks).decode(errors="replace")

"""Child processes of ``adfatigue up``: start, wait until listening, stop cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (?:http://)?(?P<host>[\w.\-\[\]:]+?):(?P<port>\d+)\s*$", re.MULTILINE)
_METRICS = re.compile(r"metrics on (?P<url>http://\S+/metrics)\s*$", re.MULTILINE)


class ServiceProcess:
    """``python -m <module> <args>`` with stdout+stderr in ``log_path``.

    ``start`` returns once the process printed ``<name> listening on HOST:PORT``
    (the bound port, so ``--port 0`` works) or raises RuntimeError with the
    log's tail when it exits or ``timeout`` passes first.
    """

    def __init__(self, name: str, module: str, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None):
        """``prefix``: a command the interpreter runs under (the benchmarks' ``valgrind --tool=callgrind ...``)."""
        self.name = name
        self.prefix = list(prefix or [])
        self.module = module
        self.args = args
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._start_offset = 0
        self.host = ""
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServiceProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        start_offset = self._start_offset = log.tell()  # the log is appended to: this run's lines start here
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", self.module, *self.args], stdout=log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as fh:
                fh.seek(start_offset)
                text = fh.read().decode(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.host, self.port = match["host"], int(match["port"])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f}s:\n{self.tail()}")

    def serves_metrics(self) -> bool:
        """False when its environment turns ``/metrics`` off (``ADFATIGUE_TELEMETRY=off``, ``METRICS_PORT=-1``):
        then it prints no ``metrics on`` line, and there is none to wait for."""
        from services.common.settings import TelemetrySettings
        try:
            settings = TelemetrySettings.from_env({**os.environ, **(self.env or {})})
        except ValueError:  # a bad value: the service itself says so at start-up
            return True
        return settings.telemetry_enabled and settings.metrics_port >= 0

    def metrics_url(self, timeout: float = 5.0) -> str | None:
        """The ``/metrics`` URL the service printed after its ``listening on`` line (None: it has none)."""
        if not self.serves_metrics():
            return None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.log_path, "rb") as fh:
                    fh.seek(self._start_offset)  # this run's line, not an earlier run's in the same log
                    match = _METRICS.search(fh.read().decode(errors="replace"))
            except OSError:
                match = None
            if match or time.monotonic() >= deadline or not self.alive():
                return match["url"] if match else None
            time.sleep(0.05)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the services stop gracefully on it), then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

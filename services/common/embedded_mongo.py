"""The embedded MongoDB-wire server for local runs and tests (DESIGN.md §5).

With no ``MONGODB_URI`` the system starts SecantusDB (PyPI ``secantusdb``,
GPL-2.0, beta: an optional extra, never the production image): a real
MongoDB wire-protocol server on a free local port over WiredTiger storage. It
advertises itself as a single-node replica set, so change streams work.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedMongo:
    """A SecantusDB server process; ``uri`` is ready once ``start`` returns.

    ``storage_path`` keeps data across restarts (``None`` = a throw-away
    in-memory store). Raises RuntimeError when the package is not installed
    or the server does not answer within ``timeout`` seconds.
    """

    def __init__(self, storage_path: str | Path | None, port: int | None = None, log_path: str | Path | None = None,
                 test_commands: bool = False):
        """``test_commands``: accept mongod's ``configureFailPoint`` (fault-injection tests only: any client that
        reaches the port could then make the server fail commands)."""
        self.test_commands = test_commands
        self.storage_path = str(storage_path) if storage_path else ":memory:"
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _command(self) -> list[str]:
        exe = shutil.which("secantusd-py", path=os.path.dirname(sys.executable)) or shutil.which("secantusd-py")
        if not exe:
            raise RuntimeError(
                "no MONGODB_URI set and the embedded store is not installed: "
                "pip install -e '.[embedded]' or set MONGODB_URI=mongodb://..."
            )
        return [exe, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", self.storage_path,
                "--log-level", "WARNING", "--cache-size", "256M",
                *(["--enable-test-commands"] if self.test_commands else [])]

    def start(self, timeout: float = 30.0) -> "EmbeddedMongo":
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = MongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"embedded MongoDB (SecantusDB) exited with code {self.proc.returncode}")
                try:
                    client.admin.command("ping")
                    return self
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"embedded MongoDB did not answer on port {self.port} within {timeout}s")
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "EmbeddedMongo":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""``python -m services.meta_sandbox`` as a process: prints its address, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


async def test_runner_prints_address_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.meta_sandbox", "--port", "0", "--host", "127.0.0.1",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("meta_sandbox listening on http://127.0.0.1:"), line
        base = line.rsplit(" ", 1)[1]
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"{base}/v23.0/act_900000000001", params={"access_token": "t", "fields": "currency"})
            assert resp.json()["currency"] == "USD"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

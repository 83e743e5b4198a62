"""``python -m services.meta_sandbox`` as a process: prints its address, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def sandbox_process(**env: str):
    """A sandbox process on a free port: yields (its base URL, the line it printed); on exit it must stop on
    SIGTERM with status 0 (killed if the test failed first)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.meta_sandbox", "--port", "0", "--host", "127.0.0.1",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        yield line.rsplit(" ", 1)[1], line
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_runner_prints_address_serves_and_stops_on_sigterm() -> None:
    async with sandbox_process() as (base, line):
        assert line.startswith("meta_sandbox listening on http://127.0.0.1:"), line
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"{base}/v23.0/act_900000000001", params={"access_token": "t", "fields": "currency"})
            assert resp.json()["currency"] == "USD"


async def test_the_app_secret_comes_from_sandbox_app_secret() -> None:
    """SANDBOX_APP_SECRET (services/meta_sandbox/settings.py) reaches the process: calls need appsecret_proof."""
    secret = "sandbox-app-secret-for-the-test"
    async with sandbox_process(SANDBOX_APP_SECRET=secret) as (base, _):
        url, params = f"{base}/v23.0/act_900000000001", {"access_token": "t", "fields": "currency"}
        async with httpx.AsyncClient() as http:
            refused = await http.get(url, params=params)
            assert refused.status_code == 400 and "appsecret_proof" in refused.json()["error"]["message"]
            proof = hmac.new(secret.encode(), b"t", hashlib.sha256).hexdigest()
            assert (await http.get(url, params={**params, "appsecret_proof": proof})).json()["currency"] == "USD"

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


async def test_the_app_secret_comes_from_sandbox_app_secret() -> None:
    """SANDBOX_APP_SECRET (services/meta_sandbox/settings.py) reaches the process: calls need appsecret_proof."""
    import hashlib
    import hmac

    secret = "sandbox-app-secret-for-the-test"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.meta_sandbox", "--port", "0", "--host", "127.0.0.1",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "SANDBOX_APP_SECRET": secret})
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        base = line.rsplit(" ", 1)[1]
        url, params = f"{base}/v23.0/act_900000000001", {"access_token": "t", "fields": "currency"}
        async with httpx.AsyncClient() as http:
            refused = await http.get(url, params=params)
            assert refused.status_code == 400 and "appsecret_proof" in refused.json()["error"]["message"]
            proof = hmac.new(secret.encode(), b"t", hashlib.sha256).hexdigest()
            assert (await http.get(url, params={**params, "appsecret_proof": proof})).json()["currency"] == "USD"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

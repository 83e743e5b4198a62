"""Token refresh before expiry (fb_exchange_token, debug_token), the admin CLI, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import date, datetime, timedelta, timezone

import grpc
import httpx
import pytest

from services.meta_fetcher import token_admin
from services.meta_fetcher.graph_client import GraphClient
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher.token_refresh import TokenRefresher
from services.meta_fetcher.token_vault import Keyring, TokenVault
from services.meta_sandbox import sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import FAST, fetcher_stub, post, request, sandbox_stats

ACC = "900000000001"
SINCE, UNTIL = "2026-02-24", "2026-02-28"
APP_ID, APP_SECRET = "1234567890", "app-secret-Zq81"
K1, K2 = Keyring.generate_key(), Keyring.generate_key()


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)


def now() -> datetime:
    return datetime.now(timezone.utc)


async def refresher_for(base: str, vault: TokenVault, **overrides) -> tuple[TokenRefresher, GraphClient]:
    settings = FetcherSettings(graph_url=base, app_id=APP_ID, app_secret=APP_SECRET, **{**FAST, **overrides})
    client = GraphClient(settings)
    return TokenRefresher(vault, client), client


async def test_a_token_near_expiry_is_exchanged_and_calls_use_the_new_one(mongo_uri, mongo, account) -> None:
    client, db = mongo
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    await vault.put(ACC, "short-lived-token-1", expires_at=now() + timedelta(days=1))
    async with sandbox_server([account], synthetic=False, app_id=APP_ID, app_secret=APP_SECRET,
                              tokens={"short-lived-token-1": now() + timedelta(days=1)}) as base:
        refresher, graph = await refresher_for(base, vault)
        async with graph:
            report = await refresher.run_once()
            assert (report.exchanged, report.failed, report.invalidated) == (1, 0, 0)
            assert (await refresher.run_once()).exchanged == 0  # no longer due
        entry = await vault.get(ACC)
        assert entry.access_token != "short-lived-token-1" and entry.generation == 2 and entry.valid
        assert timedelta(days=59) < entry.expires_at - now() < timedelta(days=61)  # expires_in 5183944 s
        assert entry.refresh_due_at == entry.expires_at - timedelta(days=7)
        assert (await sandbox_stats(base))["token_requests"] == 1
        # the old token stops working; the fetcher already uses the new one
        async with httpx.AsyncClient() as http:
            await http.post(f"{base}/_sandbox/tokens", json={"token": "short-lived-token-1", "revoke": True})
        async with fetcher_stub(base, app_secret=APP_SECRET, mongodb_uri=mongo_uri, mongodb_db=db,
                                token_keys=f"k1:{K1}") as stub:
            assert len((await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows) == len(account.rows)


async def test_an_unknown_expiry_is_learnt_from_debug_token(mongo, account) -> None:
    client, db = mongo
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    expiry = (now() + timedelta(days=30)).replace(microsecond=0)
    await vault.put("1001", "system-user-token", token_type="system_user", refresh_method="none")
    await vault.put("1002", "user-token-30d")
    await vault.put("1003", "already-dead-token")
    async with sandbox_server([account], synthetic=False, app_id=APP_ID, app_secret=APP_SECRET,
                              tokens={"system-user-token": None, "user-token-30d": expiry,
                                      "already-dead-token": now() - timedelta(days=1)}) as base:
        refresher, graph = await refresher_for(base, vault)
        async with graph:
            report = await refresher.run_once()
    assert (report.expiry_learnt, report.invalidated, report.exchanged) == (2, 1, 0)
    system = await vault.get("1001")
    assert system.never_expires and system.expires_at is None and system.refresh_due_at is None
    user = await vault.get("1002")
    assert user.expires_at == expiry and user.refresh_due_at == expiry - timedelta(days=7)
    dead = await vault.get("1003")
    assert dead.status == "invalid" and "is_valid=false" in dead.invalid_reason


async def test_refresh_failures_invalidate_on_190_and_postpone_what_cannot_be_exchanged(mongo, account) -> None:
    client, db = mongo
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    soon = now() + timedelta(days=2)
    await vault.put("1001", "rejected-token-a", expires_at=soon)
    await vault.put("1002", "system-token-b", expires_at=soon, token_type="system_user", refresh_method="none")
    async with sandbox_server([account], synthetic=False, app_id=APP_ID, app_secret=APP_SECRET,
                              tokens=["system-token-b"]) as base:
        refresher, graph = await refresher_for(base, vault)
        async with graph:
            report = await refresher.run_once()
    assert (report.invalidated, report.postponed, report.exchanged) == (1, 1, 0)
    assert (await vault.get("1001")).status == "invalid"
    postponed = await vault.get("1002")
    assert postponed.valid and postponed.refresh_due_at == soon.replace(microsecond=postponed.refresh_due_at.microsecond)
    assert await vault.due_for_refresh(now()) == []


async def test_refresh_is_off_without_app_credentials(mongo) -> None:
    client, db = mongo
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    await vault.put("1001", "some-token-abc", expires_at=now() + timedelta(hours=1))
    async with GraphClient(FetcherSettings(graph_url="http://127.0.0.1:9", **FAST)) as graph:
        refresher = TokenRefresher(vault, graph)
        assert not refresher.enabled and (await refresher.run_once()).exchanged == 0
        await refresher.run_forever()  # returns at once


# ------------------------------------------------------------------ CLI


def cli(args: list[str], env: dict, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = token_admin.main(args, env=env, stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


async def test_cli_puts_from_stdin_or_a_file_shows_and_rotates(mongo_uri, mongo, tmp_path, capsys) -> None:
    client, db = mongo
    env = {"MONGODB_URI": mongo_uri, "MONGODB_DB": db, "TOKEN_KEYS": f"k1:{K1}"}
    code, out = await asyncio.to_thread(cli, ["put", "--account", "act_1001", "--token-file", "-",
                                              "--expires-in-days", "60"], env, "stdin-token-value-1\n")
    assert code == 0 and "generation 1, key k1" in out and "stdin-token-value-1" not in out
    path = tmp_path / "token.txt"
    path.write_text("file-token-value-2\n")
    code, out = await asyncio.to_thread(cli, ["put", "--account", "1002", "--token-file", str(path),
                                              "--never-expires", "--token-type", "system_user"], env)
    assert code == 0 and "expires never" in out
    code, out = await asyncio.to_thread(cli, ["show", "--account", "act_1002"], env)
    assert code == 0 and "kid: k1" in out and "status: valid" in out and "file-token" not in out
    env2 = {**env, "TOKEN_KEYS": f"k1:{K1},k2:{K2}", "TOKEN_ACTIVE_KEY": "k2"}
    code, out = await asyncio.to_thread(cli, ["rotate"], env2)
    assert code == 0 and "rotated 2" in out
    retired = TokenVault.from_client(client, db, Keyring.parse(f"k2:{K2}"))
    assert (await retired.get("1001")).access_token == "stdin-token-value-1"
    assert (await retired.get("1002")).never_expires
    # finding: token_admin was not audited; every command is, with who ran it and the outcome (never a token)
    audit = [d async for d in client[db]["audit"].find({}, {"_id": 0}).sort("at", 1)]
    assert [(d["method"], d["account_id"], d["status"]) for d in audit] == [
        ("token_admin.put", "act_1001", "OK"), ("token_admin.put", "1002", "OK"),
        ("token_admin.show", "act_1002", "OK"), ("token_admin.rotate", "", "OK")]
    assert {d["service"] for d in audit} == {"token_admin"} and all("@" in d["subject"] for d in audit)
    assert not any("token-value" in str(d) for d in audit)
    code, out = await asyncio.to_thread(cli, ["genkey", "--kid", "k3"], {})
    assert code == 0 and len(Keyring.parse(out.strip()).keys["k3"]) == 32
    # a token on the command line is refused and never echoed
    with pytest.raises(SystemExit) as exit_:
        token_admin.main(["put", "--account", "1001", "--token-file", "-", "--token", "argv-token-123"], env=env)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argv-token-123" not in err and "never from the command line" in err
    code, _ = await asyncio.to_thread(cli, ["put", "--account", "1001", "--token-file", "-"], env, "two words\n")
    assert code == 1 and "more than one word" in capsys.readouterr().err


# ------------------------------------------------------------------ secrecy


async def test_no_token_app_secret_or_key_appears_in_any_log_output_or_error(mongo_uri, mongo, account, caplog,
                                                                             capsys) -> None:
    """A whole vault lifecycle at DEBUG: store (CLI), fetch, rotate, refresh, Meta's 190 quoting the token,
    fail fast. Every log record, printed line, gRPC message and stored reason is searched for every secret."""
    client, db = mongo
    caplog.set_level(logging.DEBUG)
    first = "EAABsecretFirstToken0123456789"
    env = {"MONGODB_URI": mongo_uri, "MONGODB_DB": db, "TOKEN_KEYS": f"k1:{K1}"}
    texts: list[str] = []
    code, out = await asyncio.to_thread(cli, ["put", "--account", f"act_{ACC}", "--token-file", "-",
                                              "--expires-in-days", "2"], env, first)
    assert code == 0
    texts.append(out)
    keys = f"k1:{K1},k2:{K2}"
    # no app id: the fetcher's own background refresher stays off, the pass below is run explicitly
    settings = dict(app_secret=APP_SECRET, mongodb_uri=mongo_uri, mongodb_db=db, token_keys=keys,
                    token_active_key="k2")
    async with sandbox_server([account], synthetic=False, app_id=APP_ID, app_secret=APP_SECRET,
                              tokens=[first]) as base:
        async with fetcher_stub(base, **settings) as stub:
            assert (await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows
            code, out = await asyncio.to_thread(cli, ["rotate"], {**env, "TOKEN_KEYS": keys, "TOKEN_ACTIVE_KEY": "k2"})
            texts.append(out)
            vault = TokenVault.from_client(client, db, Keyring.parse(keys, "k2"))
            refresher, graph = await refresher_for(base, vault)
            async with graph:
                assert (await refresher.run_once()).exchanged == 1
            second = (await vault.get(ACC)).access_token
            assert (await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows
            await post(base, "/_sandbox/faults", {"account_id": ACC, "kind": "error", "code": 190, "subcode": 460,
                                                  "message": f"Error validating access token {second} for "
                                                             f"app {APP_ID}|{APP_SECRET}"})
            for _ in range(2):  # Meta's 190, then the fast failure
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.FetchInsights(request(ACC, SINCE, UNTIL))
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                texts.append(err.value.details())
        texts.append(json.dumps(await sandbox_stats(base)))
    texts.append(json.dumps([{k: str(v) for k, v in d.items()} async for d in client[db].tokens.find()]))
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    texts += [str(r.__dict__) for r in caplog.records]
    everything = "\n".join(texts)
    assert "HTTP Request: GET" in caplog.text and "oauth/access_token" in caplog.text  # the logs were captured
    assert "[REDACTED]" in everything
    for secret in (first, second, APP_SECRET, K1, K2):
        assert secret not in everything, f"a secret leaked ({secret[:4]}...)"


async def test_the_running_fetcher_refreshes_due_tokens_in_the_background(mongo_uri, mongo, account) -> None:
    client, db = mongo
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    await vault.put(ACC, "short-lived-token-9", expires_at=now() + timedelta(days=3))
    async with sandbox_server([account], synthetic=False, app_id=APP_ID, app_secret=APP_SECRET,
                              tokens=["short-lived-token-9"]) as base, \
            fetcher_stub(base, app_id=APP_ID, app_secret=APP_SECRET, mongodb_uri=mongo_uri, mongodb_db=db,
                         token_keys=f"k1:{K1}", token_refresh_interval_s=0.05) as stub:
        for _ in range(400):  # the refresher runs beside the server; wait for its first pass
            if (await vault.get(ACC)).generation == 2:
                break
            await asyncio.sleep(0.025)
        entry = await vault.get(ACC)
        assert entry.generation == 2 and entry.access_token != "short-lived-token-9"
        async with httpx.AsyncClient() as http:
            await http.post(f"{base}/_sandbox/tokens", json={"token": "short-lived-token-9", "revoke": True})
        assert len((await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows) == len(account.rows)


async def test_cli_runs_as_a_module_and_reads_the_token_from_stdin(mongo_uri, mongo) -> None:
    import os
    import sys

    from tests.meta_fetcher.helpers import REPO

    client, db = mongo
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": db, "TOKEN_KEYS": f"k1:{K1}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.meta_fetcher.token_admin", "put", "--account", "act_31337",
        "--token-file", "-", cwd=REPO, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(b"EAABprocessToken42\n"), 60)
    assert proc.returncode == 0, err.decode()
    assert b"EAABprocessToken42" not in out + err and b"act_31337" in out
    vault = TokenVault.from_client(client, db, Keyring.parse(f"k1:{K1}"))
    assert (await vault.get("31337")).access_token == "EAABprocessToken42"

"""Token vault (DESIGN.md R9): AES-256-GCM at rest, key rotation, tamper detection, invalidation on 190.

MongoDB is the session's real server (``mongo_uri``), one database per test;
the Graph API is the sandbox over HTTP; the fetcher is served over gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import date, datetime, timedelta, timezone

import grpc
import pytest
from bson.binary import Binary

from services.meta_fetcher.token_vault import (
    Keyring,
    TokenDecryptError,
    TokenKeyConfigError,
    TokenKeyUnknown,
    TokenVault,
)
from services.meta_sandbox import sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import fetcher_stub, post, request, sandbox_stats

ACC = "900000000001"
SINCE, UNTIL = "2026-02-24", "2026-02-28"
K1, K2 = Keyring.generate_key(), Keyring.generate_key()


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)


def vault_of(mongo, keys: str, active: str | None = None) -> TokenVault:
    client, db = mongo
    return TokenVault.from_client(client, db, Keyring.parse(keys, active))


def vault_settings(mongo_uri: str, db: str, keys: str, active: str | None = None) -> dict:
    return dict(mongodb_uri=mongo_uri, mongodb_db=db, token_keys=keys, token_active_key=active)


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize("keys, active, words", [
    ("", None, "no token keys"),
    ("k1", None, "entry 1 is not 'kid:base64key'"),
    (f"k1:{K1},k1:{K2}", "k1", "twice"),
    ("k1:not*base64!", None, "not base64"),
    (f"k1:{base64.b64encode(b'x' * 24).decode()}", None, "24 bytes"),
    (f"k1:{K1},k2:{K2}", None, "TOKEN_ACTIVE_KEY is required"),
    (f"k1:{K1}", "k9", "'k9' is not among"),
    (f"bad id:{K1}", None, "key id 'bad id'"),
], ids=["empty", "no-key", "id-twice", "not-base64", "24-bytes", "no-active-key", "unknown-active-key", "bad-id"])
# (ids without the keys: K1 and K2 are random, and pytest-xdist's workers must collect the same test names)
def test_bad_key_configuration_is_explained_without_key_material(keys, active, words) -> None:
    with pytest.raises(TokenKeyConfigError) as err:
        Keyring.parse(keys, active)
    assert words in str(err.value)
    assert K1 not in str(err.value) and K2 not in str(err.value)


def test_keyring_repr_shows_key_ids_only() -> None:
    ring = Keyring.parse(f"k1:{K1},k2:{K2}", "k2")
    assert "k2" in repr(ring) and K1 not in repr(ring) and K2 not in repr(ring)
    assert ring.key_ids == ("k1", "k2")


# ------------------------------------------------------------------ at rest


async def test_tokens_are_encrypted_at_rest_with_a_fresh_nonce_each_time(mongo) -> None:
    vault = vault_of(mongo, f"k1:{K1}")
    client, db = mongo
    first = await vault.put("act_42", "EAAB-secret-token-value-1", expires_at=datetime(2026, 9, 1, tzinfo=timezone.utc))
    raw1 = await client[db].tokens.find_one({"_id": "42"})
    await vault.put("act_42", "EAAB-secret-token-value-1")
    raw2 = await client[db].tokens.find_one({"_id": "42"})
    for raw in (raw1, raw2):
        blob = json.dumps({k: str(v) for k, v in raw.items()}) + bytes(raw["ciphertext"]).hex()
        assert b"EAAB" not in bytes(raw["ciphertext"]) and "EAAB" not in blob and "2026-09-01" not in blob
        assert raw["kid"] == "k1" and len(bytes(raw["nonce"])) == 12 and raw["status"] == "valid"
    assert bytes(raw1["nonce"]) != bytes(raw2["nonce"]) and bytes(raw1["ciphertext"]) != bytes(raw2["ciphertext"])
    assert (first.generation, raw2["generation"]) == (1, 2)
    stored = await vault.get("42")
    assert stored.access_token == "EAAB-secret-token-value-1" and stored.account_id == "42"
    assert "EAAB" not in repr(stored) and "EAAB" not in repr(first)
    assert first.expires_at == datetime(2026, 9, 1, tzinfo=timezone.utc)
    assert first.refresh_due_at == datetime(2026, 8, 25, tzinfo=timezone.utc)  # 7 days before expiry


@pytest.mark.parametrize("tamper", ["flip_ciphertext_bit", "other_nonce", "moved_to_other_account", "short_nonce"])
async def test_tampered_records_raise_a_clear_error_and_nothing_is_decrypted(mongo, tamper) -> None:
    vault = vault_of(mongo, f"k1:{K1}")
    client, db = mongo
    coll = client[db].tokens
    await vault.put("act_42", "EAAB-secret-token-value-2")
    raw = await coll.find_one({"_id": "42"})
    target = "42"
    if tamper == "flip_ciphertext_bit":
        ct = bytearray(raw["ciphertext"])
        ct[3] ^= 0x01
        await coll.update_one({"_id": "42"}, {"$set": {"ciphertext": Binary(bytes(ct))}})
    elif tamper == "other_nonce":
        await coll.update_one({"_id": "42"}, {"$set": {"nonce": Binary(b"\x00" * 12)}})
    elif tamper == "short_nonce":
        await coll.update_one({"_id": "42"}, {"$set": {"nonce": Binary(b"\x00" * 8)}})
    else:  # a valid ciphertext copied onto another account: the account id is the associated data
        target = "43"
        await coll.insert_one({**raw, "_id": "43"})
    with pytest.raises(TokenDecryptError) as err:
        await vault.get(target)
    message = str(err.value)
    assert f"act_{target}" in message and "nothing was decrypted" in message and "store a new token" in message
    assert "EAAB" not in message and K1 not in message


async def test_a_tampered_record_fails_the_fetch_before_any_call_and_is_not_replaced_by_the_env_token(
        mongo_uri, mongo, account) -> None:
    client, db = mongo
    keys = f"k1:{K1}"
    await vault_of(mongo, keys).put(ACC, "vault-token-abc")
    await client[db].tokens.update_one({"_id": ACC}, {"$set": {"ciphertext": Binary(b"\x01" * 40)}})
    async with sandbox_server([account], synthetic=False) as base, \
            fetcher_stub(base, **vault_settings(mongo_uri, db, keys)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "failed AES-GCM authentication" in err.value.details() and "nothing was decrypted" in err.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == 0


# ------------------------------------------------------------------ rotation


async def test_key_rotation_reencrypts_every_token_then_the_old_key_is_retired(mongo_uri, mongo, account) -> None:
    client, db = mongo
    old = vault_of(mongo, f"k1:{K1}")
    accounts = [ACC, "1001", "1002"]
    for i, acc in enumerate(accounts):
        await old.put(acc, f"vault-token-{i}-xyz")
    # step 1: every replica gets both keys, k2 active; old entries still read, new writes use k2
    both = vault_of(mongo, f"k1:{K1},k2:{K2}", "k2")
    assert (await both.get("1001")).key_id == "k1"
    await both.put("1003", "vault-token-3-xyz")
    assert (await both.get("1003")).key_id == "k2"
    before = {d["_id"]: bytes(d["nonce"]) async for d in client[db].tokens.find()}
    # step 2: rotate while serving (reads run concurrently), then once more: nothing left to do
    results = await asyncio.gather(both.rotate(), *(both.get(a) for a in accounts for _ in range(3)))
    report = results[0]
    assert all(t.access_token.startswith("vault-token-") for t in results[1:])
    assert (report.rotated, report.already_active, report.skipped_changed) == (3, 1, 0)
    again = await both.rotate()
    assert (again.rotated, again.already_active) == (0, 4)
    after = {d["_id"]: (d["kid"], bytes(d["nonce"])) async for d in client[db].tokens.find()}
    assert all(kid == "k2" for kid, _ in after.values())
    assert all(after[a][1] != before[a] for a in accounts)  # fresh nonce per re-encryption
    # step 3: k1 retired: every token still opens, generations and status untouched
    retired = vault_of(mongo, f"k2:{K2}")
    for i, acc in enumerate(accounts):
        token = await retired.get(acc)
        assert (token.access_token, token.key_id, token.generation, token.valid) == (f"vault-token-{i}-xyz", "k2",
                                                                                     1, True)
    # ... and a fetcher that only knows k2 serves calls with the rotated token
    async with sandbox_server([account], synthetic=False, tokens=["vault-token-0-xyz"]) as base, \
            fetcher_stub(base, access_token="env-token-not-accepted", **vault_settings(mongo_uri, db, f"k2:{K2}")) \
            as stub:
        resp = await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert len(resp.rows) == len(account.rows)


async def test_rotation_does_not_overwrite_a_token_stored_meanwhile(mongo) -> None:
    client, db = mongo
    await vault_of(mongo, f"k1:{K1}").put("1001", "first-token-abc")
    both = vault_of(mongo, f"k1:{K1},k2:{K2}", "k2")
    stale = await client[db].tokens.find_one({"_id": "1001"})
    await both.put("1001", "second-token-abc")   # a writer replaces the token between read and write
    # the compare-and-swap of rotate only writes over the exact (kid, nonce) it read
    result = await client[db].tokens.update_one({"_id": "1001", "kid": stale["kid"], "nonce": stale["nonce"]},
                                                {"$set": {"kid": "k2"}})
    assert result.modified_count == 0
    assert (await both.rotate()).rotated == 0
    assert (await both.get("1001")).access_token == "second-token-abc"


async def test_an_entry_under_an_unconfigured_key_says_which_key_is_missing(mongo) -> None:
    await vault_of(mongo, f"k1:{K1}").put("1001", "some-token-abc")
    with pytest.raises(TokenKeyUnknown, match="under key 'k1', which is not configured"):
        await vault_of(mongo, f"k2:{K2}").get("1001")


# ------------------------------------------------------------------ in the fetcher


async def test_the_vault_token_is_used_for_its_account_and_the_env_token_otherwise(mongo_uri, mongo) -> None:
    client, db = mongo
    keys = f"k1:{K1}"
    stored = synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)
    other = synthetic_account("act_900000000002", today=date(2026, 3, 1), days=5, n_ads=2)
    await vault_of(mongo, keys).put(ACC, "vault-only-token")
    async with sandbox_server([stored, other], synthetic=False, tokens=["vault-only-token", "env-only-token"],
                              app_secret="app-secret-1") as base, \
            fetcher_stub(base, access_token="env-only-token", app_secret="app-secret-1",
                         **vault_settings(mongo_uri, db, keys)) as stub:
        assert len((await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows) == len(stored.rows)
        assert len((await stub.FetchInsights(request("act_900000000002", SINCE, UNTIL))).rows) == len(other.rows)
        # the sandbox checks appsecret_proof = HMAC(app secret, token of that call) on every request
        assert all(r["status"] == 200 for r in (await sandbox_stats(base))["requests"])


async def test_a_190_marks_the_stored_token_invalid_and_later_calls_fail_fast(mongo_uri, mongo, account) -> None:
    client, db = mongo
    keys = f"k1:{K1}"
    vault = vault_of(mongo, keys)
    await vault.put(ACC, "revoked-token-xyz")
    async with sandbox_server([account], synthetic=False, tokens=["good-token-xyz"]) as base, \
            fetcher_stub(base, **vault_settings(mongo_uri, db, keys)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert first.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        calls = (await sandbox_stats(base))["graph_requests"]
        assert calls == 1  # the account lookup was rejected; a token error is never retried
        entry = await vault.get(ACC)
        assert entry.status == "invalid" and "190" in entry.invalid_reason and entry.refresh_due_at is None
        with pytest.raises(grpc.aio.AioRpcError) as second:
            await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert second.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "rejected by Meta" in second.value.details() and "token_admin put" in second.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == calls  # failed fast: no call
        await vault.put(ACC, "good-token-xyz")  # re-authorised
        assert len((await stub.FetchInsights(request(ACC, SINCE, UNTIL))).rows) == len(account.rows)


async def test_a_stale_rejection_does_not_invalidate_a_token_stored_since(mongo) -> None:
    vault = vault_of(mongo, f"k1:{K1}")
    old = await vault.put("1001", "old-token-abc")
    await vault.put("1001", "new-token-abc")
    assert await vault.mark_invalid("1001", old.generation, "code 190/460") is False
    assert (await vault.get("1001")).valid


async def test_a_token_past_its_recorded_expiry_fails_fast(mongo_uri, mongo, account) -> None:
    client, db = mongo
    keys = f"k1:{K1}"
    await vault_of(mongo, keys).put(ACC, "expired-token-xyz", expires_at=datetime.now(timezone.utc) - timedelta(hours=1))
    async with sandbox_server([account], synthetic=False) as base, \
            fetcher_stub(base, **vault_settings(mongo_uri, db, keys)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "expired at" in err.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == 0


async def test_fetcher_refuses_to_start_with_a_bad_key_configuration(mongo_uri, db_name) -> None:
    with pytest.raises(ValueError, match="TOKEN_ACTIVE_KEY"):
        async with fetcher_stub("http://127.0.0.1:9", **vault_settings(mongo_uri, db_name, f"k1:{K1},k2:{K2}")):
            pass


async def test_sandbox_faults_on_the_token_endpoints(account) -> None:
    """A scripted 190 on the exchange endpoint is answered as Meta would (endpoint 'token')."""
    import httpx

    async with sandbox_server([account], synthetic=False, app_id="77", app_secret="s3") as base:
        await post(base, "/_sandbox/faults", {"kind": "expired_token", "endpoint": "token"})
        async with httpx.AsyncClient() as http:
            params = {"grant_type": "fb_exchange_token", "client_id": "77", "client_secret": "s3",
                      "fb_exchange_token": "short-lived"}
            first = await http.get(f"{base}/v23.0/oauth/access_token", params=params)
            assert first.json()["error"]["code"] == 190
            second = (await http.get(f"{base}/v23.0/oauth/access_token", params=params)).json()
            assert second["token_type"] == "bearer" and second["expires_in"] == 5183944
        assert (await sandbox_stats(base))["token_requests"] == 2

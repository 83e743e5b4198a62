"""``adfatigue backup`` / ``restore`` as a user runs them (the installed command, a real store):
backup -> drop -> restore gives back the same versions, rows, scores, audit and tokens (still decryptable
with the same keys); a damaged archive or a non-empty target is refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import DateRange
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_pb2
from services.meta_fetcher.token_vault import Keyring, TokenVault

ACCOUNT = "1001"
DAYS = DateRange(date(2026, 4, 1), date(2026, 4, 5))
KEYS = f"k1:{Keyring.generate_key()}"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


async def populate(client, db: str) -> None:
    store = InsightsStore(client, db)
    await store.ensure_indexes()
    for impressions in (100, 250):  # two versions
        rows = [InsightRow(account_id=ACCOUNT, ad_id=ad, date_start=d, date_stop=d, impressions=impressions,
                           spend=Decimal("1.25"), actions={"lead": Decimal("2")})
                for d in DAYS.days() for ad in ("11", "12")]
        await store.apply_fetch(ACCOUNT, DAYS, rows, datetime.now(timezone.utc))
    await store.set_account_info(ACCOUNT, "Asia/Tokyo", "JPY")
    for ad in ("11", "12"):
        result = fatigue_pb2.FatigueResult(ad_id=ad, insights_version=2, score=61.5).SerializeToString()
        await store.save_score(ACCOUNT, ad, 2, result, DAYS.since, DAYS.until)
    await client[db]["audit"].insert_one({"subject": "ops", "method": "Refresh", "at": datetime.now(timezone.utc)})
    vault = TokenVault.from_client(client, db, Keyring.parse(KEYS, None))
    await vault.ensure_indexes()
    await vault.put(ACCOUNT, "EAAB-secret-token", never_expires=True)


async def state(client, db: str) -> dict:
    store = InsightsStore(client, db)
    snap = await store.snapshot(ACCOUNT, DAYS)
    account = await store.account(ACCOUNT)
    token = await TokenVault.from_client(client, db, Keyring.parse(KEYS, None)).get(ACCOUNT)
    return {
        "account": (account.version, account.seq, account.timezone, account.currency),
        "range_version": snap.version,
        "rows": [(r.ad_id, r.date_start, r.impressions, r.spend, r.actions) for r in snap.rows],
        "scores": [(d["ad_id"], d["insights_version"], bytes(d["result"]))
                   for d in await store.stored_scores(ACCOUNT, ["11", "12"])],
        "audit": await client[db]["audit"].count_documents({}),
        "token": token.access_token,
        "indexes": sorted([i["name"] async for i in await client[db]["insights"].list_indexes()]),
    }


async def test_backup_drop_restore_gives_everything_back(mongo_uri, db_name, tmp_path):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        await populate(client, db_name)
        before = await state(client, db_name)
        assert before["account"][0] == 2 and before["token"] == "EAAB-secret-token"
        archive = tmp_path / "archive"
        done = cli("backup", "--out", str(archive), "--mongodb-uri", mongo_uri, "--db", db_name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        manifest = json.loads((archive / "manifest.json").read_text())
        assert {"insights", "freshness", "accounts", "scores", "tokens", "audit"} <= set(manifest["collections"])
        assert manifest["collections"]["insights"]["count"] == 10
        assert all(len(e["sha256"]) == 64 for e in manifest["collections"].values())
        assert b"EAAB-secret-token" not in (archive / "tokens.bson").read_bytes()  # still encrypted

        await client.drop_database(db_name)
        done = cli("restore", str(archive), "--mongodb-uri", mongo_uri, "--db", db_name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert await state(client, db_name) == before

        # restoring again over the data needs --replace
        again = cli("restore", str(archive), "--mongodb-uri", mongo_uri, "--db", db_name, cwd=tmp_path)
        assert again.returncode == 2 and "--replace" in again.stderr
        again = cli("restore", str(archive), "--replace", "--mongodb-uri", mongo_uri, "--db", db_name, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert await state(client, db_name) == before
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.mark.parametrize("damage", ["flip_a_byte", "truncate", "no_manifest", "count_edited", "file_missing"])
async def test_a_damaged_archive_is_refused_and_nothing_is_written(mongo_uri, db_name, tmp_path, damage):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    target = f"{db_name}_r"
    try:
        await populate(client, db_name)
        archive = tmp_path / "archive"
        assert cli("backup", "--out", str(archive), "--mongodb-uri", mongo_uri, "--db", db_name,
                   cwd=tmp_path).returncode == 0
        rows = archive / "insights.bson"
        if damage == "flip_a_byte":
            data = bytearray(rows.read_bytes())
            data[len(data) // 2] ^= 0x01
            rows.write_bytes(bytes(data))
        elif damage == "truncate":
            rows.write_bytes(rows.read_bytes()[:-7])
        elif damage == "no_manifest":
            (archive / "manifest.json").unlink()
        elif damage == "count_edited":
            manifest = json.loads((archive / "manifest.json").read_text())
            manifest["collections"]["insights"]["count"] = 9
            (archive / "manifest.json").write_text(json.dumps(manifest))
        else:
            (archive / "scores.bson").unlink()
        done = cli("restore", str(archive), "--mongodb-uri", mongo_uri, "--db", target, cwd=tmp_path)
        assert done.returncode == 2 and "refused, nothing was written" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert await client[target].list_collection_names() == []
    finally:
        await client.drop_database(db_name)
        await client.drop_database(target)
        await client.close()


def test_backup_refuses_a_folder_that_holds_files(mongo_uri, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("keep me")
    done = cli("backup", "--out", str(tmp_path / "old"), "--mongodb-uri", mongo_uri, "--db", "none", cwd=tmp_path)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "old" / "x").read_text() == "keep me"


async def test_a_backup_taken_while_a_writer_runs_is_one_point_in_time(mongo_uri, db_name, tmp_path):
    """Rows and the account document come from the same instant: no row is newer than the account's
    last claim, and the accounts/insights pair restores to a state readers accept."""
    import asyncio

    import bson

    from services.cli.backup import backup

    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    store = InsightsStore(client, db_name)
    await store.ensure_indexes()
    stop = asyncio.Event()

    async def writer():
        n = 0
        while not stop.is_set():
            n += 1
            rows = [InsightRow(account_id=ACCOUNT, ad_id=f"{ad}", date_start=d, date_stop=d, impressions=n)
                    for d in DAYS.days() for ad in range(20)]
            await store.apply_fetch(ACCOUNT, DAYS, rows, datetime.now(timezone.utc))

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.3)
        await backup(client, db_name, tmp_path / "a")
    finally:
        stop.set()
        await task
        await client.drop_database(db_name)
        await client.close()
    account = next(bson.decode_file_iter(open(tmp_path / "a" / "accounts.bson", "rb")))
    versions = {d["version"] for d in bson.decode_file_iter(open(tmp_path / "a" / "insights.bson", "rb"))}
    # every row is at the committed version, or at the one claim in flight at that instant
    assert versions <= {account["version"], account["seq"]} and account["seq"] - account["version"] <= 1

"""Restore drill: time ``adfatigue backup`` and ``adfatigue restore`` (the installed command) on a store
filled like a year of one mid-size account, and check that the restored store equals the original.

    .venv/bin/python -m bench.restore_drill [--ads 50] [--days 365] [--mongodb-uri URI]

Without ``--mongodb-uri`` it runs against a throw-away embedded store (SecantusDB). Prints one JSON
object: documents per collection, seconds for backup and restore (wall clock), archive size, and whether
every collection came back identical. The time is this machine's, not the cluster's: the Kubernetes drill
(k8s/README.md) uses mongorestore and must be timed there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from pymongo import AsyncMongoClient

from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import DateRange
from services.common.embedded_mongo import EmbeddedMongo
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_pb2


async def fill(uri: str, db: str, ads: int, days: int) -> None:
    client = AsyncMongoClient(uri, tz_aware=True)
    store = InsightsStore(client, db)
    await store.ensure_indexes()
    until = date(2026, 11, 30)
    for start in range(0, days, 30):  # one fetch per 30-day window, as the gateway writes
        rng = DateRange(until - timedelta(days=min(start + 29, days - 1)), until - timedelta(days=start))
        rows = [InsightRow(account_id="1001", ad_id=str(100 + a), date_start=d, date_stop=d, ad_name=f"Ad {a}",
                           impressions=1000 + a, clicks=10, inline_link_clicks=7, spend=Decimal("12.34"),
                           actions={"lead": Decimal("2")}) for d in rng.days() for a in range(ads)]
        await store.apply_fetch("1001", rng, rows, datetime.now(timezone.utc))
    for a in range(ads):
        result = fatigue_pb2.FatigueResult(ad_id=str(100 + a), insights_version=1, score=50).SerializeToString()
        await store.save_score("1001", str(100 + a), 1, result, until - timedelta(days=days - 1), until)
    await client[db]["audit"].insert_many([{"subject": "ops", "method": "GetInsights", "n": i} for i in range(2000)])
    await client.close()


async def dump(uri: str, db: str) -> dict:
    client = AsyncMongoClient(uri)
    out = {}
    for name in sorted(await client[db].list_collection_names()):
        out[name] = [d async for d in client[db][name].find({}).sort("_id", 1)]
    await client.close()
    return out


def cli(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "services.cli.main", *args], check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


def drill(uri: str, ads: int, days: int) -> dict:
    db = "drill"
    asyncio.run(fill(uri, db, ads, days))
    before = asyncio.run(dump(uri, db))
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        backup_s = cli("backup", "--out", str(archive), "--mongodb-uri", uri, "--db", db)
        size = sum(p.stat().st_size for p in archive.iterdir())
        restore_s = cli("restore", str(archive), "--replace", "--mongodb-uri", uri, "--db", db)
    after = asyncio.run(dump(uri, db))
    return {"documents": {k: len(v) for k, v in before.items()}, "backup_s": round(backup_s, 2),
            "restore_s": round(restore_s, 2), "archive_bytes": size, "identical": before == after}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.restore_drill")
    p.add_argument("--ads", type=int, default=50)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--mongodb-uri")
    args = p.parse_args()
    if args.mongodb_uri:
        print(json.dumps(drill(args.mongodb_uri, args.ads, args.days)))
        return
    with EmbeddedMongo(None) as store:
        print(json.dumps(drill(store.uri, args.ads, args.days)))


if __name__ == "__main__":
    main()

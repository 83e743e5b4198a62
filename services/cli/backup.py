"""``adfatigue backup`` / ``adfatigue restore``: every collection of the database at one consistent point.

Archive layout (a directory)::

    manifest.json          written last: its presence means the archive is complete
    <collection>.bson      the documents, concatenated BSON (the format of mongodump's .bson files)

``manifest.json`` holds the format version, database name, creation time,
and per collection the document count, the SHA-256 of its ``.bson`` file and
its index definitions. Documents are copied byte for byte, so versions, rows,
scores, audit entries and encrypted tokens come back exactly (tokens still
decrypt with the same TOKEN_KEYS).

Consistency: every collection is read inside one multi-document transaction
with read concern ``snapshot`` (https://www.mongodb.com/docs/manual/reference/read-concern-snapshot/),
so the archive is one point in time even while the services keep writing.
MongoDB bounds a transaction's lifetime (``transactionLifetimeLimitSeconds``,
60 s by default): for databases too big to read in that time use mongodump
``--oplog`` (the Kubernetes CronJob, k8s/README.md).

Restore refuses, before writing anything, an archive whose manifest is
missing or unreadable, a file missing, a checksum or count that does not match,
or a document that does not decode (``DamagedArchive``); and a target database
that already holds documents unless ``replace`` is set (``RestoreRefused``).
Stop the services first: a collection is dropped and refilled one at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import bson
from bson.raw_bson import RawBSONDocument
from pymongo.read_concern import ReadConcern

FORMAT = "adfatigue-backup/1"
MANIFEST = "manifest.json"
BATCH = 1000
_RAW = bson.CodecOptions(document_class=RawBSONDocument)  # documents are copied byte for byte


class DamagedArchive(ValueError):
    """The archive is incomplete or altered; nothing was restored."""


class RestoreRefused(ValueError):
    """The target is not empty and ``replace`` was not given; nothing was restored."""


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    name: str
    count: int
    sha256: str
    indexes: list[dict]


def _index_specs(raw: list[dict]) -> list[dict]:
    """Index definitions worth re-creating (the ``_id`` index always exists)."""
    keep = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")
    return [{"key": list(map(list, spec["key"].items())), "name": spec["name"], **{k: spec[k] for k in keep if k in spec}}
            for spec in raw if spec.get("name") != "_id_"]


async def backup(client, database: str, out: Path, progress: Callable[[str, int], None] | None = None) -> dict:
    """Write an archive of ``database`` into ``out`` (created; must be empty). Returns the manifest.

    ``progress(collection, total)`` is called as each collection's copy begins (``total``: collections).

    Raises FileExistsError when ``out`` holds files already, and PyMongoError when the store fails
    (a partial archive has no manifest, so it can never be restored).
    """
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new directory for the archive")
    db = client[database]
    names = sorted(n for n in await db.list_collection_names() if not n.startswith("system."))
    entries = []
    async with client.start_session() as session:
        await session.start_transaction(read_concern=ReadConcern("snapshot"))
        try:
            for name in names:
                if progress:
                    progress(name, len(names))
                digest, count = hashlib.sha256(), 0
                with open(out / f"{name}.bson", "wb") as fh:
                    async for raw in db.get_collection(name, codec_options=_RAW).find({}, session=session) \
                            .sort("_id", 1):
                        data = raw.raw
                        fh.write(data)
                        digest.update(data)
                        count += 1
                    fh.flush()
                    os.fsync(fh.fileno())
                indexes = [dict(i) async for i in await db[name].list_indexes()]
                entries.append(CollectionEntry(name, count, digest.hexdigest(), _index_specs(indexes)))
        finally:
            await session.abort_transaction()  # read-only: nothing to commit
    manifest = {
        "format": FORMAT, "database": database, "created_at": datetime.now(timezone.utc).isoformat(),
        "consistency": "one snapshot-read transaction",
        "collections": {e.name: {"file": f"{e.name}.bson", "count": e.count, "sha256": e.sha256,
                                 "indexes": e.indexes} for e in entries},
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(out / MANIFEST)
    return manifest


def verify(archive: Path) -> dict:
    """Check the archive completely (manifest, files, checksums, counts, every document decodes); return the
    manifest. Raises DamagedArchive saying what is wrong."""
    try:
        manifest = json.loads((archive / MANIFEST).read_text())
    except FileNotFoundError:
        raise DamagedArchive(f"{archive} has no {MANIFEST}: not an archive, or the backup did not finish") from None
    except (OSError, ValueError) as exc:
        raise DamagedArchive(f"{archive / MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("collections"), dict):
        raise DamagedArchive(f"{archive / MANIFEST} is not an {FORMAT} manifest")
    for name, entry in manifest["collections"].items():
        try:
            path = archive / entry["file"]
            data = path.read_bytes()
            count, digest = int(entry["count"]), str(entry["sha256"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DamagedArchive(f"collection {name}: its file or manifest entry is missing or malformed ({exc})") \
                from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise DamagedArchive(f"collection {name}: {path.name} does not match its SHA-256 in the manifest "
                                 "(altered or truncated)")
        try:
            found = sum(1 for _ in bson.decode_iter(data, codec_options=_RAW))
        except Exception:  # bson.errors.InvalidBSON and friends
            raise DamagedArchive(f"collection {name}: {path.name} holds undecodable BSON") from None
        if found != count:
            raise DamagedArchive(f"collection {name}: {found} documents in {path.name}, the manifest says {count}")
    return manifest


async def restore(client, database: str, archive: Path, replace: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Restore ``archive`` into ``database``; returns the manifest. Raises DamagedArchive or RestoreRefused
    before writing anything, PyMongoError if the store fails midway (run it again: it starts over).

    ``progress(collection, documents, total)`` is called after each batch written (``documents`` in that
    batch; ``total``: documents of the archive)."""
    manifest = verify(archive)
    db = client[database]
    if not replace:
        held = {n: await db[n].estimated_document_count() for n in await db.list_collection_names()
                if not n.startswith("system.")}
        held = {n: c for n, c in held.items() if c}
        if held:
            raise RestoreRefused(f"database {database} already holds documents ({', '.join(sorted(held))}); stop "
                                 "the services and pass --replace to overwrite it")
    total = sum(entry["count"] for entry in manifest["collections"].values())
    for name, entry in sorted(manifest["collections"].items()):
        await db.drop_collection(name)
        coll = db[name]
        batch: list = []
        with open(archive / entry["file"], "rb") as fh:
            for doc in bson.decode_file_iter(fh, codec_options=_RAW):
                batch.append(doc)
                if len(batch) >= BATCH:
                    await coll.insert_many(batch, ordered=True)
                    if progress:
                        progress(name, len(batch), total)
                    batch = []
        if batch:
            await coll.insert_many(batch, ordered=True)
            if progress:
                progress(name, len(batch), total)
        for spec in entry.get("indexes", []):
            options = {k: v for k, v in spec.items() if k not in ("key", "name")}
            await coll.create_index([tuple(k) for k in spec["key"]], name=spec["name"], **options)
        if await coll.count_documents({}) != entry["count"]:
            raise DamagedArchive(f"collection {name}: the store holds a different count after restoring; run again")
    return manifest


"""``adfatigue backup --out DIR`` and ``adfatigue restore DIR``: which store, then services/cli/backup.py.

The store is ``--mongodb-uri``, else ``MONGODB_URI``, else the running ``up``'s (``endpoints.json`` in the
data folder); with none of them answering, the embedded store of the data folder (``<data-dir>/mongo``) is
started for the duration of the command. The database is ``--db``, else ``MONGODB_DB``, else ``adfatigue``.
Exit status: 0 done, 2 refused (damaged archive, non-empty target, non-empty output folder, store down).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from services.cli.backup import DamagedArchive, RestoreRefused, backup, restore
from services.cli.local_system import running_endpoints
from services.cli.progress import Steps
from services.cli.terminal import terminal_console
from services.common.embedded_mongo import EmbeddedMongo


def _answers(uri: str) -> bool:
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=1500) as client:
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


@contextlib.contextmanager
def store_uri(args, data_dir: Path):
    """The URI to use (see the module doc); starts and stops the data folder's embedded store if needed."""
    uri = args.settings.mongodb_uri
    if not uri:
        uri = running_endpoints(data_dir).get("mongodb") or None
        if uri and not _answers(uri):
            uri = None
    if uri:
        yield uri
        return
    with EmbeddedMongo(data_dir / "mongo", log_path=data_dir / "logs" / "mongo-backup.log") as embedded:
        yield embedded.uri


def _database(args) -> str:
    return args.settings.mongodb_db


async def _run(uri: str, work) -> dict:
    client = AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    try:
        return await work(client)
    finally:
        await client.close()


class _Progress:
    """Progress of a backup (per collection) or restore (per batch of documents): services/cli/progress.py."""

    def __init__(self, title: str, unit: str):
        self.title, self.unit = title, unit
        self.steps: Steps | None = None

    def __enter__(self) -> "_Progress":
        return self

    def collection(self, name: str, total: int) -> None:
        if self.steps is None:
            self.steps = Steps(terminal_console(), self.title, total, self.unit).__enter__()
        self.steps.step(name)

    def documents(self, name: str, count: int, total: int) -> None:
        if self.steps is None:
            self.steps = Steps(terminal_console(), self.title, total, self.unit).__enter__()
        self.steps.part(name)
        self.steps.advance(count)

    def __exit__(self, *exc) -> None:
        if self.steps is not None:
            self.steps.__exit__(*exc)


def _summary(manifest: dict) -> str:
    parts = [f"{name} {entry['count']}" for name, entry in sorted(manifest["collections"].items())]
    return ", ".join(parts) or "no collections"


def cmd_backup(parser, args, data_dir: Path) -> int:
    out = Path(args.out).resolve()
    try:
        with store_uri(args, data_dir) as uri, _Progress("backing up", "collections") as shown:
            manifest = asyncio.run(_run(uri, lambda c: backup(c, _database(args), out, shown.collection)))
    except FileExistsError as exc:
        print(f"backup refused: {exc}", file=sys.stderr)
        return 2
    except (PyMongoError, RuntimeError) as exc:
        print(f"backup failed: the store did not answer or aborted the read ({exc}); nothing usable was "
              f"written to {out} (it has no manifest)", file=sys.stderr)
        return 2
    print(f"backup of {manifest['database']} written to {out}: {_summary(manifest)} document(s)")
    return 0


def cmd_restore(parser, args, data_dir: Path) -> int:
    archive = Path(args.archive).resolve()
    try:
        with store_uri(args, data_dir) as uri, _Progress("restoring", "documents") as shown:
            manifest = asyncio.run(_run(uri, lambda c: restore(c, _database(args), archive, replace=args.replace,
                                                               progress=shown.documents)))
    except (DamagedArchive, RestoreRefused) as exc:
        print(f"restore refused, nothing was written: {exc}", file=sys.stderr)
        return 2
    except (PyMongoError, RuntimeError) as exc:
        print(f"restore failed midway ({exc}); run it again with --replace: it starts over", file=sys.stderr)
        return 2
    print(f"restored {archive} into {_database(args)}: {_summary(manifest)} document(s)")
    return 0


def add_parsers(add) -> dict:
    """Register ``backup`` and ``restore`` with the CLI's subparser factory ``add``."""
    bk = add("backup", help="copy every collection at one consistent point into a directory")
    bk.add_argument("--out", required=True, help="a new (or empty) directory for the archive")
    rs = add("restore", help="restore an archive written by `backup` (checked first; refuses a damaged one)")
    rs.add_argument("archive", help="the archive directory")
    rs.add_argument("--replace", action="store_true",
                    help="overwrite a database that already holds data (stop the services first)")
    for p in (bk, rs):
        p.add_argument("--mongodb-uri", help="the store (default: MONGODB_URI, the running `up`, or the data "
                                             "folder's embedded store)")
        p.add_argument("--db", dest="mongodb_db", help="database name (default: MONGODB_DB or adfatigue)")
    return {"backup": bk, "restore": rs}

"""Shared fixtures: a real MongoDB-protocol server for the whole session.

``MONGODB_URI`` set -> that server (a real mongod); otherwise an embedded
SecantusDB process on a free port, stopped at the end.
"""

from __future__ import annotations

import os
import uuid

import pytest
from pymongo import AsyncMongoClient

from services.common.embedded_mongo import EmbeddedMongo


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    # test commands on: tests/faults arm MongoDB failpoints (configureFailPoint failCommand) scoped to their own
    # client's appName, so no other test's commands are affected
    server = EmbeddedMongo(tmp_path_factory.mktemp("secantus"), log_path=tmp_path_factory.mktemp("logs") / "mongo.log",
                           test_commands=True)
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def db_name():
    """A database name of its own per test, so tests never see each other's data."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo(mongo_uri, db_name):
    """(AsyncMongoClient, database name) of a database of the test's own, dropped afterwards."""
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield client, db_name
    await client.drop_database(db_name)
    await client.close()

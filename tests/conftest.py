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


_BROWSER_FIXTURES = {"page", "context", "browser", "playwright"}


def pytest_collection_modifyitems(session, config, items):
    """Browser tests run last.

    pytest-playwright's sync API keeps a greenlet-driven event loop marked as running in the main
    thread for the rest of the session (its ``playwright`` fixture is session-scoped); every
    pytest-asyncio test after the first browser test would then fail with "Runner.run() cannot be
    called from a running event loop". Moving them to the end keeps one ``pytest`` run for all.
    """
    items.sort(key=lambda item: bool(_BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))))

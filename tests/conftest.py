"""Shared fixtures: a real MongoDB-protocol server for the whole session.

``MONGODB_URI`` set -> that server (a real mongod); otherwise an embedded
SecantusDB process on a free port, stopped at the end.
"""

from __future__ import annotations

import os
import uuid

import pytest

from services.common.embedded_mongo import EmbeddedMongo


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("secantus"), log_path=tmp_path_factory.mktemp("logs") / "mongo.log")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def db_name():
    """A database name of its own per test, so tests never see each other's data."""
    return f"t_{uuid.uuid4().hex[:12]}"

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


_SIZE_VARIABLES = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist's controller: hand the workers its own COLUMNS / LINES (see ``_the_runs_terminal_size``)."""
    node.workerinput["adfatigue_size_variables"] = {name: os.environ.get(name) for name in _SIZE_VARIABLES}


@pytest.fixture(scope="session", autouse=True)
def _the_runs_terminal_size(request):
    """A pytest-xdist worker's environment has COLUMNS=80 and LINES=24 where the run had none; the CLI processes
    the tests start would inherit them and wrap their tables at 80 columns (not the 160 of a pipe). The run's own
    values (or none) again, as in a run without workers."""
    given = getattr(request.config, "workerinput", {}).get("adfatigue_size_variables")
    if given is not None:
        for name, value in given.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield


@pytest.fixture(scope="session")
def page_built():
    """web/dist, built with npm ci + npm run build when the sources changed (as adfatigue up does).

    One build at a time on this machine (a file lock): the suite's two pytest-xdist workers (and another
    pytest run from the same folder) would otherwise run npm in the same web/node_modules at once."""
    import fcntl
    import hashlib
    import tempfile
    from pathlib import Path

    from services.cli.web_build import WEB, ensure_page_built

    lock = Path(tempfile.gettempdir()) / f"adfatigue-page-build-{hashlib.sha1(str(WEB).encode()).hexdigest()[:12]}.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return ensure_page_built()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_BROWSER_FIXTURES = {"page", "context", "browser", "playwright"}


def _browser(item) -> bool:
    return bool(_BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())))


def _module(item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(session, config, items):
    """The BFF's tests run last, its browser tests at the very end; each module is one xdist group.

    pytest-playwright's sync API keeps a greenlet-driven event loop marked as running in the main
    thread for the rest of the session (its ``playwright`` fixture is session-scoped); every
    pytest-asyncio test after the first browser test would then fail with "Runner.run() cannot be
    called from a running event loop". Moving them to the end keeps one ``pytest`` run for all.

    pytest-xdist (``--dist loadgroup --no-loadscope-reorder``, pyproject's addopts) hands a worker a whole
    group at a time, in this order: a module's tests share its module-scoped system on one worker, and
    tests/bff (one session-scoped system for all its modules, the browser tests last) is one group, the
    last one handed out, so no worker runs a pytest-asyncio test after a browser test.
    """
    items.sort(key=lambda item: (_module(item).startswith("tests/bff/"), _browser(item)))
    for item in items:
        group = "tests/bff" if _module(item).startswith("tests/bff/") else _module(item)
        item.add_marker(pytest.mark.xdist_group(group))

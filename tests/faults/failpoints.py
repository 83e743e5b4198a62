"""MongoDB ``configureFailPoint failCommand`` for fault tests, scoped to one client's appName.

The embedded SecantusDB of the test session runs with ``--enable-test-commands`` (tests/conftest.py) and
implements mongod's ``failCommand`` (errorCode, closeConnection, blockConnection, times/skip, appName); a
real mongod needs ``enableTestCommands=1``. Without either, the tests that arm failpoints are skipped.
"""

from __future__ import annotations

import contextlib

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

#: A code mongod labels neither RetryableWriteError nor ResumableChangeStreamError, so drivers do not retry
#: it away (UnknownError).
NON_RETRYABLE_CODE = 8


@contextlib.contextmanager
def fail_command(uri: str, app_name: str | None, commands: list[str], *, times: int | None = 1, skip: int = 0,
                 error_code: int | None = NON_RETRYABLE_CODE, close_connection: bool = False,
                 block_ms: int = 0):
    """Arm ``failCommand`` for ``commands`` issued by clients named ``app_name`` (None: every client, e.g.
    all services of a system under test); disarm on exit."""
    data: dict = {"failCommands": commands}
    if app_name is not None:
        data["appName"] = app_name
    if close_connection:
        data["closeConnection"] = True
    elif block_ms:
        data.update(blockConnection=True, blockTimeMS=block_ms)
    elif error_code is not None:
        data["errorCode"] = error_code
    mode = "alwaysOn" if times is None else {"times": times, "skip": skip} if skip else {"times": times}
    with MongoClient(uri, appname="faults-admin") as admin:
        try:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})
        except OperationFailure as exc:
            pytest.skip(f"the store does not accept configureFailPoint (test commands off): {exc}")
        try:
            yield
        finally:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

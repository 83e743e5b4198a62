"""The audit log on a real MongoDB: nothing dropped (back-pressure, retried inserts), the 30-day TTL index."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import AutoReconnect

from services.common.audit_log import RETENTION_DAYS, AuditLog


@pytest.fixture
async def collection(mongo):
    client, db_name = mongo
    return client[db_name]["audit"]


async def test_the_ttl_index_keeps_entries_30_days(collection):
    log = AuditLog(collection)
    await log.start()
    await log.close()
    index = (await collection.index_information())["ttl_at"]
    assert index["key"] == [("at", 1)] and index["expireAfterSeconds"] == RETENTION_DAYS * 86400 == 2_592_000


async def test_a_full_queue_makes_callers_wait_instead_of_dropping(collection):
    """Finding: entries were dropped when the queue was full."""
    log = AuditLog(collection, max_queue=2, batch_window_s=0.01)
    await log.start()
    await asyncio.gather(*(log.record(f"caller-{i}", "GetInsights", "1", "OK") for i in range(300)))
    await log.close()
    assert log.dropped == 0 and log.written == 300
    assert await collection.count_documents({}) == 300
    assert len(await collection.distinct("subject")) == 300


class Flaky:
    """The real collection, whose first ``failures`` inserts fail (after storing half the batch, once)."""

    def __init__(self, real, failures: int):
        self.real, self.failures = real, failures

    async def create_index(self, *args, **kw):
        return await self.real.create_index(*args, **kw)

    async def insert_many(self, docs, ordered=True):
        if self.failures:
            self.failures -= 1
            if self.failures == 0:
                await self.real.insert_many(docs[: len(docs) // 2], ordered=ordered)  # stored, then the link broke
            raise AutoReconnect("connection reset")
        return await self.real.insert_many(docs, ordered=ordered)


async def test_a_failed_insert_is_retried_until_stored_exactly_once(collection):
    """Finding: entries were dropped when an insert failed."""
    log = AuditLog(Flaky(collection, failures=3), batch_window_s=0.05)
    await log.start()
    for i in range(20):
        await log.record("someone", "GetInsights", str(i), "OK", "2026-01-01", "2026-01-31")
    await log.close()
    assert log.dropped == 0 and log.failed_inserts >= 3
    assert sorted(await collection.distinct("account_id")) == sorted(str(i) for i in range(20))
    assert await collection.count_documents({}) == 20  # no duplicates from the retries


async def test_caller_input_is_cut_and_an_unstorable_entry_is_counted(collection):
    log = AuditLog(Flaky(collection, failures=10**6), batch_window_s=0, retry_max_s=0.01)
    await log.start()
    await log.record("x" * 10_000, "GetInsights", "9" * 10_000, "INVALID_ARGUMENT")
    await log.close(timeout_s=0.2)
    assert log.dropped == 1  # the store never came back: counted and logged, not silent
    stored = AuditLog(collection, batch_window_s=0)
    await stored.start()
    await stored.record("x" * 10_000, "GetInsights", "9" * 10_000, "INVALID_ARGUMENT")
    await stored.close()
    doc = await collection.find_one({})
    assert len(doc["subject"]) <= 201 and len(doc["account_id"]) <= 201


async def test_identical_accesses_in_one_window_are_one_entry_with_their_count(collection):
    """A page polling one widget stores one entry per batch window, counting every access; any field that
    differs (caller, range, status) keeps entries apart."""
    log = AuditLog(collection, batch_window_s=0.2)
    await log.start()
    for _ in range(50):
        await log.record("poller", "GetInsights", "1", "OK", "2026-01-01", "2026-01-07")
    await log.record("poller", "GetInsights", "1", "PERMISSION_DENIED", "2026-01-01", "2026-01-07")
    await log.record("other", "GetInsights", "1", "OK", "2026-01-01", "2026-01-07")
    await log.close()
    assert log.written == 52 and log.dropped == 0
    docs = {(d["subject"], d["status"]): d async for d in collection.find({})}
    assert {k: d["count"] for k, d in docs.items()} == {
        ("poller", "OK"): 50, ("poller", "PERMISSION_DENIED"): 1, ("other", "OK"): 1}
    polled = docs["poller", "OK"]
    assert polled["at"] <= polled["last_at"]

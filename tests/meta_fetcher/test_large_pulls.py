"""Large pulls (META_GRAPH_API.md §2): long ranges split into sync chunks, or one async report up front."""

from __future__ import annotations

from datetime import date, timedelta

from services.common.row_proto import row_from_proto
from services.meta_fetcher.graph_client import split_range
from services.meta_sandbox import sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import fetcher_stub, request, sandbox_stats

ACC = "900000000001"


def test_split_range_covers_the_range_in_consecutive_chunks() -> None:
    d = date(2026, 1, 1)
    chunks = split_range(d, d + timedelta(days=199), 90)
    assert [(a - d).days for a, _ in chunks] == [0, 90, 180] and [(b - a).days + 1 for a, b in chunks] == [90, 90, 20]
    assert split_range(d, d, 90) == [(d, d)] and split_range(d, d + timedelta(days=500), 0) == [(d, d + timedelta(500))]


async def test_a_long_range_is_fetched_as_several_sync_queries() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=200, n_ads=2)
    since, until = min(r.date_start for r in account.rows), max(r.date_start for r in account.rows)
    async with sandbox_server([account], synthetic=False) as base, \
            fetcher_stub(base, page_limit=1000, sync_max_days=90) as stub:
        resp = await stub.FetchInsights(request(ACC, since.isoformat(), until.isoformat()))
        assert [row_from_proto(r) for r in resp.rows] == account.rows
        stats = await sandbox_stats(base)
    spans = [(r["since"], r["until"]) for r in stats["requests"]]
    assert spans == [(a.isoformat(), b.isoformat()) for a, b in split_range(since, until, 90)]
    assert stats["async_requests"] == 0


async def test_a_range_the_settings_call_large_runs_as_an_async_report_up_front() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=120, n_ads=2)
    since, until = min(r.date_start for r in account.rows), max(r.date_start for r in account.rows)
    async with sandbox_server([account], synthetic=False, async_polls_to_complete=1) as base, \
            fetcher_stub(base, page_limit=1000, async_min_days=100) as stub:
        resp = await stub.FetchInsights(request(ACC, since.isoformat(), until.isoformat()))
        assert [row_from_proto(r) for r in resp.rows] == account.rows
        short = await stub.FetchInsights(request(ACC, until.isoformat(), until.isoformat()))
        assert short.rows
        stats = await sandbox_stats(base)
    assert stats["async_requests"] == 2  # create + one poll, no sync attempt first
    assert [bool(r.get("report_run_id")) for r in stats["requests"]] == [True, False]  # the short one is sync

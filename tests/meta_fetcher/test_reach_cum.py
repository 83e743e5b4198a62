"""FetchInsights with_reach_cum: cumulative reach per ad and day from Graph time_ranges (FATIGUE_SPEC.md inputs)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date, timedelta

import pytest

from services.common.ads_manager_csv import load_csv
from services.common.row_proto import row_from_proto
from services.common.dates import account_today, retention_floor
from services.meta_sandbox import csv_account, sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import fetcher_stub, post, real_csv_or_skip, request, sandbox_stats

ACC = "900000000001"


def reach_request(account: str, since: str, until: str, fields=()):
    req = request(account, since, until, fields)
    req.with_reach_cum = True
    return req


def assert_cumulative_reach_is_possible(rows, history) -> None:
    """reach_cum(t) is within [best day so far, sum of days so far] and never falls, per ad."""
    by_ad = defaultdict(list)
    for row in history:
        by_ad[row.ad_id].append(row)
    last: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: (r.ad_id, r.date_start)):
        days = [r.reach for r in by_ad[row.ad_id] if r.date_start <= row.date_start]
        assert row.reach_cum is not None, (row.ad_id, row.date_start)
        assert max(days) <= row.reach_cum <= sum(days)
        assert row.reach_cum >= last.get(row.ad_id, 0)
        last[row.ad_id] = row.reach_cum


async def test_one_reach_call_fills_many_days_and_the_default_answer_is_unchanged() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=30, n_ads=5)
    since, until = min(r.date_start for r in account.rows), max(r.date_start for r in account.rows)
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base, page_limit=100) as stub:
        plain = await stub.FetchInsights(request(ACC, since.isoformat(), until.isoformat()))
        assert not any(r.HasField("reach_cum") for r in plain.rows)
        pages = -(-len(account.rows) // 100)
        assert plain.upstream_calls == 1 + pages  # account lookup + pages, as before
        stats = await sandbox_stats(base)
        assert not any("time_ranges" in r for r in stats["requests"])
        resp = await stub.FetchInsights(reach_request(ACC, since.isoformat(), until.isoformat()))
        assert resp.upstream_calls == pages + 1  # the daily pages, then ONE reach call for all 30 days
        reach_calls = [r for r in (await sandbox_stats(base))["requests"] if "time_ranges" in r]
        assert len(reach_calls) == 1 and len(reach_calls[0]["time_ranges"]) == 30
        origin = retention_floor(account_today("America/Los_Angeles")).isoformat()
        assert {s for s, _ in reach_calls[0]["time_ranges"]} == {origin}  # reach over [origin .. t]
        rows = [row_from_proto(r) for r in resp.rows]
        assert [(r.ad_id, r.date_start, r.impressions) for r in rows] == \
               [(r.ad_id, r.date_start, r.impressions) for r in account.rows]
        assert_cumulative_reach_is_possible(rows, account.rows)
        again = await stub.FetchInsights(reach_request(ACC, since.isoformat(), until.isoformat()))
        assert [r.reach_cum for r in again.rows] == [r.reach_cum for r in resp.rows]  # identical answers


async def test_reach_is_fetched_differentially_only_for_the_new_days() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=20, n_ads=3)
    first = min(r.date_start for r in account.rows)
    mid, last = first + timedelta(days=9), first + timedelta(days=19)
    async with sandbox_server([account], synthetic=False) as base, \
            fetcher_stub(base, reach_ranges_per_call=4) as stub:
        whole = {(r.ad_id, r.date_start): r.reach_cum
                 for r in (await stub.FetchInsights(reach_request(ACC, first.isoformat(), last.isoformat()))).rows}
        await stub.FetchInsights(reach_request(ACC, first.isoformat(), mid.isoformat()))
        await post(base, "/_sandbox/reset_stats", {})
        newer = await stub.FetchInsights(reach_request(ACC, (mid + timedelta(days=1)).isoformat(), last.isoformat()))
        reach_calls = [r for r in (await sandbox_stats(base))["requests"] if "time_ranges" in r]
        asked = sorted(t for call in reach_calls for _, t in call["time_ranges"])
        assert asked == [(mid + timedelta(days=i)).isoformat() for i in range(1, 11)]  # only the new t's
        assert len(reach_calls) == 3  # ten days, four ranges per call
        assert {(r.ad_id, r.date_start): r.reach_cum for r in newer.rows} == {
            k: v for k, v in whole.items() if k[1] > mid.isoformat()}  # same numbers as one long fetch


async def test_reach_cum_on_the_real_dataset_is_bounded_by_its_daily_reach() -> None:
    path = real_csv_or_skip()
    expected = load_csv(path, "act_1001")
    async with sandbox_server([csv_account(path, "act_1001")], synthetic=False) as base, \
            fetcher_stub(base, page_limit=500) as stub:
        resp = await stub.FetchInsights(reach_request("act_1001", "2025-10-29", "2026-04-29"))
    rows = [row_from_proto(r) for r in resp.rows]
    assert [r.key for r in rows] == [r.key for r in expected]
    assert_cumulative_reach_is_possible(rows, expected)
    # the default path is untouched: the same rows as the export, without reach_cum
    assert [dataclasses.replace(r, reach_cum=None) for r in rows] == expected


@pytest.mark.parametrize("fields", [["impressions"], []])
async def test_reach_cum_comes_with_any_field_selection(fields) -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)
    since, until = min(r.date_start for r in account.rows), max(r.date_start for r in account.rows)
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        resp = await stub.FetchInsights(reach_request(ACC, since.isoformat(), until.isoformat(), fields))
    assert resp.rows and all(r.HasField("reach_cum") for r in resp.rows)

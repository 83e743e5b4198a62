"""The provider protocol (DESIGN.md R14): the Meta provider (through the sandbox over HTTP) and the
Ads Manager CSV replay provider give the same typed rows, and both sync differentially."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import httpx
import pytest

from services.common.ads_manager_csv import REQUIRED_COLUMNS, load_csv
from services.meta_fetcher.account_fetch import AccountFetcher
from services.meta_fetcher.graph_client import GraphClient
from services.meta_fetcher.settings import FetcherSettings
from services.meta_sandbox import csv_account, sandbox_server, synthetic_account
from services.providers import InsightsProvider, ProviderError, SyncPoint
from services.providers.csv_replay import CsvReplayProvider, parse_csv_accounts
from services.meta_fetcher.meta_provider import MetaProvider
from tests.meta_fetcher.helpers import FAST, fetcher_stub, request, sandbox_stats
from tests.shared_data import require_real_csv

REAL_SINCE, REAL_UNTIL = date(2025, 10, 29), date(2026, 4, 29)


def meta_provider(base: str, **kwargs) -> MetaProvider:
    return MetaProvider.from_settings(FetcherSettings(graph_url=base, **FAST), **kwargs)


# ------------------------------------------------------------------ the real dataset, both ways


async def test_csv_and_meta_providers_yield_identical_rows_for_the_real_dataset() -> None:
    """Acceptance: the same 1,716 typed rows from the export and from Meta (the sandbox over HTTP)."""
    path = require_real_csv()  # a failure under CI, a skip elsewhere
    csv = CsvReplayProvider({"act_1001": path})
    async with sandbox_server([csv_account(path, "act_1001")], synthetic=False) as base:
        meta = meta_provider(base)
        try:
            assert isinstance(meta, InsightsProvider) and isinstance(csv, InsightsProvider)
            from_csv = await csv.fetch_insights("act_1001", REAL_SINCE, REAL_UNTIL)
            from_meta = await meta.fetch_insights("act_1001", REAL_SINCE, REAL_UNTIL)
            assert len(from_csv) == 1716 and from_meta == from_csv  # fetched_at is not compared
            assert all(r.fetched_at is not None for r in from_meta) and all(r.reach_cum is None for r in from_meta)
            a, b = await csv.account_info("act_1001"), await meta.account_info("act_1001")
            assert (a.timezone_name, a.currency) == (b.timezone_name, b.currency) == ("Asia/Kuala_Lumpur", "MYR")
            # a first differential sync from scratch gives the same rows too (Meta: 90-day sync chunks)
            today = datetime.now(timezone.utc).astimezone(ZoneInfo(b.timezone_name)).date()
            meta.initial_days = (today - REAL_SINCE).days + 1
            csv_rows, csv_point = await csv.changes_since("act_1001", None)
            meta_rows, meta_point = await meta.changes_since("act_1001", None)
            assert meta_rows == csv_rows == from_csv
            assert csv_point.through == REAL_UNTIL and meta_point.through == today
        finally:
            await meta.aclose()


# ------------------------------------------------------------------ CSV replay


def write_export(path, rows: list[tuple]) -> None:
    """rows: (day, ad name, impressions, link clicks, spend)."""
    lines = [",".join(REQUIRED_COLUMNS)]
    for day, ad, impressions, clicks, spend in rows:
        rec = {"reporting_starts": day, "reporting_ends": day, "campaign_name": "C1", "adset_name": "C1 / S1",
               "ad_name": ad, "amount_spent": spend, "results": "1", "link_clicks": str(clicks),
               "impressions": str(impressions), "reach": str(impressions - 10), "quality_ranking": "Average",
               "engagement_ranking": "-", "conversion_ranking": "-"}
        lines.append(",".join(rec[c] for c in REQUIRED_COLUMNS))
    path.write_text("\n".join(lines) + "\n")


BASE_ROWS = [("2026-01-01", "Ad A", 1000, 10, "5.00"), ("2026-01-01", "Ad B", 800, 8, "4.00"),
             ("2026-01-02", "Ad A", 1100, 12, "5.50"), ("2026-01-02", "Ad B", 700, 5, "3.90"),
             ("2026-01-03", "Ad A", 1200, 9, "6.00")]


async def test_csv_provider_returns_only_new_or_changed_days(tmp_path) -> None:
    path = tmp_path / "export.csv"
    write_export(path, BASE_ROWS)
    provider = CsvReplayProvider({"act_77": path}, timezone_name="Europe/Berlin", currency="EUR")
    rows, point = await provider.changes_since("act_77", None)
    assert rows == load_csv(path, "act_77") and len(rows) == 5 and point.through == date(2026, 1, 3)
    again, same = await provider.changes_since("77", SyncPoint.decode(point.encode()))
    assert again == [] and same == point
    # a newer export: day 2 restated for ad A, day 4 added
    write_export(path, [*BASE_ROWS[:2], ("2026-01-02", "Ad A", 1100, 14, "5.50"), BASE_ROWS[3], BASE_ROWS[4],
                        ("2026-01-04", "Ad A", 900, 7, "4.40")])
    changed, later = await provider.changes_since("act_77", SyncPoint.decode(point.encode()))
    assert {(r.date_start.isoformat(), r.ad_name) for r in changed} == {
        ("2026-01-02", "Ad A"), ("2026-01-02", "Ad B"), ("2026-01-04", "Ad A")}  # a changed day comes back whole
    assert changed == sorted(changed, key=lambda r: (r.date_start, r.ad_id))
    assert {r.inline_link_clicks for r in changed if r.date_start == date(2026, 1, 2) and r.ad_name == "Ad A"} == {14}
    assert later.through == date(2026, 1, 4)
    assert await provider.fetch_insights("act_77", date(2026, 1, 2), date(2026, 1, 3)) == [
        r for r in load_csv(path, "act_77") if date(2026, 1, 2) <= r.date_start <= date(2026, 1, 3)]
    info = await provider.account_info("act_77")
    assert (info.name, info.timezone_name, info.currency) == ("export", "Europe/Berlin", "EUR")


async def test_csv_provider_errors_say_what_is_wrong(tmp_path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    write_export(good, BASE_ROWS)
    bad.write_text("reporting_starts,impressions\n2026-01-01,3\n")
    provider = CsvReplayProvider({"act_1": good, "act_2": bad, "act_3": tmp_path / "missing.csv"})
    cases = [
        (provider.fetch_insights("act_9", date(2026, 1, 1), date(2026, 1, 2)), grpc.StatusCode.NOT_FOUND, "act_9"),
        (provider.fetch_insights("act_1", date(2026, 1, 2), date(2026, 1, 1)), grpc.StatusCode.INVALID_ARGUMENT,
         "before since"),
        (provider.fetch_insights("act_2", date(2026, 1, 1), date(2026, 1, 2)), grpc.StatusCode.DATA_LOSS,
         "missing column"),
        (provider.fetch_insights("act_3", date(2026, 1, 1), date(2026, 1, 2)), grpc.StatusCode.UNAVAILABLE,
         "cannot be read"),
        (provider.changes_since("act_1", SyncPoint("meta", "1", date(2026, 1, 1))), grpc.StatusCode.INVALID_ARGUMENT,
         "sync point is for meta"),
    ]
    for call, code, words in cases:
        with pytest.raises(ProviderError) as err:
            await call
        assert err.value.code == code and words in err.value.message
    with pytest.raises(ProviderError, match="not one a provider made"):
        SyncPoint.decode('{"v": 99}')
    assert parse_csv_accounts(" act_1=/a.csv , 2=/b c.csv") == {"1": Path("/a.csv"), "2": Path("/b c.csv")}
    for spec, words in [("act_1", "not act_ID=PATH"), ("act_x=/a", "not a Meta ad account id"),
                        ("1=/a,act_1=/b", "twice")]:
        with pytest.raises(ValueError, match=words):
            parse_csv_accounts(spec)


# ------------------------------------------------------------------ Meta


async def test_meta_provider_rereads_only_the_restatement_window_and_returns_only_changes() -> None:
    account = synthetic_account(days=40, n_ads=3)  # ends yesterday in the account's time zone
    first_day = min(r.date_start for r in account.rows)
    last_day = max(r.date_start for r in account.rows)
    async with sandbox_server([account], synthetic=False) as base:
        provider = meta_provider(base, initial_days=60, lookback_days=28)
        try:
            rows, point = await provider.changes_since(f"act_{account.account_id}", None)
            assert rows == account.rows and rows[0].date_start == first_day
            today = point.through
            assert today == last_day + timedelta(days=1)
            assert min(point.day_digests) == (today - timedelta(days=28)).isoformat()  # only what can still change
            stats = await sandbox_stats(base)
            assert {r["since"] for r in stats["requests"]} == {(today - timedelta(days=59)).isoformat()}
            async with httpx.AsyncClient() as http:
                await http.post(f"{base}/_sandbox/reset_stats")
            nothing, point2 = await provider.changes_since(account.account_id, SyncPoint.decode(point.encode()))
            assert nothing == []
            stats = await sandbox_stats(base)
            assert {(r["since"], r["until"]) for r in stats["requests"]} == {
                ((today - timedelta(days=28)).isoformat(), today.isoformat())}
            restated = last_day - timedelta(days=3)
            before = {r.ad_id: r for r in account.rows if r.date_start == restated}  # the sandbox restates in place
            async with httpx.AsyncClient() as http:
                await http.post(f"{base}/_sandbox/restate", json={"account_id": account.account_id,
                                                                   "date": restated.isoformat(),
                                                                   "actions_delta": {"lead": "3"}})
            changed, _ = await provider.changes_since(account.account_id, point2)
            assert {r.date_start for r in changed} == {restated}
            assert len(changed) == len(before)
            assert all(r.conversions("lead") == (before[r.ad_id].conversions("lead") or 0) + 3 for r in changed)
            with pytest.raises(ProviderError) as err:
                await provider.fetch_insights("act_424242", today, today)
            assert err.value.code == grpc.StatusCode.NOT_FOUND
        finally:
            await provider.aclose()


async def test_meta_provider_wraps_an_existing_graph_client() -> None:
    account = synthetic_account(days=5, n_ads=2)
    async with sandbox_server([account], synthetic=False) as base:
        async with GraphClient(FetcherSettings(graph_url=base, **FAST)) as client:
            provider = MetaProvider(AccountFetcher(client))
            days = sorted({r.date_start for r in account.rows})
            rows = await provider.fetch_insights(account.account_id, days[0], days[-1])
            assert rows == account.rows and provider.upstream_calls == 2  # account lookup + one page
            await provider.aclose()  # not its client: left open
            assert not client._http.is_closed


# ------------------------------------------------------------------ the fetcher serving a CSV account


async def test_fetcher_serves_a_csv_backed_account_without_calling_meta(tmp_path) -> None:
    path = tmp_path / "export.csv"
    write_export(path, BASE_ROWS)
    async with sandbox_server(synthetic=False) as base, \
            fetcher_stub(base, provider_csv=f"act_555={path}", provider_csv_timezone="UTC") as stub:
        full = await stub.FetchInsights(request("act_555", "2026-01-01", "2026-01-03"))
        from services.common.row_proto import row_from_proto

        assert [row_from_proto(r) for r in full.rows] == load_csv(path, "act_555")
        assert full.upstream_calls == 0 and full.account_timezone == "UTC" and full.account_currency == "MYR"
        narrow = await stub.FetchInsights(request("act_555", "2026-01-02", "2026-01-02", fields=["impressions"]))
        assert len(narrow.rows) == 2
        assert all(r.HasField("impressions") and not r.HasField("spend") and r.ad_name == "" and r.adset_id
                   for r in narrow.rows)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request("act_555", "2026-01-03", "2026-01-01"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await sandbox_stats(base))["graph_requests"] == 0

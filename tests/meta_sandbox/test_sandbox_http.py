"""The Graph API sandbox over real HTTP on a free loopback port (META_GRAPH_API.md §1, §3)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.meta_sandbox import SYNTHETIC_ACCOUNT_ID, create_app, sandbox_server, synthetic_account
from services.meta_sandbox.accounts import SandboxAccount

TOKEN = "sandbox-test-token"
ACC = "900000000001"


def insights_params(since: str, until: str, **extra) -> dict[str, str]:
    params = {"access_token": TOKEN, "level": "ad", "time_increment": "1",
              "time_range": json.dumps({"since": since, "until": until})}
    params.update(extra)
    return params


@pytest.fixture
def account() -> SandboxAccount:
    return synthetic_account(today=date(2026, 3, 1), days=30, n_ads=12)


async def test_pages_through_every_row_with_opaque_cursors(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        params = insights_params("2026-01-30", "2026-02-28", limit="7", fields="ad_id,impressions")
        got, pages, link = [], 0, None
        resp = await http.get(url, params=params)
        while True:
            body = resp.json()
            assert resp.status_code == 200, body
            pages += 1
            assert 1 <= len(body["data"]) <= 7
            got.extend(body["data"])
            cursors = body["paging"]["cursors"]
            assert not cursors["after"].isdigit() and not cursors["before"].isdigit()
            link = body["paging"].get("next")
            if link is None:
                break
            assert link.startswith(base) and "after=" in link
            resp = await http.get(link)
        assert len(got) == len(account.rows) and pages == -(-len(account.rows) // 7)
        assert [(r["ad_id"], r["date_start"]) for r in got] == [(r.ad_id, r.date_start.isoformat()) for r in account.rows]
        # the last page has a previous link back, and no next
        assert "previous" in body["paging"]


async def test_before_cursor_pages_backwards(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        first = (await http.get(url, params=insights_params("2026-01-30", "2026-02-28", limit="5"))).json()
        second = (await http.get(first["paging"]["next"])).json()
        back = (await http.get(url, params=insights_params(
            "2026-01-30", "2026-02-28", limit="5", before=second["paging"]["cursors"]["before"]))).json()
        assert back["data"] == first["data"]
        # a cursor of another query is refused with a Graph error, not misread
        other = await http.get(url, params=insights_params("2026-02-01", "2026-02-28", after=first["paging"]["cursors"]["after"]))
        assert other.status_code == 400 and other.json()["error"]["code"] == 100


async def test_default_limit_is_25_and_limit_is_capped(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False, max_limit=50) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        assert len((await http.get(url, params=insights_params("2026-01-30", "2026-02-28"))).json()["data"]) == 25
        big = await http.get(url, params=insights_params("2026-01-30", "2026-02-28", limit="100000"))
        assert len(big.json()["data"]) == 50


async def test_only_requested_fields_and_every_number_a_string(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        narrow = (await http.get(url, params=insights_params("2026-02-01", "2026-02-01",
                                                             fields="ad_id,impressions"))).json()["data"]
        assert narrow and all(set(r) == {"ad_id", "impressions", "date_start", "date_stop"} for r in narrow)
        wide = (await http.get(url, params=insights_params(
            "2026-02-01", "2026-02-28", limit="1000",
            fields="account_id,ad_id,ad_name,adset_id,campaign_id,impressions,reach,clicks,inline_link_clicks,"
                   "spend,actions,quality_ranking,ctr,cpm"))).json()["data"]
        for row in wide:
            assert row["account_id"] == ACC  # no act_ prefix
            for key in ("impressions", "reach", "clicks", "inline_link_clicks", "spend", "ctr", "cpm"):
                assert isinstance(row[key], str), (key, row)
            assert row["date_start"] == row["date_stop"]
            for action in row.get("actions", []):
                assert set(action) == {"action_type", "value"} and isinstance(action["value"], str)
            assert row["quality_ranking"] in ("ABOVE_AVERAGE", "AVERAGE", "BELOW_AVERAGE_35", "BELOW_AVERAGE_20",
                                              "BELOW_AVERAGE_10", "UNKNOWN")


async def test_actions_key_left_out_when_a_row_has_none() -> None:
    acc = synthetic_account(today=date(2026, 3, 1), days=3, n_ads=1)
    acc.restate(date(2026, 2, 27), set_values={"actions": None})
    async with sandbox_server([acc], synthetic=False) as base, httpx.AsyncClient() as http:
        rows = (await http.get(f"{base}/v23.0/act_{ACC}/insights",
                               params=insights_params("2026-02-26", "2026-02-28", fields="ad_id,actions"))).json()["data"]
        by_day = {r["date_start"]: r for r in rows}
        assert "actions" not in by_day["2026-02-27"] and "actions" in by_day["2026-02-28"]


@pytest.mark.parametrize(
    "params, code, subcode, words",
    [
        ({"time_range": '{"since":"2026-02-10","until":"2026-02-01"}'}, 100, None, "until"),
        ({"time_range": "{not json"}, 100, None, "JSON"),
        ({"time_range": '{"since":"2026-02-30","until":"2026-03-01"}'}, 100, None, "valid"),
        ({"fields": "ad_id,bogus_field"}, 100, None, "bogus_field"),
        ({"limit": "lots"}, 100, None, "limit"),
        ({"time_range": '{"since":"2020-01-01","until":"2020-01-02"}'}, 3018, None, "37 months"),
    ],
)
async def test_bad_parameters_get_graph_error_bodies(account, params, code, subcode, words) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        query = insights_params("2026-02-01", "2026-02-02")
        query.update(params)
        resp = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=query)
        err = resp.json()["error"]
        assert resp.status_code == 400 and err["code"] == code and words in err["message"]
        assert err.get("error_subcode") == subcode and err["fbtrace_id"]


async def test_unknown_account_is_100_33_and_token_is_required() -> None:
    async with sandbox_server(synthetic=True, tokens=[TOKEN]) as base, httpx.AsyncClient() as http:
        unknown = await http.get(f"{base}/v23.0/act_123/insights", params=insights_params("2026-02-01", "2026-02-02"))
        assert unknown.status_code == 400
        assert unknown.json()["error"]["code"] == 100 and unknown.json()["error"]["error_subcode"] == 33
        no_token = await http.get(f"{base}/v23.0/act_{ACC}/insights", params={"level": "ad"})
        assert no_token.status_code == 400 and no_token.json()["error"]["code"] == 104  # Graph: no token at all
        assert no_token.json()["error"]["type"] == "OAuthException"
        wrong = await http.get(f"{base}/v23.0/act_{ACC}/insights", params={"access_token": "nope"})
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 190
        header = await http.get(f"{base}/v23.0/act_{ACC}", params={"fields": "name,currency,timezone_name"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert header.status_code == 200
        assert header.json() == {"id": f"act_{ACC}", "name": "Sandbox synthetic fatigue account", "currency": "USD",
                                 "timezone_name": "America/Los_Angeles"}


async def test_stats_record_each_insights_request_and_reset(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        first = (await http.get(url, params=insights_params("2026-02-01", "2026-02-20", limit="10"))).json()
        await http.get(first["paging"]["next"])
        stats = (await http.get(f"{base}/_sandbox/stats")).json()
        assert stats["insights_requests"] == 2
        assert [(r["account_id"], r["since"], r["until"]) for r in stats["requests"]] == [(ACC, "2026-02-01", "2026-02-20")] * 2
        assert stats["requests"][0]["after"] is None and stats["requests"][1]["after"] == first["paging"]["cursors"]["after"]
        assert TOKEN not in json.dumps(stats)
        await http.post(f"{base}/_sandbox/reset_stats")
        assert (await http.get(f"{base}/_sandbox/stats")).json() == {
            "insights_requests": 0, "account_requests": 0, "async_requests": 0, "token_requests": 0,
            "graph_requests": 0, "requests": []}


async def test_version_warning_header_and_retired_versions(account: SandboxAccount) -> None:
    async with sandbox_server([account], synthetic=False, version_upgrades={"v23.0": "v24.0"},
                              min_version="v22.0") as base, httpx.AsyncClient() as http:
        resp = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=insights_params("2026-02-01", "2026-02-01"))
        assert "v24.0" in resp.headers["X-Ad-Api-Version-Warning"]
        old = await http.get(f"{base}/v19.0/act_{ACC}/insights", params=insights_params("2026-02-01", "2026-02-01"))
        assert old.status_code == 400 and old.json()["error"]["code"] == 2635


def test_synthetic_account_is_seeded_recent_and_wears_out() -> None:
    a = synthetic_account()
    b = synthetic_account()
    assert a.rows == b.rows and a.account_id == SYNTHETIC_ACCOUNT_ID
    yesterday = datetime.now(timezone.utc).astimezone(ZoneInfo(a.timezone_name)).date() - timedelta(days=1)
    assert max(r.date_start for r in a.rows) == yesterday
    first_ad = [r for r in a.rows if r.ad_id == a.rows[0].ad_id]

    def link_ctr(rows):
        return sum(r.inline_link_clicks for r in rows) / sum(r.impressions for r in rows)

    assert link_ctr(first_ad[-14:]) < 0.8 * link_ctr(first_ad[:14])  # CTR decays with exposure
    assert synthetic_account(seed=7).rows != a.rows
    assert all(r.reach <= r.impressions for r in a.rows)


def test_create_app_rejects_duplicate_accounts() -> None:
    acc = synthetic_account(days=2, n_ads=1)
    with pytest.raises(ValueError, match="twice"):
        create_app([acc, synthetic_account(days=2, n_ads=1)])

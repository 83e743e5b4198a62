"""Sandbox fidelity: usage headers that move with load, scripted faults, restated days."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from services.meta_sandbox import sandbox_server, synthetic_account
from services.meta_sandbox.usage import UsageModel

ACC = "900000000001"
TR = json.dumps({"since": "2026-02-24", "until": "2026-02-28"})


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)


def params(**extra) -> dict[str, str]:
    return {"access_token": "t", "level": "ad", "time_increment": "1", "time_range": TR,
            "fields": "ad_id,actions,impressions", **extra}


async def test_usage_headers_rise_with_load_and_throttle_at_100(account) -> None:
    usage = UsageModel(account_capacity=4, app_capacity=100)
    async with sandbox_server([account], synthetic=False, usage=usage) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        seen = []
        for _ in range(4):
            resp = await http.get(url, params=params())
            assert resp.status_code == 200
            buc = json.loads(resp.headers["X-Business-Use-Case-Usage"])[ACC][0]
            seen.append(buc["call_count"])
            assert json.loads(resp.headers["x-fb-ads-insights-throttle"])["acc_id_util_pct"] == buc["call_count"]
        assert seen == [25, 50, 75, 100]
        assert json.loads(resp.headers["X-App-Usage"])["call_count"] == 4
        throttled = await http.get(url, params=params())
        err = throttled.json()["error"]
        assert throttled.status_code == 400 and (err["code"], err["error_subcode"]) == (80000, 2446079)
        regain = json.loads(throttled.headers["X-Business-Use-Case-Usage"])[ACC][0]["estimated_time_to_regain_access"]
        assert regain == 60  # minutes until the oldest call leaves the one-hour window


async def test_faults_hit_the_next_n_matching_requests_then_stop(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        assert (await http.post(f"{base}/_sandbox/faults", json=[
            {"kind": "error", "code": 17, "count": 2},                              # global
            {"account_id": f"act_{ACC}", "kind": "expired_token", "count": 1},     # this account first
            {"kind": "error", "code": 2, "endpoint": "account"},                    # account lookups only
        ])).status_code == 200
        codes = []
        for _ in range(4):
            body = (await http.get(url, params=params())).json()
            codes.append((body.get("error") or {}).get("code"))
        assert codes == [190, 17, 17, None]
        lookup = await http.get(f"{base}/v23.0/act_{ACC}", params={"access_token": "t"})
        assert lookup.status_code == 500 and lookup.json()["error"]["is_transient"] is True
        assert (await http.get(f"{base}/_sandbox/faults")).json() == {"faults": []}
        await http.post(f"{base}/_sandbox/faults", json={"kind": "error", "code": 1, "count": 5})
        await http.delete(f"{base}/_sandbox/faults")
        assert (await http.get(url, params=params())).status_code == 200
        stats = (await http.get(f"{base}/_sandbox/stats")).json()
        assert [r["fault"] for r in stats["requests"]] == ["expired_token", "error", "error", None, None]


@pytest.mark.parametrize("spec, words", [
    ({"kind": "explode"}, "kind"),
    ({"kind": "error"}, "code"),
    ({"kind": "error", "code": 2, "count": 0}, "count"),
    ({"kind": "error", "code": 2, "account_id": "act_x"}, "account id"),
    ({"kind": "error", "code": 2, "colour": "red"}, "unknown fault key"),
])
async def test_bad_fault_specs_are_rejected(account, spec, words) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        resp = await http.post(f"{base}/_sandbox/faults", json=spec)
        assert resp.status_code == 400 and words in resp.json()["error"]


async def test_restatement_changes_one_account_day(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        before = (await http.get(url, params=params())).json()["data"]
        resp = await http.post(f"{base}/_sandbox/restate", json={
            "account_id": f"act_{ACC}", "date": "2026-02-27", "actions_delta": {"lead": "3"},
            "set": {"impressions": 12345}})
        assert resp.json() == {"ok": True, "restated": 2}
        after = (await http.get(url, params=params())).json()["data"]
        for old, new in zip(before, after):
            if old["date_start"] != "2026-02-27":
                assert old == new
                continue
            leads = lambda row: sum(int(a["value"]) for a in row.get("actions", []) if a["action_type"] == "lead")
            assert leads(new) == leads(old) + 3 and new["impressions"] == "12345"
        bad = await http.post(f"{base}/_sandbox/restate", json={"account_id": f"act_{ACC}", "date": "2026-02-27",
                                                                 "set": {"colour": "red"}})
        assert bad.status_code == 400 and "colour" in bad.json()["error"]


async def test_async_report_runs_are_created_polled_and_paged(account) -> None:
    async with sandbox_server([account], synthetic=False, async_polls_to_complete=2) as base, \
            httpx.AsyncClient() as http:
        created = await http.post(f"{base}/v23.0/act_{ACC}/insights", data=params())
        run_id = created.json()["report_run_id"]
        assert run_id.isdigit()
        early = await http.get(f"{base}/v23.0/{run_id}/insights", params={"access_token": "t"})
        assert early.status_code == 400 and "not ready" in early.json()["error"]["message"]
        polls = [(await http.get(f"{base}/v23.0/{run_id}", params={"access_token": "t"})).json() for _ in range(2)]
        assert [(p["async_status"], p["async_percent_completion"]) for p in polls] == [
            ("Job Running", 50), ("Job Completed", 100)]
        rows = (await http.get(f"{base}/v23.0/{run_id}/insights", params={"access_token": "t", "limit": "1000"})).json()
        sync = (await http.get(f"{base}/v23.0/act_{ACC}/insights", params=params(limit="1000"))).json()
        assert rows["data"] == sync["data"] and "next" not in rows.get("paging", {})
        await http.post(f"{base}/_sandbox/faults", json={"kind": "job_failed"})
        failed_id = (await http.post(f"{base}/v23.0/act_{ACC}/insights", data=params())).json()["report_run_id"]
        failed = (await http.get(f"{base}/v23.0/{failed_id}", params={"access_token": "t"})).json()
        assert failed["async_status"] == "Job Failed" and (failed["error_code"], failed["error_subcode"]) == (-2, 2490547)
        stats = (await http.get(f"{base}/_sandbox/stats")).json()
        assert stats["async_requests"] == 5
        assert [r.get("report_run_id") for r in stats["requests"]] == [run_id, run_id, None]

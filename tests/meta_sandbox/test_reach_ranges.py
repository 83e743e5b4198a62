"""Range reach in the sandbox: the saturation model's bounds (property tests) and time_ranges over HTTP."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.insight_row import InsightRow
from services.meta_sandbox import SandboxAccount, sandbox_server, synthetic_account
from services.meta_sandbox.reach_model import aggregate_range, audience_from_rows, range_reach

ACC = "900000000001"
D0 = date(2026, 1, 1)


@st.composite
def ad_days(draw) -> list[InsightRow]:
    """One ad's daily rows: 1-40 days (gaps allowed), reach <= impressions each day."""
    n = draw(st.integers(1, 40))
    offsets = sorted(draw(st.sets(st.integers(0, 60), min_size=n, max_size=n)))
    rows = []
    for off in offsets:
        impressions = draw(st.integers(0, 50_000))
        reach = draw(st.integers(0, impressions))
        rows.append(InsightRow(account_id="1", ad_id="7", date_start=D0 + timedelta(days=off),
                               date_stop=D0 + timedelta(days=off), impressions=impressions, reach=reach))
    return rows


@settings(max_examples=150, deadline=None)
@given(rows=ad_days(), audience=st.floats(1, 5e6, allow_nan=False))
def test_range_reach_stays_between_the_best_day_and_the_sum_of_days(rows, audience) -> None:
    previous = 0
    for end in range(1, len(rows) + 1):  # every prefix: [first day .. t]
        part = rows[:end]
        reach = aggregate_range(part, part[0].date_start, part[-1].date_start, audience).reach
        assert max(r.reach for r in part) <= reach <= sum(r.reach for r in part)
        assert reach >= previous  # cumulative reach never falls
        previous = reach
    one_day = aggregate_range(rows[:1], rows[0].date_start, rows[0].date_start, audience)
    assert one_day.reach == rows[0].reach and one_day.impressions == rows[0].impressions


@settings(max_examples=100, deadline=None)
@given(rows=ad_days())
def test_csv_audience_is_derived_from_the_data_deterministically(rows) -> None:
    audience = audience_from_rows(rows)
    reaches = [r.reach for r in rows]
    assert audience >= max(1, *reaches) and audience == audience_from_rows(list(reversed(rows)))
    # saturated (impressions >> audience): the whole audience, held inside the daily bounds
    assert range_reach(10**12, reaches, audience) == min(max(round(audience), max(reaches)), sum(reaches))


@settings(max_examples=50, deadline=None)
@given(rows=ad_days(), since_off=st.integers(0, 30), length=st.integers(0, 40))
def test_account_range_rows_aggregate_exactly_the_days_inside_the_range(rows, since_off, length) -> None:
    account = SandboxAccount("1", "a", "EUR", "UTC", rows=list(rows))
    since = D0 + timedelta(days=since_off)
    until = since + timedelta(days=length)
    inside = [r for r in rows if since <= r.date_start <= until]
    out = account.range_rows([(since, until)])
    if not inside:
        assert out == []
        return
    (row,) = out
    assert (row.date_start, row.date_stop) == (since, until)
    assert row.impressions == sum(r.impressions for r in inside)
    assert max(r.reach for r in inside) <= row.reach <= sum(r.reach for r in inside)


def tr(since: date, ends: list[date]) -> str:
    return json.dumps([{"since": since.isoformat(), "until": t.isoformat()} for t in ends])


async def test_one_request_answers_many_ranges_and_identical_requests_get_identical_bytes() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=30, n_ads=4)
    first = min(r.date_start for r in account.rows)
    ends = [first + timedelta(days=i) for i in range(0, 30, 3)]  # ten ranges
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        params = {"access_token": "t", "level": "ad", "time_ranges": tr(first, ends), "limit": "500",
                  "fields": "ad_id,impressions,reach,frequency"}
        resp = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=params)
        body = resp.json()
        again = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=params)
        assert again.content == resp.content
        stats = (await http.get(f"{base}/_sandbox/stats")).json()
    assert stats["insights_requests"] == 2 and len(stats["requests"][0]["time_ranges"]) == 10
    assert "next" not in body.get("paging", {})
    rows = body["data"]
    assert {(r["date_start"], r["date_stop"]) for r in rows} == {(first.isoformat(), t.isoformat()) for t in ends}
    per_ad: dict[str, list[int]] = {}
    for row in rows:
        assert isinstance(row["reach"], str) and isinstance(row["impressions"], str)
        stop = date.fromisoformat(row["date_stop"])
        days = [r for r in account.rows if r.ad_id == row["ad_id"] and r.date_start <= stop]
        assert int(row["impressions"]) == sum(r.impressions for r in days)
        assert max(r.reach for r in days) <= int(row["reach"]) <= sum(r.reach for r in days)
        assert abs(float(row["frequency"]) - int(row["impressions"]) / int(row["reach"])) < 1e-5
        per_ad.setdefault(row["ad_id"], []).append(int(row["reach"]))
    for reaches in per_ad.values():
        assert reaches == sorted(reaches)
    # the synthetic model's audience caps cumulative reach once the audience is saturated
    assert any(r < sum(x.reach for x in account.rows if x.ad_id == ad) for ad, rs in per_ad.items() for r in rs[-1:])


async def test_range_rows_page_and_run_as_async_reports_too() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=10, n_ads=3)
    first = min(r.date_start for r in account.rows)
    ends = [first + timedelta(days=i) for i in range(10)]
    async with sandbox_server([account], synthetic=False, async_polls_to_complete=1) as base, \
            httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        params = {"access_token": "t", "level": "ad", "time_ranges": tr(first, ends), "fields": "ad_id,reach",
                  "limit": "7"}
        paged, next_url = [], None
        body = (await http.get(url, params=params)).json()
        while True:
            paged += body["data"]
            next_url = body.get("paging", {}).get("next")
            if not next_url:
                break
            body = (await http.get(next_url)).json()
        assert len(paged) > 7
        run = (await http.post(url, data={k: v for k, v in params.items() if k != "limit"})).json()["report_run_id"]
        assert (await http.get(f"{base}/v23.0/{run}", params={"access_token": "t"})).json()["async_status"] == \
            "Job Completed"
        from_job = (await http.get(f"{base}/v23.0/{run}/insights", params={"access_token": "t",
                                                                             "limit": "1000"})).json()["data"]
        assert from_job == paged
        # a single range with time_increment=all_days is the same as time_ranges with that one range
        single = {"access_token": "t", "level": "ad", "time_increment": "all_days", "fields": "ad_id,reach",
                  "time_range": json.dumps({"since": first.isoformat(), "until": ends[-1].isoformat()})}
        assert (await http.get(url, params=single)).json()["data"] == [r for r in paged
                                                                        if r["date_stop"] == ends[-1].isoformat()]


async def test_bad_time_ranges_are_graph_errors() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=5, n_ads=1)
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        url = f"{base}/v23.0/act_{ACC}/insights"
        for params, words in [
            ({"time_ranges": "[]"}, "non-empty JSON list"),
            ({"time_ranges": '[{"since":"2026-02-05","until":"2026-02-01"}]'}, "must not be before since"),
            ({"time_ranges": '[{"since":"2026-02-01"}]'}, "time_ranges[0] must have string keys"),
            ({"time_ranges": '[{"since":"2026-02-01","until":"2026-02-02"}]', "time_increment": "1"}, "all_days"),
            ({"time_ranges": json.dumps([{"since": "2020-01-01", "until": "2020-01-02"}])}, "37 months"),
        ]:
            err = (await http.get(url, params={"access_token": "t", **params})).json()["error"]
            assert err["code"] in (100, 3018) and words in err["message"], (params, err)

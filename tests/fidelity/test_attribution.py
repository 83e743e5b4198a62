"""Issue 17 point 2 through the real path: the attribution setting is part of the data's identity."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import grpc
import pytest

from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, fatigue_engine_pb2, fatigue_engine_pb2_grpc, \
    fatigue_pb2
from services.common.grpc_server import insecure_channel
from services.common.row_proto import row_to_proto
from services.fatigue_engine.server import build_host
from services.fatigue_engine.servicer import SERVICE_NAME
from tests.fidelity.harness import FIRST_DAY, account, real_path

ACC = "act_7301"
DEFAULT = ["1d_view", "7d_click"]


def steady_rows(days: int) -> list[InsightRow]:
    """One ad delivering the same every day: 10 leads for 100.00 a day (no fatigue at all)."""
    return [InsightRow(account_id="7301", ad_id="501", date_start=FIRST_DAY + timedelta(days=d),
                       date_stop=FIRST_DAY + timedelta(days=d), ad_name="Steady", adset_id="2", campaign_id="3",
                       impressions=10_000, reach=9_000, clicks=200, inline_link_clicks=150, spend=Decimal("100.00"),
                       actions={"link_click": Decimal(150), "lead": Decimal(10)}) for d in range(days)]


def day(n: int) -> str:
    return (FIRST_DAY + timedelta(days=n)).isoformat()


def insights(first: int, last: int) -> gw.GetInsightsRequest:
    return gw.GetInsightsRequest(account_id=ACC, since=day(first), until=day(last))


async def test_the_setting_is_sent_stored_with_every_row_and_reported_in_freshness(mongo):
    async with real_path(mongo, [account("7301", steady_rows(10))]) as path:
        reply = await path.gateway.GetInsights(insights(0, 9), metadata=path.metadata, timeout=60)
        sent = (await path.stats())["requests"]
        assert sent and all(r["attribution"] == DEFAULT for r in sent)
        assert len(reply.rows) == 10 and all(list(r.action_attribution_windows) == DEFAULT for r in reply.rows)
        assert list(reply.freshness.action_attribution_windows) == DEFAULT
        doc = await path.store.insights.find_one({"account_id": "7301"})
        assert doc["row"]["attribution"] == "1d_view,7d_click"


async def test_a_new_setting_makes_stored_days_due_most_recent_first_inside_the_budget(mongo):
    # budget: account lookup + first fetch (four ranges of 10 days) + the sync re-fetch + one background range
    async with real_path(mongo, [account("7301", steady_rows(40))], fetcher={"budget_calls": 7},
                         gateway={"max_range_days": 10}) as path:
        await path.gateway.GetInsights(insights(0, 39), metadata=path.metadata, timeout=60)
        path.set_attribution(ACC, ("1d_click",))
        recent = await path.gateway.GetInsights(insights(30, 39), metadata=path.metadata, timeout=60)
        assert list(recent.freshness.action_attribution_windows) == ["1d_click"]
        assert all(list(r.action_attribution_windows) == ["1d_click"] for r in recent.rows)
        assert {r.actions["lead"] for r in recent.rows} == {"6"}  # 10 x 0.5 / 0.9 in the sandbox's model
        await path.service.drain()  # the background re-fetch of the other stored days
        again = [(r["since"], r["until"]) for r in (await path.stats())["requests"]
                 if r["attribution"] == ["1d_click"]]
        assert again == [(day(30), day(39)), (day(20), day(29))]  # most recent first, then the budget ran out
        by_day = {d["date"]: d.get("attribution") for d in await path.store.freshness.find({}).to_list(None)}
        assert {by_day[day(n)] for n in range(20, 40)} == {"1d_click"}
        assert {by_day[day(n)] for n in range(0, 20)} == {"1d_view,7d_click"}  # still due, not lost


async def test_no_answer_or_score_mixes_settings_and_cpa_does_not_fire_on_the_change_alone(mongo):
    async with real_path(mongo, [account("7301", steady_rows(40))]) as path:
        await path.gateway.GetInsights(insights(0, 29), metadata=path.metadata, timeout=60)
        path.set_attribution(ACC, ("1d_click",))
        await path.gateway.GetInsights(insights(30, 39), metadata=path.metadata, timeout=60)
        # days 0-29 are final: never due again by age; the setting alone makes them due
        reply = await path.gateway.GetFatigue(gw.GetFatigueRequest(account_id=ACC, since=day(0), until=day(39)),
                                              metadata=path.metadata, timeout=60)
        assert list(reply.freshness.action_attribution_windows) == ["1d_click"]
        [result] = reply.results
        cpa = next(c for c in result.components if c.name == "cpa_inflation")
        assert cpa.available and cpa.raw_value == pytest.approx(0.0) and cpa.score == 0
        assert result.level == fatigue_pb2.HEALTHY
        rows = await path.gateway.GetInsights(insights(0, 39), metadata=path.metadata, timeout=60)
        assert {tuple(r.action_attribution_windows) for r in rows.rows} == {("1d_click",)}


async def test_the_engine_refuses_rows_of_two_settings_with_a_clear_reason():
    rows = steady_rows(20)
    old = [row_to_proto(r) for r in rows[:10]]
    new = [row_to_proto(r) for r in rows[10:]]
    for msg in old:
        msg.action_attribution_windows.extend(DEFAULT)
    for msg in new:
        msg.action_attribution_windows.append("1d_click")
    host = build_host()
    port = await host.start([SERVICE_NAME])
    try:
        async with insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = fatigue_engine_pb2_grpc.FatigueEngineStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ScoreAds(fatigue_engine_pb2.ScoreAdsRequest(
                    account_id=ACC, ads=[fatigue_pb2.AdSeries(ad_id="501", days=old + new)]), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "mix two attribution settings" in err.value.details()
            assert "1d_view,7d_click" in err.value.details() and "1d_click at ads[0].days[10]" in err.value.details()
            ok = await stub.ScoreAds(fatigue_engine_pb2.ScoreAdsRequest(
                account_id=ACC, ads=[fatigue_pb2.AdSeries(ad_id="501", days=new)]), timeout=30)
            assert len(ok.results) == 1
    finally:
        await host.stop()

"""Issue 17 points 1 and 7 through the real path: archived/deleted ads, renamed ads, out-of-range numbers."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
from tests.fidelity.harness import FIRST_DAY, account, daily_rows, real_path

ACC = "act_7001"
SINCE, UNTIL = FIRST_DAY.isoformat(), (FIRST_DAY + timedelta(days=29)).isoformat()


def insights(since=SINCE, until=UNTIL):
    return gw.GetInsightsRequest(account_id=ACC, since=since, until=until)


async def test_an_archived_ad_is_asked_for_and_a_refresh_that_omits_nothing_keeps_its_history(mongo):
    rows = daily_rows("7001", ["101", "102", "103"], FIRST_DAY, 30)
    async with real_path(mongo, [account("7001", rows)]) as path:
        await path.admin("/_sandbox/ads", {"account_id": ACC, "ad_id": "102", "effective_status": "ARCHIVED"})
        await path.admin("/_sandbox/ads", {"account_id": ACC, "ad_id": "103", "effective_status": "DELETED"})
        first = await path.gateway.GetInsights(insights(), metadata=path.metadata, timeout=60)
        assert sorted({r.ad_id for r in first.rows}) == ["101", "102", "103"]  # the filter asked for every status
        sent = (await path.stats())["requests"]
        assert sent and all(r["path"].endswith("/insights") for r in sent)
        fatigue = await path.gateway.GetFatigue(gw.GetFatigueRequest(account_id=ACC, since=SINCE, until=UNTIL),
                                                metadata=path.metadata, timeout=60)
        assert sorted(r.ad_id for r in fatigue.results) == ["101", "102", "103"]


async def test_an_answer_that_omits_an_ad_never_deletes_its_history(mongo):
    rows = daily_rows("7001", ["101", "102"], FIRST_DAY, 30)
    served = account("7001", rows)
    async with real_path(mongo, [served]) as path:
        before = await path.gateway.GetInsights(insights(), metadata=path.metadata, timeout=60)
        assert len(before.rows) == 60
        # Meta's answers stop containing ad 102 (whatever the filter), and restate a day of ad 101
        served.rows = [r for r in served.rows if r.ad_id != "102"]
        await path.admin("/_sandbox/restate", {"account_id": ACC, "date": SINCE, "ad_id": "101",
                                                "set": {"impressions": 999}})
        await path.gateway.Refresh(gw.RefreshRequest(account_id=ACC, since=SINCE, until=UNTIL, force=True),
                                   metadata=path.metadata, timeout=60)
        after = await path.gateway.GetInsights(insights(), metadata=path.metadata, timeout=60)
        assert after.version > before.version  # 101's restated day is the one change
        assert len(after.rows) == 60
        assert [r.impressions for r in after.rows if r.ad_id == "101" and r.date_start == SINCE] == [999]
        assert [r for r in before.rows if r.ad_id == "102"] == [r for r in after.rows if r.ad_id == "102"]


async def test_a_renamed_ad_is_scored_under_its_most_recent_name(mongo):
    rows = daily_rows("7001", ["101"], FIRST_DAY, 30, names={"101": "Spring video"})
    async with real_path(mongo, [account("7001", rows)]) as path:
        for d in range(20, 30):
            later = (FIRST_DAY + timedelta(days=d)).isoformat()
            await path.admin("/_sandbox/restate", {"account_id": ACC, "date": later, "set": {"ad_name": "Spring video v2"}})
        fatigue = await path.gateway.GetFatigue(gw.GetFatigueRequest(account_id=ACC, since=SINCE, until=UNTIL),
                                                metadata=path.metadata, timeout=60)
        assert [r.ad_name for r in fatigue.results] == ["Spring video v2"]


@pytest.mark.parametrize("field, value, words", [
    ("impressions", 2**63, ["impressions", "64-bit"]),
    ("spend", "92233720368547758.08", ["spend", "stored range"]),
])
async def test_a_number_out_of_the_stored_range_is_a_clear_permanent_data_error(mongo, field, value, words):
    rows = daily_rows("7001", ["101", "102"], FIRST_DAY, 30)
    bad_day = (FIRST_DAY + timedelta(days=4)).isoformat()
    async with real_path(mongo, [account("7001", rows)]) as path:
        await path.admin("/_sandbox/restate", {"account_id": ACC, "date": bad_day, "ad_id": "102",
                                                "set": {field: value}})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await path.gateway.GetInsights(insights(), metadata=path.metadata, timeout=60)
        assert err.value.code() == grpc.StatusCode.DATA_LOSS  # permanent: not UNAVAILABLE ("Meta is down, retry")
        message = err.value.details()
        for word in [*words, "'102'", bad_day, ACC]:
            assert word in message, message
        assert "ValueError" not in message
        calls = len((await path.stats())["requests"])
        with pytest.raises(grpc.aio.AioRpcError) as again:  # a retrying caller: the same error, no new Meta call
            await path.gateway.GetInsights(insights(), metadata=path.metadata, timeout=60)
        assert again.value.code() == grpc.StatusCode.DATA_LOSS and words[0] in again.value.details()
        assert len((await path.stats())["requests"]) == calls

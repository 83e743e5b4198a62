"""Issue 17 points 3 and 5 through the real path: paging that never ends, and "reduce the amount of data"."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
from tests.fidelity.harness import FIRST_DAY, account, daily_rows, real_path

A, B = "act_7101", "act_7102"
SINCE, UNTIL = FIRST_DAY.isoformat(), (FIRST_DAY + timedelta(days=7)).isoformat()


def two_accounts():
    return [account("7101", daily_rows("7101", ["101", "102", "103"], FIRST_DAY, 8)),
            account("7102", daily_rows("7102", ["201"], FIRST_DAY, 8))]


def requests_of(stats: dict, account_id: str) -> list[dict]:
    return [r for r in stats["requests"] if r["account_id"] == account_id.removeprefix("act_")]


@pytest.mark.parametrize("kind", ["endless_paging", "repeat_page"])
async def test_paging_that_never_ends_stops_at_an_empty_or_repeated_page_and_spares_the_budget(mongo, kind):
    # a budget of 12 calls an hour: an endless answer used to spend all of it and lock every account out
    async with real_path(mongo, two_accounts(), fetcher={"page_limit": 10, "budget_calls": 12}) as path:
        await path.admin("/_sandbox/faults", {"account_id": A, "kind": kind, "count": 1000})
        reply = await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=A, since=SINCE, until=UNTIL),
                                               metadata=path.metadata, timeout=60)
        assert len(reply.rows) == 24 and len({(r.ad_id, r.date_start) for r in reply.rows}) == 24
        assert len(requests_of(await path.stats(), A)) == 4  # three pages of rows, one empty/repeated page
        other = await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=B, since=SINCE, until=UNTIL),
                                               metadata=path.metadata, timeout=60)
        assert len(other.rows) == 8


async def test_a_page_cap_derived_from_range_and_page_size_names_the_account_and_blocks_no_one_else(mongo):
    # 8 days x 1 ad a day at 5 rows a page: the cap is ceil(8 / 5) + 1 = 3 pages; account A really needs 5
    async with real_path(mongo, two_accounts(), fetcher={"page_limit": 5, "max_ads_per_day": 1,
                                                          "budget_calls": 12}) as path:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=A, since=SINCE, until=UNTIL),
                                           metadata=path.metadata, timeout=60)
        assert err.value.code() == grpc.StatusCode.DATA_LOSS  # not retried by the channel, not "Meta is down"
        assert "Meta's paging did not end after 3 pages of 5 rows for act_7101" in err.value.details()
        assert "budget" not in err.value.details().split("stopped there")[0]
        assert len(requests_of(await path.stats(), A)) == 3
        other = await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=B, since=SINCE, until=UNTIL),
                                               metadata=path.metadata, timeout=60)
        assert len(other.rows) == 8


async def test_reduce_the_amount_of_data_at_the_smallest_page_splits_the_range_down_to_single_days(mongo):
    async with real_path(mongo, two_accounts(), fetcher={"page_limit": 20, "min_page_limit": 5}) as path:
        await path.admin("/_sandbox/ads", {"account_id": A, "max_query_days": 2})
        reply = await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=A, since=SINCE, until=UNTIL),
                                               metadata=path.metadata, timeout=60)
        assert len(reply.rows) == 24
        stats = await path.stats()
        ok = [(r["since"], r["until"]) for r in requests_of(stats, A) if r["status"] == 200]
        days = [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(8)]
        assert ok == [(days[0], days[1]), (days[2], days[3]), (days[4], days[5]), (days[6], days[7])]
        refused = [r for r in requests_of(stats, A) if r["status"] != 200]
        assert {r["limit"] for r in refused} == {"20", "10", "5"}  # the page size went down first
        assert stats["async_requests"] == 0  # splitting came before an async report


async def test_each_half_of_a_split_is_counted_against_the_budget(mongo):
    async with real_path(mongo, two_accounts(), fetcher={"page_limit": 20, "min_page_limit": 5,
                                                          "budget_calls": 10}) as path:
        await path.admin("/_sandbox/ads", {"account_id": A, "max_query_days": 1})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await path.gateway.GetInsights(gw.GetInsightsRequest(account_id=A, since=SINCE, until=UNTIL),
                                           metadata=path.metadata, timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await path.stats())["graph_requests"] == 10  # account lookup + 9 insights requests, then refused

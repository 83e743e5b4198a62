"""FetchInsights over real sockets: the sandbox over HTTP, the fetcher over gRPC on loopback."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import grpc
import httpx
import pytest

from services.common.ads_manager_csv import load_csv
from services.meta_fetcher.graph_client import CallCounter, GraphClient
from services.meta_fetcher.graph_errors import GraphPagingError
from services.common.row_proto import row_from_proto
from services.meta_fetcher.settings import FetcherSettings
from services.meta_sandbox import csv_account, sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import fetcher_stub, post, real_csv_or_skip, request, sandbox_stats

ACC = "900000000001"


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=30, n_ads=12)


async def test_pages_through_many_pages_and_counts_upstream_calls(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base, page_limit=7) as stub:
        resp = await stub.FetchInsights(request(f"act_{ACC}", "2026-01-30", "2026-02-28"))
        pages = -(-len(account.rows) // 7)
        assert [row_from_proto(r) for r in resp.rows] == account.rows
        assert resp.upstream_calls == 1 + pages  # account lookup + every page
        stats = await sandbox_stats(base)
        assert stats["insights_requests"] == pages
        assert {(r["since"], r["until"]) for r in stats["requests"]} == {("2026-01-30", "2026-02-28")}
        assert len({r["after"] for r in stats["requests"]}) == pages  # each cursor once
        assert resp.account_timezone == "America/Los_Angeles" and resp.account_currency == "USD"
        assert resp.account_id == ACC and resp.HasField("fetched_at")
        assert all(r.fetched_at == resp.fetched_at for r in resp.rows)
        # the account lookup is cached: a second fetch costs only its pages
        last_day = sum(r.date_start == date(2026, 2, 28) for r in account.rows)
        again = await stub.FetchInsights(request(ACC, "2026-02-28", "2026-02-28"))
        assert again.upstream_calls == -(-last_day // 7) and len(again.rows) == last_day


async def test_only_requested_fields_are_asked_for_and_returned(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        resp = await stub.FetchInsights(request(ACC, "2026-02-01", "2026-02-03", fields=["impressions"]))
        assert resp.rows
        for row in resp.rows:
            assert row.HasField("impressions") and row.ad_id
            assert not row.HasField("reach") and not row.HasField("spend") and not row.actions_present
            assert row.ad_name == "" and row.quality_ranking == ""
        asked = (await sandbox_stats(base))["requests"][0]["fields"].split(",")
        assert set(asked) == {"account_id", "ad_id", "adset_id", "campaign_id", "impressions"}


async def test_garbage_page_is_data_loss_and_nothing_is_returned(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base, page_limit=10) as stub:
        await post(base, "/_sandbox/faults", {"account_id": ACC, "kind": "garbage", "skip": 2,
                                              "field": "impressions", "value": "abc"})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, "2026-01-30", "2026-02-28"))
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert "page 3" in err.value.details() and "impressions='abc'" in err.value.details()
        assert "nothing was returned" in err.value.details()
        assert (await sandbox_stats(base))["insights_requests"] == 3  # stopped at the bad page


async def test_real_csv_through_sandbox_and_fetcher_is_identical_to_load_csv() -> None:
    path = real_csv_or_skip()
    expected = load_csv(path, "act_1001")
    assert len(expected) == 1716
    async with sandbox_server([csv_account(path, "act_1001")], synthetic=False) as base, fetcher_stub(base) as stub:
        resp = await stub.FetchInsights(request("act_1001", "2025-10-29", "2026-04-29"))
    assert [row_from_proto(r) for r in resp.rows] == expected  # fetched_at is not compared
    assert resp.account_currency == "MYR" and resp.account_timezone == "Asia/Kuala_Lumpur"


def _months_ago(months: int) -> str:
    today = datetime.now(timezone.utc).date()
    return (today - timedelta(days=int(months * 30.44))).isoformat()


@pytest.mark.parametrize(
    "account_id, since, until, fields, words",
    [
        (ACC, "2026-02-10", "2026-02-01", (), "until 2026-02-01 is before since 2026-02-10"),
        ("act_12ab", "2026-02-01", "2026-02-02", (), "not a Meta ad account id"),
        ("", "2026-02-01", "2026-02-02", (), "not a Meta ad account id"),
        (ACC, "2026/02/01", "2026-02-02", (), "since='2026/02/01' is not a date"),
        (ACC, "2026-02-01", "tomorrow", (), "until='tomorrow' is not a date"),
        (ACC, _months_ago(38), _months_ago(30), (), "37-month retention"),
        (ACC, "2026-02-01", "2026-02-02", ("ctr",), "'ctr' not supported"),
    ],
)
async def test_bad_requests_are_invalid_argument_before_any_call(account, account_id, since, until, fields,
                                                                 words) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(account_id, since, until, fields))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in err.value.details()
        assert (await sandbox_stats(base))["graph_requests"] == 0


async def test_unknown_account_is_not_found(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request("act_424242", "2026-02-01", "2026-02-02"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "act_424242" in err.value.details() and "100/33" in err.value.details()


async def test_access_token_never_reaches_logs_or_urls(account, caplog) -> None:
    token = "EAAB-very-secret-token-0123456789"
    caplog.set_level(logging.DEBUG)
    async with sandbox_server([account], synthetic=False, tokens=[token]) as base, \
            fetcher_stub(base, page_limit=50, access_token=token, app_secret="app-secret-xyz") as stub:
        # the sandbox does not require appsecret_proof here, the fetcher sends it anyway
        resp = await stub.FetchInsights(request(ACC, "2026-01-30", "2026-02-28"))
        assert len(resp.rows) == len(account.rows)
        await post(base, "/_sandbox/faults", {"account_id": ACC, "kind": "error", "code": 190, "subcode": 463,
                                              "message": f"Error validating access token {token}"})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, "2026-01-30", "2026-02-28"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert token not in err.value.details() and "[REDACTED]" in err.value.details()
    assert "HTTP Request: GET" in caplog.text  # httpx's request log was captured ...
    assert token not in caplog.text and "app-secret-xyz" not in caplog.text  # ... and holds no secret


async def test_next_links_lose_tokens_and_must_stay_on_the_graph_host() -> None:
    client = GraphClient(FetcherSettings(graph_url="https://graph.example.test", access_token="tok-123456"))
    try:
        url = client._next_url("https://graph.example.test/v23.0/act_1/insights?access_token=tok-123456"
                               "&after=QQ&limit=100", limit=50)
        assert "access_token" not in str(url) and url.params["limit"] == "50" and url.params["after"] == "QQ"
        with pytest.raises(GraphPagingError, match="another host"):
            client._next_url("https://evil.example.test/v23.0/act_1/insights?after=QQ", limit=50)
    finally:
        await client.aclose()


async def test_version_warning_header_is_logged_once(account, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="services.meta_fetcher")
    async with sandbox_server([account], synthetic=False, version_upgrades={"v23.0": "v24.0"}) as base, \
            fetcher_stub(base, page_limit=100) as stub:
        await stub.FetchInsights(request(ACC, "2026-01-30", "2026-02-28"))
    warnings = [r for r in caplog.records if "auto-upgraded" in r.getMessage()]
    assert len(warnings) == 1 and "v24.0" in warnings[0].getMessage()


async def test_paging_loop_is_detected() -> None:
    """A server whose next link always carries the same cursor (with new rows on every page): DATA_LOSS, not an
    endless fetch."""
    from aiohttp import web

    from services.meta_sandbox.runner import start_app

    served = iter(range(1000, 10**6))

    async def looping(req: web.Request) -> web.Response:
        if req.path.endswith("/insights"):
            row = {"account_id": "5", "ad_id": str(next(served)), "adset_id": "2", "campaign_id": "3",
                   "date_start": "2026-02-01", "date_stop": "2026-02-01", "impressions": "1"}
            return web.json_response({"data": [row], "paging": {"cursors": {"after": "X"},
                                                                "next": str(req.url.update_query(after="X"))}})
        return web.json_response({"id": "act_5", "account_id": "5", "currency": "EUR", "timezone_name": "UTC"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", looping)
    runner, base = await start_app(app)
    try:
        async with fetcher_stub(base) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.FetchInsights(request("act_5", "2026-02-01", "2026-02-02"))
        assert err.value.code() == grpc.StatusCode.DATA_LOSS and "repeated cursor" in err.value.details()
    finally:
        await runner.cleanup()


async def test_a_restated_day_is_seen_on_the_next_fetch(account) -> None:
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        first = await stub.FetchInsights(request(ACC, "2026-02-27", "2026-02-28"))
        await post(base, "/_sandbox/restate", {"account_id": ACC, "date": "2026-02-27", "actions_delta": {"lead": "2"}})
        second = await stub.FetchInsights(request(ACC, "2026-02-27", "2026-02-28"))
        old = {(r.ad_id, r.date_start): r for r in map(row_from_proto, first.rows)}
        for row in map(row_from_proto, second.rows):
            before = old[(row.ad_id, row.date_start)]
            if row.date_start == date(2026, 2, 27):
                assert row.conversions("lead") == (before.conversions("lead") or 0) + 2
            else:
                assert row == before


async def test_concurrent_first_calls_share_one_account_lookup(account) -> None:
    import asyncio

    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base) as stub:
        replies = await asyncio.gather(*(stub.FetchInsights(request(ACC, "2026-02-27", "2026-02-28"))
                                         for _ in range(6)))
        assert (await sandbox_stats(base))["account_requests"] == 1
        assert sorted(r.upstream_calls for r in replies) == [1, 1, 1, 1, 1, 2]


async def test_appsecret_proof_is_sent_and_a_wrong_secret_is_a_config_error(account) -> None:
    async with sandbox_server([account], synthetic=False, app_secret="s3cret-app") as base:
        async with fetcher_stub(base, app_secret="s3cret-app") as stub:
            resp = await stub.FetchInsights(request(ACC, "2026-02-27", "2026-02-28"))
            assert resp.rows
        async with fetcher_stub(base, app_secret="wrong-secret") as stub:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.FetchInsights(request(ACC, "2026-02-27", "2026-02-28"))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "META_APP_SECRET" in err.value.details() and "wrong-secret" not in err.value.details()


def test_settings_repr_hides_secrets() -> None:
    settings = FetcherSettings(access_token="tok-abcdef", app_secret="sec-abcdef")
    assert "tok-abcdef" not in repr(settings) and "sec-abcdef" not in repr(settings)
    assert FetcherSettings.from_env({"META_ACCESS_TOKEN": "t-1", "META_BUDGET_CALLS": "7"}).budget_calls == 7
    with pytest.raises(ValueError, match="META_RETRIES"):
        FetcherSettings.from_env({"META_RETRIES": "many"})


async def test_async_report_gives_the_same_rows_as_sync_paging(account) -> None:
    from tests.meta_fetcher.helpers import FAST

    async with sandbox_server([account], synthetic=False, async_polls_to_complete=3) as base:
        settings = FetcherSettings(graph_url=base, page_limit=40, **FAST)
        async with GraphClient(settings) as client:
            sync = await client.fetch_insights(ACC, date(2026, 1, 30), date(2026, 2, 28), ["impressions", "actions"],
                                               CallCounter())
            counter = CallCounter()
            via_job = await client.fetch_insights_async(ACC, date(2026, 1, 30), date(2026, 2, 28),
                                                        ["impressions", "actions"], counter)
        assert via_job == sync and len(sync) == len(account.rows)
        pages = -(-len(account.rows) // 40)
        assert counter.calls == 1 + 3 + pages  # create, three polls, pages
        slow = FetcherSettings(graph_url=base, **{**FAST, "async_timeout_s": 0.0})
        async with GraphClient(slow) as client:
            from services.meta_fetcher.graph_errors import GraphAsyncJobError

            with pytest.raises(GraphAsyncJobError, match="not complete"):
                await client.fetch_insights_async(ACC, date(2026, 2, 1), date(2026, 2, 2), ["impressions"],
                                                  CallCounter())

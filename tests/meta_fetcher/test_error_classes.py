"""One test per Graph error class, scripted in the sandbox over HTTP (META_GRAPH_API.md §3).

Attempts are counted at /_sandbox/stats; the caller sees a gRPC status and an
actionable message. Retry delays are milliseconds (settings), never asserted.
"""

from __future__ import annotations

from datetime import date

import grpc
import pytest

from services.meta_fetcher.graph_client import CallCounter, GraphClient
from services.meta_fetcher.settings import FetcherSettings
from services.meta_sandbox import sandbox_server, synthetic_account
from tests.meta_fetcher.helpers import FAST, fetcher_stub, post, request, sandbox_stats

ACC = "900000000001"
SINCE, UNTIL = "2026-02-24", "2026-02-28"


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=5, n_ads=2)


async def fetch_with_faults(account, faults, since=SINCE, until=UNTIL, **settings):
    """(response or AioRpcError, sandbox stats) for one FetchInsights of ``since..until`` with ``faults`` scripted."""
    async with sandbox_server([account], synthetic=False) as base, fetcher_stub(base, **settings) as stub:
        for fault in faults:
            await post(base, "/_sandbox/faults", {"account_id": ACC, **fault})
        try:
            outcome = await stub.FetchInsights(request(ACC, since, until))
        except grpc.aio.AioRpcError as exc:
            outcome = exc
        return outcome, await sandbox_stats(base)


# ------------------------------------------------------------------ retry


@pytest.mark.parametrize("fault", [
    {"kind": "error", "code": 2, "subcode": 1504043, "count": 2},       # is_transient, HTTP 500
    {"kind": "error", "code": 1, "subcode": 99, "count": 2},            # unknown error
    {"kind": "error", "code": 9999, "is_transient": True, "count": 2},  # any code flagged transient
    {"kind": "http", "http_status": 502, "count": 2},                   # a proxy's HTML 502
    {"kind": "disconnect", "count": 2},                                 # connection dropped
], ids=["code2", "code1", "is_transient", "http502", "disconnect"])
async def test_retry_class_recovers_within_three_retries(account, fault) -> None:
    resp, stats = await fetch_with_faults(account, [fault])
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert len(resp.rows) == len(account.rows)
    assert stats["insights_requests"] == 3          # two failures, then success
    assert resp.upstream_calls == 1 + 3             # account lookup + three attempts


async def test_retry_class_gives_up_after_three_retries_as_unavailable(account) -> None:
    err, stats = await fetch_with_faults(account, [{"kind": "error", "code": 2, "count": 10}])
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "after 4 attempt(s)" in err.details() and "retry later" in err.details() and "code 2" in err.details()
    assert stats["insights_requests"] == 4


async def test_timeouts_are_retried(account) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "latency", "latency_ms": 1500, "count": 1}],
                                          timeout_s=0.3)
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert stats["insights_requests"] == 2


# ------------------------------------------------------------------ throttled


@pytest.mark.parametrize("code, subcode", [(4, 1504039), (17, 2446079), (32, None), (613, 1487742),
                                           (80000, 2446079), (80004, None), (80008, None)])
async def test_throttle_codes_back_off_and_retry(account, code, subcode) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "error", "code": code, "subcode": subcode, "count": 1}])
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert stats["insights_requests"] == 2


async def test_throttle_with_a_long_regain_time_is_resource_exhausted_at_once(account) -> None:
    err, stats = await fetch_with_faults(
        account, [{"kind": "error", "code": 80000, "subcode": 2446079, "regain_minutes": 5, "count": 1}])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry after 300 s" in err.details() and "rate limit" in err.details()
    assert ("retry-after-s", "300") in tuple(err.trailing_metadata())
    assert stats["insights_requests"] == 1  # no hammering while Meta says 5 minutes


async def test_persistent_throttle_ends_resource_exhausted_with_a_delay(account) -> None:
    err, stats = await fetch_with_faults(account, [{"kind": "error", "code": 17, "count": 10}],
                                         throttle_default_retry_s=120)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry after 120 s" in err.details()
    assert stats["insights_requests"] == 4


async def test_short_regain_time_is_waited_for_before_retrying(account) -> None:
    """estimated_time_to_regain_access (minutes) sets the wait when it is within throttle_max_wait_s."""
    waits: list[float] = []
    now = [1000.0]

    async def fake_sleep(seconds: float) -> None:  # time passes only for the pacer's clock
        waits.append(seconds)
        now[0] += seconds

    async with sandbox_server([account], synthetic=False) as base:
        await post(base, "/_sandbox/faults", {"account_id": ACC, "kind": "error", "code": 17, "regain_minutes": 1})
        settings = FetcherSettings(graph_url=base, **{**FAST, "throttle_max_wait_s": 90})
        async with GraphClient(settings, sleep=fake_sleep) as client:
            from services.meta_fetcher.pacing import build_pacer

            client.pacer = build_pacer(settings)
            client.pacer._sleep = fake_sleep
            client.pacer.usage.clock = lambda: now[0]
            rows = await client.fetch_insights(ACC, date(2026, 2, 24), date(2026, 2, 28), ["impressions"],
                                               CallCounter())
    assert len(rows) == len(account.rows)
    assert waits and waits[0] >= 60  # waited the minute Meta asked for, not the millisecond backoff


# ------------------------------------------------------------------ shrink


async def test_too_much_data_halves_the_page_size(account) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "error", "code": 100, "subcode": 1487534}],
                                          page_limit=100)
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert [r["limit"] for r in stats["requests"]] == ["100", "50"]
    assert len(resp.rows) == len(account.rows)


@pytest.mark.parametrize("code, subcode", [(100, 1504018), (2, 1504038)])
async def test_timeouts_reported_by_meta_shrink_too(account, code, subcode) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "error", "code": code, "subcode": subcode}],
                                          page_limit=40)
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert [r["limit"] for r in stats["requests"]] == ["40", "20"]


async def test_reduce_the_amount_of_data_as_code_1_shrinks(account) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "error", "code": 1, "http_status": 500,
                                                     "message": "Please reduce the amount of data you're asking for, "
                                                                "then retry your request"}], page_limit=64)
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert [r["limit"] for r in stats["requests"]] == ["64", "32"]


async def test_shrink_floor_reached_is_unavailable_with_advice_when_async_is_off(account) -> None:
    # one day: nothing left to split (longer ranges: tests/fidelity/test_paging_and_splitting.py)
    err, stats = await fetch_with_faults(account, [{"kind": "error", "code": 100, "subcode": 1487534, "count": 10}],
                                         UNTIL, UNTIL, page_limit=20, min_page_limit=5, async_fallback=False)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "shorter date range" in err.details() and "1487534" in err.details()
    assert [r["limit"] for r in stats["requests"]] == ["20", "10", "5"]


async def test_shrink_floor_falls_back_to_an_async_report(account) -> None:
    resp, stats = await fetch_with_faults(account, [{"kind": "error", "code": 100, "subcode": 1504018, "count": 10}],
                                          UNTIL, UNTIL, page_limit=20, min_page_limit=5)
    assert not isinstance(resp, grpc.aio.AioRpcError), resp
    assert len(resp.rows) == len([r for r in account.rows if r.date_start.isoformat() == UNTIL]) > 0
    sync = [r for r in stats["requests"] if "report_run_id" not in r]
    report = [r for r in stats["requests"] if "report_run_id" in r]
    assert [r["limit"] for r in sync] == ["20", "10", "5"]
    assert report and all((r["since"], r["until"]) == (UNTIL, UNTIL) for r in report)
    assert stats["async_requests"] >= 3  # create + at least two polls
    assert resp.upstream_calls == stats["graph_requests"]


async def test_a_failed_async_report_is_unavailable(account) -> None:
    err, stats = await fetch_with_faults(account, [{"kind": "error", "code": 100, "subcode": 1487534, "count": 10},
                                                   {"kind": "job_failed"}], UNTIL, UNTIL, page_limit=10,
                                         min_page_limit=5)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "async report" in err.details() and "2490547" in err.details()


# ------------------------------------------------------------------ token invalid


@pytest.mark.parametrize("fault", [
    {"kind": "expired_token"},
    {"kind": "error", "code": 190, "subcode": 460},
    {"kind": "error", "code": 190},
    {"kind": "error", "code": 2500},
], ids=["expired", "password-changed", "invalid", "2500"])
async def test_token_errors_are_failed_precondition_and_never_retried(account, fault) -> None:
    err, stats = await fetch_with_faults(account, [{**fault, "count": 5}])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"token for act_{ACC} expired or invalid — re-authorise" in err.details()
    assert stats["insights_requests"] == 1


# ------------------------------------------------------------------ permanent


@pytest.mark.parametrize("code, subcode, status, words", [
    (200, None, grpc.StatusCode.PERMISSION_DENIED, "grant ads_read"),
    (10, None, grpc.StatusCode.PERMISSION_DENIED, "may not read"),
    (294, None, grpc.StatusCode.PERMISSION_DENIED, "may not read"),
    (100, 33, grpc.StatusCode.NOT_FOUND, "does not know ad account"),
    (100, None, grpc.StatusCode.INVALID_ARGUMENT, "rejected the request"),
    (2635, None, grpc.StatusCode.FAILED_PRECONDITION, "--api-version"),
])
async def test_permanent_errors_map_to_their_status_without_retry(account, code, subcode, status, words) -> None:
    err, stats = await fetch_with_faults(account, [{"kind": "error", "code": code, "subcode": subcode, "count": 5}])
    assert err.code() == status and words in err.details()
    assert stats["insights_requests"] == 1


async def test_a_retired_api_version_is_failed_precondition(account) -> None:
    async with sandbox_server([account], synthetic=False, min_version="v24.0") as base, \
            fetcher_stub(base, api_version="v23.0") as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.FetchInsights(request(ACC, SINCE, UNTIL))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "2635" in err.value.details()
        assert (await sandbox_stats(base))["account_requests"] == 1


async def test_throttle_without_regain_waits_at_least_the_minimum(account) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async with sandbox_server([account], synthetic=False) as base:
        await post(base, "/_sandbox/faults", {"account_id": ACC, "kind": "error", "code": 613})
        settings = FetcherSettings(graph_url=base, **{**FAST, "throttle_min_wait_s": 5.0, "throttle_max_wait_s": 30})
        async with GraphClient(settings, sleep=fake_sleep) as client:
            rows = await client.fetch_insights(ACC, date(2026, 2, 24), date(2026, 2, 28), ["impressions"],
                                               CallCounter())
    assert len(rows) == len(account.rows) and waits and waits[0] >= 5

"""Meta's own Python SDK (facebook-business) against the sandbox, unchanged (issue 17 point 6).

The SDK is synchronous (requests), so each call runs in a worker thread while
the sandbox serves on this test's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from services.common.effective_status import EFFECTIVE_STATUSES
from services.meta_sandbox import sandbox_server, synthetic_account

ACC = "act_900000000001"
TOKEN = "sdk-test-token"
TIME_RANGE = {"since": "2026-02-20", "until": "2026-02-28"}


def sdk(base: str, token: str | None = TOKEN) -> FacebookAdsApi:
    session = FacebookSession(access_token=token)
    session.GRAPH = base  # the SDK's one knob for the Graph host
    return FacebookAdsApi(session, api_version="v23.0")


@pytest.fixture
def account():
    return synthetic_account(today=date(2026, 3, 1), days=30, n_ads=6)


async def test_account_fields_through_api_get(account):
    async with sandbox_server([account], synthetic=False) as base:
        node = AdAccount(ACC, api=sdk(base))
        got = await asyncio.to_thread(node.api_get, fields=[AdAccount.Field.name, AdAccount.Field.currency,
                                                            AdAccount.Field.timezone_name])
        assert got[AdAccount.Field.currency] == account.currency
        assert got[AdAccount.Field.timezone_name] == account.timezone_name
        assert got[AdAccount.Field.name] == account.name


async def test_paged_sync_insights_with_the_status_filter(account):
    archived = sorted({r.ad_id for r in account.rows})[0]
    account.set_status(archived, "ARCHIVED")
    params = {"level": "ad", "time_increment": 1, "time_range": TIME_RANGE, "limit": 7,
              "filtering": [{"field": "ad.effective_status", "operator": "IN", "value": list(EFFECTIVE_STATUSES)}]}
    async with sandbox_server([account], synthetic=False) as base:
        node = AdAccount(ACC, api=sdk(base))

        def read() -> list[dict]:
            cursor = node.get_insights(fields=["ad_id", "impressions", "spend", "actions"], params=params)
            return [dict(row) for row in cursor]  # iterating pages through paging.cursors.after

        rows = await asyncio.to_thread(read)
        want = [r for r in account.rows if date(2026, 2, 20) <= r.date_start <= date(2026, 2, 28)]
        assert len(rows) == len(want) > 7 and archived in {r["ad_id"] for r in rows}
        assert all(r["impressions"].isdigit() for r in rows)  # counts are integer strings
        for row in rows:
            for action in row.get("actions", []):
                assert action["value"].isdigit(), action  # "12", never "12.0"
        default = await asyncio.to_thread(
            lambda: [dict(r) for r in node.get_insights(fields=["ad_id"], params={**params, "filtering": []})])
        assert archived not in {r["ad_id"] for r in default}  # without the filter Meta leaves archived ads out


async def test_the_async_report_flow(account):
    async with sandbox_server([account], synthetic=False, async_polls_to_complete=2) as base:
        node = AdAccount(ACC, api=sdk(base))

        def run() -> tuple[list[str], list[dict]]:
            job = node.get_insights(fields=["ad_id", "impressions"], is_async=True,
                                    params={"level": "ad", "time_increment": 1, "time_range": TIME_RANGE})
            assert isinstance(job, AdReportRun) and job[AdReportRun.Field.id]
            states = []
            while True:
                job = job.api_get()
                states.append(job[AdReportRun.Field.async_status])
                if states[-1] == "Job Completed":
                    break
            return states, [dict(r) for r in job.get_result(params={"limit": 5})]

        states, rows = await asyncio.to_thread(run)
        assert states == ["Job Running", "Job Completed"]
        want = [r for r in account.rows if date(2026, 2, 20) <= r.date_start <= date(2026, 2, 28)
                and r.ad_id not in ()]
        assert len(rows) == len(want) > 5


async def test_a_throttle_error_reaches_the_sdk_as_graph_sends_it(account):
    async with sandbox_server([account], synthetic=False) as base:
        import httpx
        async with httpx.AsyncClient() as http:
            resp = await http.post(f"{base}/_sandbox/faults", json={"account_id": ACC, "kind": "error",
                                                                    "code": 80000})
            assert resp.status_code == 200
        node = AdAccount(ACC, api=sdk(base))
        with pytest.raises(FacebookRequestError) as err:
            await asyncio.to_thread(lambda: list(node.get_insights(fields=["ad_id"], params={"level": "ad"})))
        assert err.value.api_error_code() == 80000 and err.value.api_error_subcode() == 2446079
        assert err.value.http_status() == 400 and err.value.api_transient_error() is True


@pytest.mark.parametrize("token, code", [("", 104), ("not-a-token-the-sandbox-knows", 190)])
async def test_token_errors_carry_graphs_codes(account, token, code):
    async with sandbox_server([account], synthetic=False, tokens=[TOKEN]) as base:
        node = AdAccount(ACC, api=sdk(base, token or None))
        with pytest.raises(FacebookRequestError) as err:
            await asyncio.to_thread(node.api_get, fields=["name"])
        assert err.value.api_error_code() == code and err.value.api_error_type() == "OAuthException"

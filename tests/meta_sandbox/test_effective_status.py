"""The sandbox hides archived and deleted ads unless ``filtering`` asks; unimplemented parameters are refused."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from services.common.effective_status import delivery_filtering
from services.meta_sandbox import sandbox_server, synthetic_account

TOKEN = "sandbox-test-token"
ACC = "900000000001"


def params(**extra) -> dict[str, str]:
    out = {"access_token": TOKEN, "level": "ad", "time_increment": "1", "fields": "ad_id", "limit": "500",
           "time_range": json.dumps({"since": "2026-01-30", "until": "2026-02-28"})}
    out.update(extra)
    return out


async def test_archived_and_deleted_ads_are_hidden_unless_the_filter_names_them() -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=30, n_ads=4)
    ads = sorted({r.ad_id for r in account.rows})
    assert len(ads) == 4
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        for ad, status in ((ads[0], "ARCHIVED"), (ads[1], "DELETED"), (ads[2], "PAUSED")):
            resp = await http.post(f"{base}/_sandbox/ads", json={"account_id": f"act_{ACC}", "ad_id": ad,
                                                                 "effective_status": status})
            assert resp.status_code == 200, resp.text
        url = f"{base}/v23.0/act_{ACC}/insights"

        async def ads_answered(**extra) -> list[str]:
            resp = await http.get(url, params=params(**extra))
            assert resp.status_code == 200, resp.text
            return sorted({r["ad_id"] for r in resp.json()["data"]})

        assert await ads_answered() == ads[2:]
        assert await ads_answered(filtering=delivery_filtering()) == ads
        only_archived = [{"field": "ad.effective_status", "operator": "IN", "value": ["ARCHIVED"]}]
        assert await ads_answered(filtering=json.dumps(only_archived)) == [ads[0]]
        not_active = [{"field": "ad.effective_status", "operator": "NOT_IN", "value": ["ACTIVE"]}]
        assert await ads_answered(filtering=json.dumps(not_active)) == ads[:3]
        bad = await http.post(f"{base}/_sandbox/ads", json={"account_id": f"act_{ACC}", "ad_id": ads[0],
                                                            "effective_status": "GONE"})
        assert bad.status_code == 400 and "GONE" in bad.text


@pytest.mark.parametrize("extra, words", [
    ({"filtering": json.dumps([{"field": "ad.impressions", "operator": "GREATER_THAN", "value": 0}])},
     ["ad.impressions", "not implemented"]),
    ({"filtering": json.dumps([{"field": "ad.effective_status", "operator": "CONTAIN", "value": ["ACTIVE"]}])},
     ["CONTAIN", "not implemented"]),
    ({"breakdowns": "age"}, ["breakdowns", "not implemented"]),
    ({"action_breakdowns": "action_destination"}, ["action_breakdowns", "not implemented"]),
    ({"use_unified_attribution_setting": "true"}, ["use_unified_attribution_setting", "not implemented"]),
])
async def test_what_the_sandbox_does_not_implement_is_refused_loudly(extra, words) -> None:
    account = synthetic_account(today=date(2026, 3, 1), days=30, n_ads=2)
    async with sandbox_server([account], synthetic=False) as base, httpx.AsyncClient() as http:
        resp = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=params(**extra))
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["code"] == 100
        for word in words:
            assert word in error["message"]
        ok = await http.get(f"{base}/v23.0/act_{ACC}/insights", params=params(action_breakdowns="action_type"))
        assert ok.status_code == 200

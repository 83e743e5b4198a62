"""Issue 17 point 4 through the real path: the sandbox serves an Ads Manager export people download
(English or Japanese), and GetInsights / GetFatigue answer exactly its data rows (summary rows never an ad)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
from services.meta_sandbox.accounts import csv_account
from tests.fidelity.exports import english_export, japanese_export
from tests.fidelity.harness import real_path


@pytest.mark.parametrize("build, currency", [(english_export, "USD"), (japanese_export, "JPY")])
async def test_an_export_as_downloaded_is_served_whole_and_its_total_row_is_no_ad(mongo, tmp_path, build, currency):
    served = csv_account(build(tmp_path / "export.csv"), "act_7201")
    assert served.currency == currency
    async with real_path(mongo, [served]) as path:
        reply = await path.gateway.GetInsights(
            gw.GetInsightsRequest(account_id="act_7201", since="2026-03-01", until="2026-03-03"),
            metadata=path.metadata, timeout=60)
        assert sorted({r.ad_name for r in reply.rows}) == ["Video A", "Video B"]
        assert len(reply.rows) == 6
        first_a = next(r for r in reply.rows if r.ad_name == "Video A" and r.date_start == "2026-03-01")
        assert first_a.impressions == 12345 and first_a.reach == 11001 and first_a.inline_link_clicks == 120
        assert Decimal(first_a.spend) == (Decimal("1234.50") if currency == "USD" else Decimal(1234))
        first_b = next(r for r in reply.rows if r.ad_name == "Video B" and r.date_start == "2026-03-01")
        assert not first_b.HasField("reach")  # "-" stays unknown all the way
        fatigue = await path.gateway.GetFatigue(
            gw.GetFatigueRequest(account_id="act_7201", since="2026-03-01", until="2026-03-03"),
            metadata=path.metadata, timeout=60)
        assert sorted(r.ad_name for r in fatigue.results) == ["Video A", "Video B"]

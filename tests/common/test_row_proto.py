"""proto <-> dataclass conversion of InsightRow."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import insights_pb2
from services.common.row_proto import RowDecodeError as ProtoConversionError, row_from_proto, row_to_proto
from tests.fatigue_engine.example import worked_example


def test_round_trip_keeps_every_field() -> None:
    row = InsightRow(
        account_id="1001", ad_id="5", date_start=date(2026, 3, 1), date_stop=date(2026, 3, 1),
        ad_name="a", adset_id="6", adset_name="s", campaign_id="7", campaign_name="c",
        impressions=10, reach=9, clicks=3, inline_link_clicks=2, spend=Decimal("1.10"),
        actions={"lead": Decimal("1"), "link_click": Decimal("2")}, quality_ranking="AVERAGE",
        engagement_rate_ranking="UNKNOWN", conversion_rate_ranking="BELOW_AVERAGE_10", reach_cum=40,
        fetched_at=datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc),
    )
    back = row_from_proto(row_to_proto(row))
    assert back == row and back.fetched_at == row.fetched_at
    assert str(back.spend) == "1.10"
    for r in worked_example():
        assert row_from_proto(row_to_proto(r)) == r


def test_unknown_stays_unknown() -> None:
    pb = insights_pb2.InsightRow(ad_id="5", date_start="2026-03-01", date_stop="2026-03-01", impressions=0)
    row = row_from_proto(pb)
    assert row.impressions == 0
    assert row.inline_link_clicks is None and row.spend is None and row.reach_cum is None
    assert row.actions is None and row.quality_ranking is None


def test_present_empty_actions_are_not_unknown() -> None:
    pb = insights_pb2.InsightRow(ad_id="5", date_start="2026-03-01", actions_present=True)
    row = row_from_proto(pb)
    assert row.actions == {} and row.conversions("lead") == 0
    assert row.date_stop == row.date_start


@pytest.mark.parametrize("field,value,message", [
    ("date_start", "2026-3-1", "not a YYYY-MM-DD date"),
    ("date_stop", "20260301", "not a YYYY-MM-DD date"),
    ("spend", "NaN", "finite number"),
    ("spend", "-1", "finite number"),
    ("impressions", -1, "negative"),
    ("engagement_rate_ranking", "average", "is not one of"),
])
def test_bad_values_are_rejected(field, value, message) -> None:
    pb = insights_pb2.InsightRow(ad_id="5", date_start="2026-03-01", date_stop="2026-03-01")
    setattr(pb, field, value)
    with pytest.raises(ProtoConversionError, match=message):
        row_from_proto(pb)


@pytest.mark.parametrize("spend", ["1e999999", "99999999999999999999", "0.0000001"])
def test_a_spend_outside_the_stored_range_is_a_decode_error_not_an_overflow(spend):
    """Finding: fatigue_engine answered UNKNOWN (decimal.Overflow while summing) for spend 1e999999."""
    with pytest.raises(ProtoConversionError, match="spend"):
        row_from_proto(insights_pb2.InsightRow(account_id="1", ad_id="2", date_start="2026-01-01",
                                               date_stop="2026-01-01", spend=spend))

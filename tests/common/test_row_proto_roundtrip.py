"""InsightRow <-> proto round trip is lossless; unknown stays unset."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.common.insight_row import RANKINGS, InsightRow
from services.common.row_proto import row_from_proto, row_to_proto

counts = st.none() | st.integers(min_value=0, max_value=2**62)
decimals = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


@given(
    impressions=counts, reach=counts, clicks=counts, inline=counts, reach_cum=counts,
    spend=st.none() | decimals,
    actions=st.none() | st.dictionaries(st.sampled_from(["lead", "link_click", "purchase"]), decimals),
    ranking=st.none() | st.sampled_from(RANKINGS),
)
def test_round_trip(impressions, reach, clicks, inline, reach_cum, spend, actions, ranking) -> None:
    row = InsightRow(account_id="1", ad_id="2", adset_id="3", campaign_id="4", ad_name="Ad 1",
                     date_start=date(2026, 1, 2), date_stop=date(2026, 1, 2), impressions=impressions, reach=reach,
                     clicks=clicks, inline_link_clicks=inline, spend=spend, actions=actions,
                     quality_ranking=ranking, reach_cum=reach_cum,
                     fetched_at=datetime(2026, 1, 3, 4, 5, 6, 789000, tzinfo=timezone.utc))
    msg = row_to_proto(row)
    back = row_from_proto(msg)
    assert back == row and back.fetched_at == row.fetched_at
    assert msg.HasField("reach") == (reach is not None)
    assert msg.actions_present == (actions is not None)


def test_spend_never_in_exponent_notation() -> None:
    row = InsightRow(account_id="1", ad_id="2", date_start=date(2026, 1, 2), date_stop=date(2026, 1, 2),
                     spend=Decimal("0E-8"), actions={"lead": Decimal("1E+2")})
    msg = row_to_proto(row)
    assert msg.spend == "0.00000000" and msg.actions["lead"] == "100"

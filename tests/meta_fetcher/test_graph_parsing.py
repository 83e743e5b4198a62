"""Parsing Graph pages: strings to int/Decimal, missing -> None, garbage rejects the whole page."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.meta_fetcher.graph_parsing import PageFormatError, parse_insights_page, parse_row

ACC = "1001"


def wire_row(**over) -> dict:
    row = {"account_id": ACC, "ad_id": "11", "adset_id": "22", "campaign_id": "33", "ad_name": "Ad",
           "impressions": "10441", "reach": "9917", "clicks": "256", "inline_link_clicks": "256",
           "spend": "158.72", "actions": [{"action_type": "link_click", "value": "256"},
                                          {"action_type": "lead", "value": "20"}],
           "quality_ranking": "BELOW_AVERAGE_35", "date_start": "2026-02-28", "date_stop": "2026-02-28"}
    row.update(over)
    return {k: v for k, v in row.items() if v is not None}


def test_strings_become_int_and_decimal() -> None:
    row = parse_row(wire_row(), account_id=ACC)
    assert row.impressions == 10441 and isinstance(row.impressions, int)
    assert row.spend == Decimal("158.72") and isinstance(row.spend, Decimal)
    assert row.actions == {"link_click": Decimal(256), "lead": Decimal(20)}
    assert row.date_start == row.date_stop == date(2026, 2, 28)
    assert row.quality_ranking == "BELOW_AVERAGE_35" and row.engagement_rate_ranking is None


def test_missing_keys_are_unknown_not_zero() -> None:
    row = parse_row(wire_row(reach=None, spend=None, actions=None, clicks=None), account_id=ACC)
    assert row.reach is None and row.spend is None and row.clicks is None
    assert row.actions is None and row.conversions("lead") is None
    present = parse_row(wire_row(actions=[{"action_type": "link_click", "value": "3"}]), account_id=ACC)
    assert present.conversions("lead") == 0  # present actions without the type -> 0 (DATA_PITFALLS 8)


@pytest.mark.parametrize(
    "override, words",
    [
        ({"impressions": "abc"}, "impressions='abc'"),
        ({"impressions": "-5"}, "impressions"),
        ({"impressions": "1.5"}, "impressions"),
        ({"impressions": 3.0}, "impressions"),
        ({"spend": "NaN"}, "spend"),
        ({"spend": "1e5"}, "spend"),
        ({"spend": ""}, "spend"),
        ({"ad_id": None}, "ad_id is missing"),
        ({"ad_id": "act_11"}, "ad_id"),
        ({"account_id": "999"}, "account_id"),
        ({"date_stop": "2026-03-01"}, "not a daily"),
        ({"date_start": "28/02/2026", "date_stop": "28/02/2026"}, "date_start"),
        ({"quality_ranking": "GREAT"}, "quality_ranking"),
        ({"actions": {"lead": "1"}}, "actions"),
        ({"actions": [{"action_type": "lead", "value": "x"}]}, "actions[lead]"),
        ({"actions": [{"action_type": "lead", "value": "1"}, {"action_type": "lead", "value": "2"}]}, "twice"),
    ],
)
def test_garbage_is_rejected_with_the_row_and_field_named(override, words) -> None:
    body = {"data": [wire_row(), wire_row(ad_id="12", **{k: v for k, v in override.items() if k != "ad_id"})
                     if "ad_id" not in override else wire_row(**override)]}
    with pytest.raises(PageFormatError) as err:
        parse_insights_page(body, account_id=ACC, page=3)
    assert "page 3, row 1" in str(err.value) and words in str(err.value)


def test_page_shape_and_range_are_checked() -> None:
    with pytest.raises(PageFormatError, match="no 'data' list"):
        parse_insights_page({"paging": {}}, account_id=ACC)
    with pytest.raises(PageFormatError, match="outside the range"):
        parse_insights_page({"data": [wire_row()]}, account_id=ACC, since=date(2026, 3, 1), until=date(2026, 3, 2))
    assert parse_insights_page({"data": []}, account_id=ACC) == []


@given(st.integers(min_value=0, max_value=10**15), st.decimals(min_value=0, max_value=10**9, places=2,
                                                                 allow_nan=False, allow_infinity=False))
def test_any_valid_number_string_parses_exactly(count: int, spend: Decimal) -> None:
    row = parse_row(wire_row(impressions=str(count), spend=format(spend, "f")), account_id=ACC)
    assert row.impressions == count and row.spend == spend

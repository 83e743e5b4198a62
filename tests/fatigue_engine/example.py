"""Builders for test series: the spec's worked example and small synthetic ads.

Not a test module: imported by the tests.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Sequence

from services.common.insight_row import InsightRow

ACCOUNT = "1001"
AD = "120000000000001"
DAY0 = date(2026, 1, 1)

# FATIGUE_SPEC.md "Worked example": prospecting, every day 10,000 impressions.
IMPRESSIONS = 10_000
CLICKS = (200, 190, 210, 185, 175, 165, 155, 145, 140, 135)
SPEND = (100, 100, 100, 105, 108, 110, 115, 118, 120, 122)
CONVERSIONS = (10, 10, 10, 9, 9, 8, 8, 8, 8, 8)
REACH_CUM = (7000, 13000, 18000, 21800, 24600, 26700, 28400, 29800, 31000, 32000)
RANK_BASELINE = ("AVERAGE", "ABOVE_AVERAGE", "AVERAGE")       # days 1-3
RANK_LAST = ("AVERAGE", "AVERAGE", "BELOW_AVERAGE_35")         # day 10


def _div(value: int, divisor: int) -> int:
    return round(Decimal(value) / divisor)


def worked_example(divisor: int = 1, recent_clicks: Sequence[int] | None = None,
                   rankings: bool = True, ad_id: str = AD) -> list[InsightRow]:
    """The spec's 10 example days as InsightRows.

    ``divisor`` divides every count (impressions, link clicks, conversions,
    reach_cum; counts rounded half-even to integers) and spend; the spec's
    edge cases use 100 and 10. ``recent_clicks`` replaces the link clicks of
    days 8-10. ``rankings=False`` makes every ranking UNKNOWN. Days without
    a ranking in the spec (4-9; 1-3 and 10 are given) are UNKNOWN.
    """
    rows = []
    for i in range(10):
        if rankings and i < 3:
            q, e, c = RANK_BASELINE
        elif rankings and i == 9:
            q, e, c = RANK_LAST
        else:
            q = e = c = "UNKNOWN"
        clicks = _div(CLICKS[i], divisor)
        if recent_clicks is not None and i >= 7:
            clicks = recent_clicks[i - 7]
        day = DAY0 + timedelta(days=i)
        rows.append(InsightRow(
            account_id=ACCOUNT, ad_id=ad_id, date_start=day, date_stop=day, ad_name="Example ad",
            adset_name="Example ad set", campaign_name="Example campaign",
            impressions=_div(IMPRESSIONS, divisor), reach=None, clicks=clicks * 2, inline_link_clicks=clicks,
            spend=Decimal(SPEND[i]) / divisor, actions={"lead": Decimal(CONVERSIONS[i]) / divisor, "link_click": Decimal(clicks)},
            quality_ranking=q, engagement_rate_ranking=e, conversion_rate_ranking=c,
            reach_cum=_div(REACH_CUM[i], divisor),
        ))
    return rows


def make_rows(impressions: Sequence[int], clicks: Sequence[int | None] | None = None,
              spend: Sequence[Decimal | float | None] | None = None,
              leads: Sequence[float | None] | None = None,
              reach_cum: Sequence[int | None] | None = None,
              rankings: Sequence[tuple[str, str, str] | None] | None = None,
              start: date = DAY0, ad_id: str = AD, gap_after: dict[int, int] | None = None) -> list[InsightRow]:
    """A synthetic ad: one row per entry of ``impressions`` on consecutive dates.

    Defaults: clicks 2 % of impressions, spend 10 per 1,000 impressions,
    leads absent-free (1 per 1,000 impressions, ``actions`` present), no
    reach_cum, rankings UNKNOWN. ``leads[i] is None`` -> no ``actions`` that
    day. ``gap_after={i: n}`` leaves n dates without a row after row i.
    """
    rows = []
    day = start
    for i, n in enumerate(impressions):
        k = clicks[i] if clicks is not None else round(n * 0.02)
        s = spend[i] if spend is not None else Decimal(n) / 100
        lead = leads[i] if leads is not None else n / 1000
        actions = None if lead is None else {"lead": Decimal(str(lead))}
        if actions is not None and k:
            actions["link_click"] = Decimal(k)
        q = e = c = "UNKNOWN"
        if rankings is not None and rankings[i] is not None:
            q, e, c = rankings[i]  # type: ignore[misc]
        rows.append(InsightRow(
            account_id=ACCOUNT, ad_id=ad_id, date_start=day, date_stop=day, impressions=n,
            inline_link_clicks=k, clicks=k, spend=None if s is None else Decimal(str(s)), actions=actions,
            quality_ranking=q, engagement_rate_ranking=e, conversion_rate_ranking=c,
            reach_cum=reach_cum[i] if reach_cum is not None else None,
        ))
        day += timedelta(days=1 + (gap_after or {}).get(i, 0))
    return rows

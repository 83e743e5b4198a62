"""Reach over a range of days in the sandbox: a saturation model held inside what daily reach allows.

Meta's reach is deduplicated over the period asked for and cannot be summed
across days (META_GRAPH_API.md §1, DATA_PITFALLS.md 1); the sandbox only has
daily rows, so a range's reach is modelled. For one ad over a range with
daily rows d:

    I = Σ impressions_d,  lo = max reach_d,  hi = Σ reach_d
    reach(range) = clamp(round(A · (1 − e^(−I / A))), lo, hi)

- ``A`` is the ad's audience size (people who can be reached). With ``x`` =
  average impressions per person of the audience, ``1 − e^(−x)`` is the share
  of the audience reached at least once when impressions fall at random
  (Poisson exposure), the usual reach-curve shape.
- The clamp keeps the answer possible: a range never reaches fewer people
  than its best single day, nor more than the days' reach added up (the case
  of no overlap at all). A one-day range is therefore that day's reach.
- ``reach(since .. t)`` never decreases as ``t`` grows (the model and both
  bounds are non-decreasing), and the same rows always give the same answer.

Audience size per ad (deterministic): the synthetic account's generator
draws it (``synthetic.py``, 20k..120k people) and records it on the account;
for accounts from CSV exports it is derived from the data as
``A = max(max reach_d, ceil(Σ reach_d / 2))`` over all of the ad's rows: an
ad's lifetime reach comes out near half its summed daily reach, so lifetime
frequency lands around twice the typical daily frequency (2-4, the
prospecting band of FATIGUE_SPEC.md) [modelling choice, not a Meta fact].
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Iterable, Sequence

from services.common.insight_row import InsightRow


def audience_from_rows(rows: Iterable[InsightRow]) -> float:
    """``max(max reach_d, ceil(Σ reach_d / 2))`` over the rows with a reach (at least 1)."""
    reaches = [r.reach for r in rows if r.reach is not None]
    if not reaches:
        return 1.0
    return float(max(max(reaches), math.ceil(sum(reaches) / 2), 1))


def range_reach(impressions: int, daily_reaches: Sequence[int], audience: float) -> int:
    """The module's formula; ``daily_reaches`` non-empty, ``audience`` > 0."""
    lo, hi = max(daily_reaches), sum(daily_reaches)
    modelled = round(-audience * math.expm1(-impressions / audience)) if impressions > 0 else 0
    return min(max(modelled, lo), hi)


def _sum_ints(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def aggregate_range(rows: Sequence[InsightRow], since, until, audience: float) -> InsightRow:
    """One ad's rows of a range as one range row (``date_start`` = ``since``, ``date_stop`` = ``until``).

    Counts and spend are summed (``None`` when no row has them), ``actions``
    summed per type (``None`` when no row has any), ``reach`` from
    ``range_reach`` over the rows that have one, rankings and names from the
    last day. ``rows``: the ad's daily rows inside the range, date order, non-empty.
    """
    last = rows[-1]
    reaches = [r.reach for r in rows if r.reach is not None]
    impressions = _sum_ints(r.impressions for r in rows)
    spends = [r.spend for r in rows if r.spend is not None]
    actions: dict[str, Decimal] | None = None
    for r in rows:
        if r.actions is not None:
            actions = actions if actions is not None else {}
            for k, v in r.actions.items():
                actions[k] = actions.get(k, Decimal(0)) + v
    return InsightRow(
        account_id=last.account_id, ad_id=last.ad_id, date_start=since, date_stop=until,
        ad_name=last.ad_name, adset_id=last.adset_id, adset_name=last.adset_name,
        campaign_id=last.campaign_id, campaign_name=last.campaign_name,
        impressions=impressions,
        reach=range_reach(impressions or 0, reaches, audience) if reaches else None,
        clicks=_sum_ints(r.clicks for r in rows),
        inline_link_clicks=_sum_ints(r.inline_link_clicks for r in rows),
        spend=sum(spends, Decimal(0)) if spends else None,
        actions=actions,
        quality_ranking=last.quality_ranking,
        engagement_rate_ranking=last.engagement_rate_ranking,
        conversion_rate_ranking=last.conversion_rate_ranking,
    )

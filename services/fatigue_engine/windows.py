"""Delivery days and the baseline / recent windows (FATIGUE_SPEC.md "Windows").

A *delivery day* has impressions > 0. Days with no row, and rows with
impressions 0, are zero days: they are not delivery days and take no part in
any window, sum or count (spec "Inputs per ad"; DATA_PITFALLS.md 6). A row
whose ``impressions`` is unknown (``None``) cannot be a delivery day either:
it is counted in ``DeliveryDays.unknown_impression_rows`` and otherwise
ignored, because nothing on it can be pooled.

Windows are measured in delivery days, never calendar days, so a pause (a run
of zero days) never shortens or splits a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from itertools import accumulate
from typing import Sequence

from services.common.insight_row import InsightRow
from services.fatigue_engine.config import FatigueConfig


ZERO = Decimal(0)


class InvalidSeries(ValueError):
    """The rows given as one ad's series are not one ad's daily rows."""


@dataclass(frozen=True, slots=True)
class DeliveryDays:
    """One ad's delivery days in date order, as parallel columns.

    Every list has one entry per delivery day. ``clicks`` are link clicks
    (``inline_link_clicks``); ``spend`` is in account currency;
    ``conversions`` are of the configured action type, ``None`` where the
    row had no ``actions`` (unknown); ``rankings`` are the quality,
    engagement-rate and conversion-rate rankings (``config.RANKING_FIELDS``); ``cum_impressions[i]`` is
    Σ impressions of delivery days 0..i.
    """

    ad_id: str
    dates: list[date]
    impressions: list[int]
    clicks: list[int | None]
    spend: list[Decimal | None]
    conversions: list[Decimal | None]
    rankings: tuple[list[str | None], list[str | None], list[str | None]]
    reach_cum: list[int | None]
    cum_impressions: list[int]
    zero_rows: int = 0
    unknown_impression_rows: int = 0
    actions_seen: bool = False


    def __len__(self) -> int:
        return len(self.dates)


@dataclass(frozen=True, slots=True)
class Window:
    """Delivery days ``start .. stop-1`` (indices into ``DeliveryDays``)."""

    start: int
    stop: int
    since: date
    until: date
    impressions: int

    @property
    def delivery_days(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class Windows:
    """Baseline B and recent R, or why they could not both be formed."""

    baseline: Window | None
    recent: Window | None
    ramp_up_days_skipped: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.baseline is not None and self.recent is not None and not self.reason


def delivery_days(rows: Sequence[InsightRow], conversion_action_type: str) -> DeliveryDays:
    """Validate one ad's rows and keep its delivery days, sorted by date.

    Shape: ``rows`` are daily InsightRows of a single ``ad_id`` in any order,
    at most one per ``date_start``; zero days may be present or absent.

    Raises ``InvalidSeries`` when the rows belong to more than one ad, when a
    date occurs twice, when a row is not a daily row (``date_stop !=
    date_start``), or when a count is negative.
    """
    if not rows:
        return DeliveryDays("", [], [], [], [], [], ([], [], []), [], [])
    ad_id = rows[0].ad_id
    for row in rows:
        if row.ad_id != ad_id:
            raise InvalidSeries(f"row dated {row.date_start} belongs to ad {row.ad_id!r}, not to ad {ad_id!r}")
    ordered = rows if _is_sorted(rows) else sorted(rows, key=_date_key)
    for prev, row in zip(ordered, ordered[1:]):
        if prev.date_start == row.date_start:
            raise InvalidSeries(f"ad {ad_id!r}: date {row.date_start} occurs twice")
    for row in ordered:
        if row.date_stop != row.date_start:
            raise InvalidSeries(f"ad {ad_id!r}: row {row.date_start}..{row.date_stop} is not a daily row")
    deliv = [r for r in ordered if r.impressions]  # drops impressions 0 and None
    unknown = sum(1 for r in ordered if r.impressions is None)
    imps = [r.impressions for r in deliv]
    clicks = [r.inline_link_clicks for r in deliv]
    if (imps and min(imps) < 0) or any(c is not None and c < 0 for c in clicks):  # type: ignore[operator]
        bad = next(r for r in deliv if r.impressions < 0 or (r.inline_link_clicks or 0) < 0)  # type: ignore[operator]
        raise InvalidSeries(f"ad {ad_id!r}: negative count on {bad.date_start}")
    zero = ZERO
    conv = [None if (a := r.actions) is None else a.get(conversion_action_type, zero) for r in deliv]
    return DeliveryDays(
        ad_id,
        dates=[r.date_start for r in deliv],
        impressions=imps,  # type: ignore[arg-type]
        clicks=clicks,
        spend=[r.spend for r in deliv],
        conversions=conv,
        rankings=([r.quality_ranking for r in deliv], [r.engagement_rate_ranking for r in deliv],
                  [r.conversion_rate_ranking for r in deliv]),
        reach_cum=[r.reach_cum for r in deliv],
        cum_impressions=list(accumulate(imps)),  # type: ignore[arg-type]
        zero_rows=len(ordered) - len(deliv) - unknown,
        unknown_impression_rows=unknown,
        actions_seen=any(r.actions is not None for r in deliv),
    )


def _date_key(row: InsightRow) -> date:
    return row.date_start


def _is_sorted(rows: Sequence[InsightRow]) -> bool:
    return all(a.date_start < b.date_start for a, b in zip(rows, rows[1:]))


def ramp_up_start(impressions: Sequence[int], fraction: float) -> int:
    """Index of the first delivery day with impressions >= ``fraction`` x median.

    Spec "Windows", ramp-up: the median is over delivery-day impressions
    (for an even count, the mean of the two middle values). The comparison
    is exact (integers and the decimal value of ``fraction``), so scaling
    every count by the same factor never moves the start. Returns 0 for an
    empty sequence.
    """
    if not impressions:
        return 0
    ordered = sorted(impressions)
    m = len(ordered)
    twice_median = ordered[m // 2] * 2 if m % 2 else ordered[m // 2 - 1] + ordered[m // 2]
    f = Fraction(str(fraction))
    # n >= f * median  <=>  2 * n * den >= num * (2 * median)
    lhs_scale, rhs = 2 * f.denominator, f.numerator * twice_median
    for i, n in enumerate(impressions):
        if n * lhs_scale >= rhs:
            return i
    return 0  # unreachable for fraction <= 1: the maximum is >= the median


def _grow(impressions: Sequence[int], start: int, step: int, config: FatigueConfig) -> tuple[int, int] | None:
    """Take ``window_min_days`` delivery days from ``start`` in direction ``step``,
    then one more at a time while impressions < ``window_min_impressions`` and
    days < ``window_max_days`` and days remain. Returns (first, last) inclusive."""
    n = len(impressions)
    take = config.window_min_days
    if step > 0:
        if start + take > n:
            return None
        last = start + take - 1
        total = sum(impressions[start:last + 1])
        while total < config.window_min_impressions and last - start + 1 < config.window_max_days and last + 1 < n:
            last += 1
            total += impressions[last]
        return start, last
    if start - take + 1 < 0:
        return None
    first = start - take + 1
    total = sum(impressions[first:start + 1])
    while total < config.window_min_impressions and start - first + 1 < config.window_max_days and first > 0:
        first -= 1
        total += impressions[first]
    return first, start


def find_windows(days: DeliveryDays, config: FatigueConfig) -> Windows:
    """Form baseline B and recent R (spec "Windows").

    B: from the ramp-up start, ``window_min_days`` (3) delivery days, extended
    one delivery day at a time until impressions >= 3,000 or 14 days. R: the
    last 3 delivery days, extended backwards the same way. Each window is
    grown on its own; if R would share a day with B (or either cannot get 3
    days), the windows are not formed and ``reason`` says why — the spec's
    ``insufficient_data``. B is fixed for the ad's life (it depends only on
    the first days and the median), so a pause never resets it.
    """
    imps = days.impressions
    skip = ramp_up_start(imps, config.ramp_up_fraction)
    b = _grow(imps, skip, +1, config)
    r = _grow(imps, len(imps) - 1, -1, config)
    if b is None or r is None:
        reason = (f"only {len(imps) - skip} delivery days after ramp-up; baseline and recent windows "
                  f"need {config.window_min_days} each")
        return Windows(None, None, skip, reason)
    bw = _window(days, b)
    rw = _window(days, r)
    if b[1] >= r[0]:
        reason = (f"baseline ({bw.delivery_days} delivery days, {bw.impressions} impressions) and recent "
                  f"({rw.delivery_days} delivery days, {rw.impressions} impressions) windows overlap: "
                  f"they cannot reach {config.window_min_impressions} impressions each without overlapping")
        return Windows(bw, rw, skip, reason)
    return Windows(bw, rw, skip)


def _window(days: DeliveryDays, first_last: tuple[int, int]) -> Window:
    first, last = first_last
    before = days.cum_impressions[first - 1] if first > 0 else 0
    return Window(first, last + 1, days.dates[first], days.dates[last], days.cum_impressions[last] - before)

"""The differential planner (DESIGN.md R3): which ranges to ask Meta for.

Pure functions: given the days of a request and what L2 knows about each,
return the fewest contiguous ranges (each at most ``max_range_days`` long)
that cover exactly the days that are missing or due — never a fresh day,
never leaving a due day out.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo

from services.common.freshness import FreshnessPolicy
from services.common.dates import DateRange

#: Longest range in one upstream call; keeps a sync Graph call well below
#: Meta's "too much data" limits (META_GRAPH_API.md §2).
DEFAULT_MAX_RANGE_DAYS = 90


def due_days(
    requested: DateRange,
    fetched_at: Mapping[date, datetime],
    policy: FreshnessPolicy,
    now: datetime,
    tz: ZoneInfo,
) -> list[date]:
    """Days of ``requested`` that are missing from ``fetched_at`` or due, ascending."""
    return [d for d in requested.days() if policy.is_due(d, fetched_at.get(d), now, tz)]


def merge_ranges(days: Iterable[date], max_range_days: int = DEFAULT_MAX_RANGE_DAYS) -> list[DateRange]:
    """Merge days into the fewest contiguous ranges of at most ``max_range_days``.

    Raises ValueError when ``max_range_days`` < 1.
    """
    if max_range_days < 1:
        raise ValueError("max_range_days must be >= 1")
    ranges: list[DateRange] = []
    start = prev = None
    for day in sorted(set(days)):
        if start is not None and day == prev + timedelta(days=1) and (day - start).days < max_range_days:
            prev = day
            continue
        if start is not None:
            ranges.append(DateRange(start, prev))
        start = prev = day
    if start is not None:
        ranges.append(DateRange(start, prev))
    return ranges


def plan(
    requested: DateRange,
    fetched_at: Mapping[date, datetime],
    policy: FreshnessPolicy,
    now: datetime,
    tz: ZoneInfo,
    max_range_days: int = DEFAULT_MAX_RANGE_DAYS,
) -> list[DateRange]:
    """The ranges to fetch for ``requested``: ``merge_ranges(due_days(...))``."""
    return merge_ranges(due_days(requested, fetched_at, policy, now, tz), max_range_days)

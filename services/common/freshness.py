"""Freshness of an account-day: its class and whether it is due for a refresh.

Classes (issue 4, DESIGN.md R1):

- PARTIAL: today in the account's time zone — still accumulating;
- PROVISIONAL: inside the restatement window (the last 28 days by default:
  Meta credits conversions back up to 28 days after a click, and the public
  connectors re-read 28 days — META_GRAPH_API.md §4);
- FINAL: older than the window — it never changes again.

A day is *due* when it was never fetched, when its class's refresh interval
has passed since ``fetched_at``, or — for a FINAL day — when its last fetch
happened before it became final (one last read settles it; after that a
final day is never refetched).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from zoneinfo import ZoneInfo


class FreshnessClass(IntEnum):
    """Values match ``adfatigue.v1.FreshnessClass``."""

    FINAL = 1
    PROVISIONAL = 2
    PARTIAL = 3


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    """Refresh intervals per class, in seconds (settings; defaults below).

    ``restatement_days``: days before today that can still change (28, META_GRAPH_API.md §4).
    ``partial_interval_s``: today's data settles within hours; 15 min keeps a live page current.
    ``provisional_interval_s``: restated conversions trickle in over days; 6 h keeps within budget.
    """

    restatement_days: int = 28
    partial_interval_s: float = 15 * 60
    provisional_interval_s: float = 6 * 3600

    def classify(self, day: date, today: date) -> FreshnessClass:
        if day >= today:
            return FreshnessClass.PARTIAL
        if day >= today - timedelta(days=self.restatement_days):
            return FreshnessClass.PROVISIONAL
        return FreshnessClass.FINAL

    def finalised_at(self, day: date, tz: ZoneInfo) -> datetime:
        """The moment ``day`` leaves the restatement window (account-local midnight)."""
        return datetime.combine(day + timedelta(days=self.restatement_days + 1), time(0), tzinfo=tz)

    def due_at(self, day: date, fetched_at: datetime, now: datetime, tz: ZoneInfo) -> datetime | None:
        """When a day fetched at ``fetched_at`` becomes due (``None``: never — a settled final day)."""
        today = now.astimezone(tz).date()
        finalised = self.finalised_at(day, tz)
        cls = self.classify(day, today)
        if cls is FreshnessClass.FINAL:
            return None if fetched_at >= finalised else fetched_at
        interval = self.partial_interval_s if cls is FreshnessClass.PARTIAL else self.provisional_interval_s
        return min(fetched_at + timedelta(seconds=interval), finalised)

    def is_due(self, day: date, fetched_at: datetime | None, now: datetime, tz: ZoneInfo,
               today: date | None = None) -> bool:
        """Whether ``day`` must be (re)fetched at ``now`` (an aware datetime); ``today``: ``now``'s date in
        ``tz`` when the caller already has it (many days, one ``now``)."""
        if fetched_at is None:
            return True
        today = today or now.astimezone(tz).date()
        cls = self.classify(day, today)
        if cls is FreshnessClass.FINAL:
            return fetched_at < self.finalised_at(day, tz)
        interval = self.partial_interval_s if cls is FreshnessClass.PARTIAL else self.provisional_interval_s
        return (now - fetched_at).total_seconds() >= interval

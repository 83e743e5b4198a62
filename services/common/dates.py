"""Date ranges in the ad account's time zone (DATA_PITFALLS.md 9, DESIGN.md R12).

Dates are calendar dates of the ad account's time zone, never shifted to UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.input_echo import quoted

#: Meta keeps 37 months of insights (META_GRAPH_API.md §1, `date_preset=maximum`).
RETENTION_MONTHS = 37
#: Longest range one request may ask for: all of Meta's 37-month retention (at most 1,131 days)
#: and no more; responses are paged below 16 MB (R12).
MAX_RANGE_DAYS = 1131


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidDateRange(ValueError):
    """A date or range a person must fix; the message says how."""


@dataclass(frozen=True, slots=True, order=True)
class DateRange:
    """An inclusive range of account time-zone dates."""

    since: date
    until: date

    def days(self) -> list[date]:
        n = (self.until - self.since).days + 1
        return [self.since + timedelta(days=i) for i in range(n)]

    def __len__(self) -> int:
        return (self.until - self.since).days + 1

    def __str__(self) -> str:
        return f"{self.since.isoformat()}..{self.until.isoformat()}"


def parse_date(value: str, name: str) -> date:
    """Parse exactly ``YYYY-MM-DD`` (ASCII digits; no ISO week or ordinal forms such as ``2026-W01-1``);
    raises InvalidDateRange naming the field."""
    try:
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidDateRange(f"{name}={quoted(value)} is not a date: use YYYY-MM-DD, e.g. 2026-04-29") from None


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (an IANA name such as ``Asia/Kuala_Lumpur``); UTC when empty or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def account_today(tz_name: str | None, now: datetime | None = None) -> date:
    """Today's date in the account's time zone; with no zone known yet, UTC today + 1 day (the
    latest "today" of any zone, so nothing valid is refused)."""
    now = now or datetime.now(timezone.utc)
    if tz_name:
        return now.astimezone(ZoneInfo(tz_name)).date()
    return now.astimezone(timezone.utc).date() + timedelta(days=1)


def oldest_fetchable_day(tz_name: str | None, now: datetime | None = None) -> date:
    """The retention floor (``retention_floor``) of an account: from its today when its zone is known; with no
    zone known yet, from the earliest today of any zone (UTC-12), so a day some zone can still fetch is never
    refused (``account_today``'s latest-today fallback would move the floor a day later)."""
    if tz_name:
        return retention_floor(account_today(tz_name, now))
    now = now or datetime.now(timezone.utc)
    return retention_floor((now.astimezone(timezone.utc) - timedelta(hours=12)).date())


def retention_floor(today: date) -> date:
    """The oldest date Meta still serves: 37 months before ``today``, plus one day of margin."""
    month = today.month - 1 - RETENTION_MONTHS
    year = today.year + month // 12
    month = month % 12 + 1
    day = min(today.day, calendar.monthrange(year, month)[1])
    return date(year, month, day) + timedelta(days=1)


def parse_range(since: str, until: str, today: date | None = None) -> DateRange:
    """Validate an inclusive range of ``YYYY-MM-DD`` strings.

    Raises InvalidDateRange when a date does not parse, ``until < since``, the
    range is longer than MAX_RANGE_DAYS, or (given ``today`` in the account's
    time zone) it starts before Meta's 37-month retention or ends after today.
    """
    start, end = parse_date(since, "since"), parse_date(until, "until")
    if end < start:
        raise InvalidDateRange(f"until {until} is before since {since}: swap them or fix the range")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidDateRange(f"range {since}..{until} is longer than {MAX_RANGE_DAYS} days: ask for a shorter range")
    if today is not None:
        floor = retention_floor(today)
        if start < floor:
            raise InvalidDateRange(
                f"since {since} is older than Meta keeps insights ({RETENTION_MONTHS} months): the oldest date is {floor}"
            )
        if end > today:
            raise InvalidDateRange(f"until {until} is after today ({today} in the account's time zone)")
    return DateRange(start, end)

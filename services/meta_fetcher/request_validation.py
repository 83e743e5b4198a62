"""Checks on a FetchInsights request, made before any call to Meta.

- account id: ``act_<digits>`` or ``<digits>`` (``normalise_account_id``);
- dates: ``YYYY-MM-DD``; ``until >= since``;
- retention: Meta keeps 37 months (META_GRAPH_API.md §4, DATA_PITFALLS.md 9). The
  floor is computed from "today" in the account's time zone when it is known,
  otherwise from the UTC date (an account's today is at most one day ahead of
  UTC), and one day of margin is added, so a range we accept is never one Meta
  rejects;
- fields: Graph names the InsightRow can carry;
- attribution: ``action_attribution_windows`` (``services.common.attribution``;
  none = Meta's default, 7d_click + 1d_view).

Every error is a ``RequestError`` whose message says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.common.input_echo import quoted
from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.attribution import DEFAULT_ATTRIBUTION, InvalidAttribution, canonical
from services.common.dates import InvalidDateRange, oldest_fetchable_day, parse_date
from services.meta_fetcher.graph_client import DEFAULT_FIELDS, SUPPORTED_FIELDS


class RequestError(ValueError):
    """The caller must fix the request (gRPC INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class FetchRequest:
    """A validated request: numeric account id, inclusive dates, Graph field names."""

    account_id: str  # numeric, no act_
    since: date
    until: date
    fields: tuple[str, ...]
    attribution: tuple[str, ...] = DEFAULT_ATTRIBUTION  # canonical action_attribution_windows


def _parse_date(value: str, name: str) -> date:
    try:
        return parse_date(value, name)
    except InvalidDateRange as exc:
        raise RequestError(str(exc)) from None


def validate_fetch_request(account_id: str, since: str, until: str, fields: list[str] | tuple[str, ...],
                           *, timezone_name: str | None = None, now: datetime | None = None,
                           attribution: list[str] | tuple[str, ...] = ()) -> FetchRequest:
    """Validated request, or RequestError with an actionable message."""
    try:
        account = normalise_account_id(account_id)
    except InvalidAccountId as exc:
        raise RequestError(str(exc)) from None
    start, end = _parse_date(since, "since"), _parse_date(until, "until")
    if end < start:
        raise RequestError(f"until {until} is before since {since}: swap them or fix the range")
    floor = oldest_fetchable_day(timezone_name, now)
    if start < floor:
        raise RequestError(
            f"since {since} is older than Meta's 37-month retention: the oldest date that can be fetched for "
            f"act_{account} today is {floor.isoformat()} (account time zone, one day of margin); ask from then on")
    wanted = [f.strip() for f in fields if f.strip()]
    unknown = [f for f in wanted if f not in SUPPORTED_FIELDS and f not in ("date_start", "date_stop")]
    if unknown:
        raise RequestError(f"field(s) {quoted(', '.join(unknown))} not supported; use any of: "
                           f"{', '.join(SUPPORTED_FIELDS)} (or none for the fatigue set)")
    chosen = tuple(dict.fromkeys(f for f in wanted if f not in ("date_start", "date_stop"))) or DEFAULT_FIELDS
    try:
        windows = canonical(attribution) if attribution else DEFAULT_ATTRIBUTION
    except InvalidAttribution as exc:
        raise RequestError(f"action_attribution_windows: {exc}") from None
    return FetchRequest(account_id=account, since=start, until=end, fields=chosen, attribution=windows)

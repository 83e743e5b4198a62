"""Checks of what a request names: the account, the date range, Last-Event-ID. Each raises Problem(400/403)."""

from __future__ import annotations

from datetime import date

from services.bff.problems import Problem
from services.bff.users import User
from services.common.account_ids import InvalidAccountId, normalise_account_id

ACCOUNT_PATTERN = r"^(act_)?[0-9]{1,20}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: Meta keeps 37 months of insights; the gateway refuses older ranges (DESIGN.md)
MAX_RANGE_DAYS = 1131


def readable_account(user: User, act: str) -> str:
    """The numeric id of ``act`` if ``user`` may read it."""
    try:
        account = normalise_account_id(act)
    except InvalidAccountId as exc:
        raise Problem(400, f"{exc}", kind="invalid-account") from None
    if not user.may_read(account):
        raise Problem(403, f"{user.subject} may not read act_{account}: ask whoever manages access to add this "
                           "ad account to your sign-in", kind="account-not-permitted", account=f"act_{account}")
    return account


def date_range(since: str, until: str) -> tuple[str, str]:
    try:
        first = date.fromisoformat(since)
    except ValueError:
        raise Problem(400, f"since={since!r} is not a calendar date: use YYYY-MM-DD", kind="invalid-date") from None
    try:
        last = date.fromisoformat(until)
    except ValueError:
        raise Problem(400, f"until={until!r} is not a calendar date: use YYYY-MM-DD", kind="invalid-date") from None
    if last < first:
        raise Problem(400, f"until {until} is before since {since}: swap them", kind="invalid-date")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise Problem(400, f"{since}..{until} spans {(last - first).days + 1} days; Meta keeps at most "
                           f"{MAX_RANGE_DAYS} (37 months): ask for a shorter range", kind="invalid-date")
    return first.isoformat(), last.isoformat()


def last_event_id(header: str | None, query: str | None) -> int | None:
    value = header if header not in (None, "") else query
    if value in (None, ""):
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also accepts "³" (int() then raised: HTTP 500) and "٣" (taken as 3)
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise Problem(400, f"Last-Event-ID {value[:40]!r} is not a version number: reload the page to start afresh",
                      kind="invalid-last-event-id")
    return int(value)

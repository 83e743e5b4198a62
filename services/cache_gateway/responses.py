"""Building the gateway's protobuf responses from snapshots (no transport code)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from services.common.freshness import FreshnessPolicy
from services.cache_gateway.insights_service import ReadResult
from services.common.input_echo import quoted
from services.common.pb.adfatigue.v1 import insights_pb2
from services.common.row_proto import row_to_proto

DEFAULT_PAGE_SIZE = 5_000
MAX_PAGE_SIZE = 20_000

#: InsightRow fields a caller may select (R13 field selection).
SELECTABLE_FIELDS = frozenset(insights_pb2.InsightRow.DESCRIPTOR.fields_by_name) - {
    "account_id", "ad_id", "date_start", "date_stop", "actions_present"}


class InvalidRequest(ValueError):
    """Maps to INVALID_ARGUMENT."""


class StalePageToken(ValueError):
    """The data changed since the first page (maps to ABORTED: restart from the first page)."""


def check_fields(fields) -> tuple[str, ...]:
    unknown = sorted(set(fields) - SELECTABLE_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s) {quoted(', '.join(unknown))}; selectable: "
                             f"{', '.join(sorted(SELECTABLE_FIELDS))}")
    return tuple(sorted(set(fields)))


_PAGE_TOKEN = re.compile(r"([0-9]{1,19}):([1-9][0-9]{0,9})")


def page_bounds(page_size: int, page_token: str, version: int, total_rows: int | None = None) -> tuple[int, int]:
    """(offset, size) of the page; raises InvalidRequest or StalePageToken.

    A page token is fully validated: canonical URL-safe base64 of ``<version>:<offset>`` exactly as
    ``page_token`` writes it, offset > 0 and (given ``total_rows``) inside the answer; anything else
    (a negative or huge offset, padding tricks, other text) is INVALID_ARGUMENT.
    """
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidRequest(f"page_size {page_size} must be between 0 (default {DEFAULT_PAGE_SIZE}) and {MAX_PAGE_SIZE}")
    size = page_size or DEFAULT_PAGE_SIZE
    if not page_token:
        return 0, size
    not_ours = InvalidRequest("page_token is not one this gateway issued; omit it to start from the first page")
    try:
        text = base64.urlsafe_b64decode(page_token.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        raise not_ours from None
    match = _PAGE_TOKEN.fullmatch(text)
    if match is None or page_token != base64.urlsafe_b64encode(text.encode()).decode():
        raise not_ours
    token_version, offset = int(match.group(1)), int(match.group(2))
    if token_version == version and total_rows is not None and offset >= total_rows:
        raise not_ours
    if token_version != version:
        raise StalePageToken(f"the data changed (version {token_version} -> {version}) since the first page; "
                             "start again without page_token")
    return offset, size


def page_token(version: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{version}:{offset}".encode()).decode()


def freshness_message(result: ReadResult, policy: FreshnessPolicy, tz: ZoneInfo, now: datetime) -> insights_pb2.Freshness:
    today = now.astimezone(tz).date()
    msg = insights_pb2.Freshness(status=result.status, reason=result.reason,
                                 action_attribution_windows=list(result.attribution))
    oldest: datetime | None = None
    for day, fetched_at in sorted(result.snapshot.fetched_at.items()):
        d = msg.days.add(date=day.isoformat(), freshness_class=int(policy.classify(day, today)), due=day in result.due)
        d.fetched_at.FromDatetime(fetched_at.astimezone(timezone.utc))
        oldest = fetched_at if oldest is None or fetched_at < oldest else oldest
    if oldest is not None:
        msg.as_of.FromDatetime(oldest.astimezone(timezone.utc))
    return msg


def insights_rows(result: ReadResult, fields: tuple[str, ...], offset: int, size: int):
    chosen = fields or None
    rows = result.snapshot.rows[offset: offset + size]
    more = offset + size < len(result.snapshot.rows)
    return [row_to_proto(r, chosen) for r in rows], more

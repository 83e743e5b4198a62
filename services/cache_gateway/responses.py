"""Building the gateway's protobuf responses from snapshots (no transport code)."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from services.common.freshness import FreshnessPolicy
from services.cache_gateway.insights_service import ReadResult
from services.cache_gateway.account_replica import ROWS_FIELD, frame
from services.common.input_echo import quoted
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, insights_pb2
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
    """The selected fields, sorted and unique (``()`` = every field); raises InvalidRequest naming unknown ones."""
    if not fields:  # the usual request: no selection (and no set to build on the serving path)
        return ()
    unknown = sorted(set(fields) - SELECTABLE_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s) {quoted(', '.join(unknown))}; selectable: "
                             f"{', '.join(sorted(SELECTABLE_FIELDS))}")
    return tuple(sorted(set(fields)))


_PAGE_TOKEN = re.compile(r"([0-9]{1,19}):([1-9][0-9]{0,9}):([0-9a-f]{16})")


def page_binding(account: str, since, until, fields: tuple[str, ...]) -> str:
    """The part of a page token that ties it to its request (AIP-158: the other fields of a paged request
    must match the first one): 16 hex digits of SHA-256 over account, range and field selection."""
    text = f"{account}|{since}|{until}|{','.join(fields)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def page_bounds(page_size: int, page_token: str, version: int, total_rows: int | None = None,
                binding: str = "") -> tuple[int, int]:
    """(offset, size) of the page; raises InvalidRequest or StalePageToken.

    A page token is fully validated: canonical URL-safe base64 of ``<version>:<offset>:<binding>`` exactly
    as ``page_token`` writes it, offset > 0 and (given ``total_rows``) inside the answer, ``binding``
    (``page_binding``) that of this request — a token of another account, range or field selection is
    refused; anything else (a negative or huge offset, padding tricks, other text) is INVALID_ARGUMENT.
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
    if match.group(3) != binding:
        raise InvalidRequest("page_token belongs to another request (its account, since/until or fields differ): "
                             "send the first request's values with it, or omit it to start from the first page")
    if token_version == version and total_rows is not None and offset >= total_rows:
        raise not_ours
    if token_version != version:
        raise StalePageToken(f"the data changed (version {token_version} -> {version}) since the first page; "
                             "start again without page_token")
    return offset, size


def page_token(version: int, offset: int, binding: str) -> str:
    """The next_page_token of a page: ``<version>:<offset>:<binding>`` in URL-safe base64 (opaque to callers)."""
    return base64.urlsafe_b64encode(f"{version}:{offset}:{binding}".encode()).decode()


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


_FRESHNESS_DAYS = insights_pb2.Freshness.DESCRIPTOR.fields_by_name["days"].number
assert all(f.number < _FRESHNESS_DAYS for f in insights_pb2.Freshness.DESCRIPTOR.fields
           if f.name in ("status", "as_of", "reason"))
_RESPONSE_FRESHNESS = gw.GetInsightsResponse.DESCRIPTOR.fields_by_name["freshness"].number
_RESPONSE_TOKEN = gw.GetInsightsResponse.DESCRIPTOR.fields_by_name["next_page_token"].number
assert gw.GetInsightsResponse.DESCRIPTOR.fields_by_name["rows"].number == ROWS_FIELD
assert gw.GetFatigueResponse.DESCRIPTOR.fields_by_name["freshness"].number == _RESPONSE_FRESHNESS


def freshness_bytes(result: ReadResult, policy: FreshnessPolicy, tz: ZoneInfo, now: datetime) -> bytes:
    """``freshness_message(...)`` serialized deterministically; for an answer from a replica, joined from
    its memoised per-day bytes (fields in number order: those before ``days``, ``days``, those after)."""
    if result.replica is None:
        return freshness_message(result, policy, tz, now).SerializeToString(deterministic=True)
    today = now.astimezone(tz).date()
    head = insights_pb2.Freshness(status=result.status, reason=result.reason)
    fetched = result.snapshot.fetched_at
    if fetched:
        head.as_of.FromDatetime(min(fetched.values()).astimezone(timezone.utc))
    days = (frame(_FRESHNESS_DAYS, result.replica.day_freshness(day, at, int(policy.classify(day, today)),
                                                                 day in result.due))
            for day, at in sorted(fetched.items()))
    tail = insights_pb2.Freshness(action_attribution_windows=list(result.attribution))  # fields after ``days``
    return b"".join((head.SerializeToString(deterministic=True), *days, tail.SerializeToString(deterministic=True)))


def insights_response_bytes(account: str, result: ReadResult, fields: tuple[str, ...], offset: int, size: int,
                            freshness: bytes, binding: str = "") -> bytes:
    """One page of a GetInsightsResponse, serialized deterministically (``freshness``: ``freshness_bytes``;
    ``binding``: ``page_binding`` of the request, written into next_page_token).

    Rows of a replica (all fields) are joined from their serialized form: a
    repeated message field is the concatenation of its framed elements, so the
    bytes equal ``SerializeToString(deterministic=True)`` of the whole message
    (fields in number order: account_id, version, rows, freshness, next_page_token).
    """
    version = result.snapshot.version
    more = offset + size < len(result.snapshot.rows)
    token = page_token(version, offset + size, binding) if more else ""
    head = gw.GetInsightsResponse(account_id=account, version=version).SerializeToString(deterministic=True)
    if result.entries is None or fields:
        rows, _ = insights_rows(result, fields, offset, size)
        body = [r.SerializeToString(deterministic=True) for r in rows]
        framed = (frame(ROWS_FIELD, b) for b in body)
    else:
        framed = (e.as_rows_element() for e in result.entries[offset: offset + size])
    tail = frame(_RESPONSE_FRESHNESS, freshness) + (frame(_RESPONSE_TOKEN, token.encode()) if token else b"")
    return b"".join((head, *framed, tail))

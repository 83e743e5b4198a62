"""InsightRow dataclass <-> ``adfatigue.v1.InsightRow`` protobuf.

Counts stay integers, spend stays a decimal string (account currency),
unknown stays unset: the conversion is lossless both ways.
"""

from __future__ import annotations

from datetime import date, timezone
from decimal import Decimal, InvalidOperation
from typing import Iterable

from services.common.insight_row import RANKINGS, InsightRow
from services.common.number_ranges import decimal_problem
from services.common.pb.adfatigue.v1 import insights_pb2

_OPTIONAL_INTS = ("impressions", "reach", "clicks", "inline_link_clicks", "reach_cum")
_RANKINGS = ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")
_NAMES = ("ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name")
_RANKING_SET = frozenset(RANKINGS)


class RowDecodeError(ValueError):
    """A protobuf row that cannot be a valid InsightRow; the message names the field and the value."""


def row_to_proto(row: InsightRow, fields: Iterable[str] | None = None) -> insights_pb2.InsightRow:
    """Encode a row; ``fields`` limits the optional fields filled (identity fields always are)."""
    wanted = None if fields is None else set(fields)
    msg = insights_pb2.InsightRow(
        account_id=row.account_id,
        ad_id=row.ad_id,
        date_start=row.date_start.isoformat(),
        date_stop=row.date_stop.isoformat(),
    )

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    for name in _NAMES + _RANKINGS:
        value = getattr(row, name)
        if value and want(name):
            setattr(msg, name, value)
    for name in _OPTIONAL_INTS:
        value = getattr(row, name)
        if value is not None and want(name):
            setattr(msg, name, value)
    if row.spend is not None and want("spend"):
        msg.spend = format(row.spend, "f")  # plain decimal, never exponent notation
    if row.actions is not None and want("actions"):
        msg.actions_present = True
        for action_type, value in row.actions.items():
            msg.actions[action_type] = format(value, "f")
    msg.action_attribution_windows.extend(row.action_attribution_windows)
    if row.fetched_at is not None:
        at = row.fetched_at if row.fetched_at.tzinfo else row.fetched_at.replace(tzinfo=timezone.utc)
        msg.fetched_at.FromDatetime(at.astimezone(timezone.utc))
    return msg


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowDecodeError(f"{field} {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise RowDecodeError(f"{field} {text!r} must be a finite number >= 0")
    problem = decimal_problem(value)  # the stored range (number_ranges.py): 1e999999 would overflow the sums
    if problem:
        raise RowDecodeError(f"{field} {text[:40]!r} {problem}")
    return value


def _date(text: str, field: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise RowDecodeError(f"{field} {text!r} is not a YYYY-MM-DD date") from None


def _ranking(value: str, field: str) -> str | None:
    if not value:
        return None
    if value not in _RANKING_SET:
        raise RowDecodeError(f"{field} {value!r} is not one of {', '.join(RANKINGS)}")
    return value


def row_from_proto(msg: insights_pb2.InsightRow) -> InsightRow:
    """Decode a row.

    ``date_stop`` empty means the same as ``date_start``; empty rankings
    become ``None``. Raises RowDecodeError (naming the field and value) for
    an unparsable date, a negative count, a non-decimal or negative spend or
    action value, or an unknown ranking.
    """
    start = _date(msg.date_start, "date_start")
    stop = _date(msg.date_stop, "date_stop") if msg.date_stop else start
    counts = {}
    for name in _OPTIONAL_INTS:
        value = getattr(msg, name) if msg.HasField(name) else None
        if value is not None and value < 0:
            raise RowDecodeError(f"{name} {value} is negative")
        counts[name] = value
    return InsightRow(
        account_id=msg.account_id, ad_id=msg.ad_id, date_start=start, date_stop=stop,
        **{name: getattr(msg, name) for name in _NAMES},
        **counts,
        spend=_decimal(msg.spend, "spend") if msg.HasField("spend") else None,
        actions={k: _decimal(v, f"actions[{k!r}]") for k, v in msg.actions.items()} if msg.actions_present else None,
        **{name: _ranking(getattr(msg, name), name) for name in _RANKINGS},
        fetched_at=msg.fetched_at.ToDatetime(tzinfo=timezone.utc) if msg.HasField("fetched_at") else None,
        action_attribution_windows=tuple(msg.action_attribution_windows),
    )

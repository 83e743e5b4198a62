"""InsightRow dataclass <-> ``adfatigue.v1.InsightRow`` protobuf.

Counts stay integers, spend stays a decimal string (account currency),
unknown stays unset: the conversion is lossless both ways.
"""

from __future__ import annotations

from datetime import date, timezone
from decimal import Decimal, InvalidOperation
from typing import Iterable

from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import insights_pb2

_OPTIONAL_INTS = ("impressions", "reach", "clicks", "inline_link_clicks", "reach_cum")
_RANKINGS = ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")
_NAMES = ("ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name")


class RowDecodeError(ValueError):
    """A protobuf row that cannot be a valid InsightRow; the message names the field."""


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
        msg.spend = str(row.spend)
    if row.actions is not None and want("actions"):
        msg.actions_present = True
        for action_type, value in row.actions.items():
            msg.actions[action_type] = str(value)
    if row.fetched_at is not None:
        msg.fetched_at.FromDatetime(row.fetched_at.astimezone(timezone.utc))
    return msg


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowDecodeError(f"{field}={text!r} is not a decimal number") from None
    if not value.is_finite():
        raise RowDecodeError(f"{field}={text!r} is not finite")
    return value


def row_from_proto(msg: insights_pb2.InsightRow) -> InsightRow:
    """Decode a row; raises RowDecodeError for unparsable dates or numbers."""
    try:
        start = date.fromisoformat(msg.date_start)
        stop = date.fromisoformat(msg.date_stop) if msg.date_stop else start
    except ValueError:
        raise RowDecodeError(f"ad {msg.ad_id}: date_start={msg.date_start!r} is not YYYY-MM-DD") from None
    kwargs: dict = {name: getattr(msg, name) or None for name in _RANKINGS}
    kwargs.update({name: getattr(msg, name) for name in _NAMES})
    for name in _OPTIONAL_INTS:
        kwargs[name] = getattr(msg, name) if msg.HasField(name) else None
    return InsightRow(
        account_id=msg.account_id,
        ad_id=msg.ad_id,
        date_start=start,
        date_stop=stop,
        spend=_decimal(msg.spend, "spend") if msg.HasField("spend") else None,
        actions={k: _decimal(v, f"actions[{k}]") for k, v in msg.actions.items()} if msg.actions_present else None,
        fetched_at=msg.fetched_at.ToDatetime(tzinfo=timezone.utc) if msg.HasField("fetched_at") else None,
        **kwargs,
    )

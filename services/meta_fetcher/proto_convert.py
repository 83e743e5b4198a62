"""``InsightRow`` (typed dataclass) <-> ``insights_pb2.InsightRow`` (wire contract).

Units (insights.proto): counts are int64 and unset when unknown; ``spend`` is
a plain decimal string (never exponent notation, never float); ``actions``
values are decimal strings and ``actions_present`` distinguishes "no actions
key" (conversions unknown) from an empty map; rankings are Graph enums with
"" for unknown; dates are YYYY-MM-DD. The round trip is lossless:
``row_from_proto(row_to_proto(r)) == r`` (``fetched_at`` to the microsecond).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from services.common.insight_row import COUNT_FIELDS, InsightRow
from services.common.pb.adfatigue.v1 import insights_pb2

RANKING_FIELDS = ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")


def _dec(value: Decimal) -> str:
    return format(value, "f")


def row_to_proto(row: InsightRow, fetched_at: datetime | None = None) -> insights_pb2.InsightRow:
    """The wire form of ``row``; ``fetched_at`` (aware) overrides ``row.fetched_at`` when given."""
    msg = insights_pb2.InsightRow(
        account_id=row.account_id,
        ad_id=row.ad_id,
        ad_name=row.ad_name,
        adset_id=row.adset_id,
        adset_name=row.adset_name,
        campaign_id=row.campaign_id,
        campaign_name=row.campaign_name,
        date_start=row.date_start.isoformat(),
        date_stop=row.date_stop.isoformat(),
    )
    for name in COUNT_FIELDS:
        value = getattr(row, name)
        if value is not None:
            setattr(msg, name, value)
    if row.reach_cum is not None:
        msg.reach_cum = row.reach_cum
    if row.spend is not None:
        msg.spend = _dec(row.spend)
    if row.actions is not None:
        msg.actions_present = True
        for action_type, value in row.actions.items():
            msg.actions[action_type] = _dec(value)
    for name in RANKING_FIELDS:
        setattr(msg, name, getattr(row, name) or "")
    when = fetched_at or row.fetched_at
    if when is not None:
        msg.fetched_at.FromDatetime(when.astimezone(timezone.utc))
    return msg


def row_from_proto(msg: insights_pb2.InsightRow) -> InsightRow:
    """The typed form of a wire row. Raises ValueError for a bad date or decimal."""
    counts = {name: (getattr(msg, name) if msg.HasField(name) else None) for name in COUNT_FIELDS}
    return InsightRow(
        account_id=msg.account_id,
        ad_id=msg.ad_id,
        ad_name=msg.ad_name,
        adset_id=msg.adset_id,
        adset_name=msg.adset_name,
        campaign_id=msg.campaign_id,
        campaign_name=msg.campaign_name,
        date_start=date.fromisoformat(msg.date_start),
        date_stop=date.fromisoformat(msg.date_stop),
        spend=Decimal(msg.spend) if msg.HasField("spend") else None,
        actions={k: Decimal(v) for k, v in msg.actions.items()} if msg.actions_present else None,
        quality_ranking=msg.quality_ranking or None,
        engagement_rate_ranking=msg.engagement_rate_ranking or None,
        conversion_rate_ranking=msg.conversion_rate_ranking or None,
        reach_cum=msg.reach_cum if msg.HasField("reach_cum") else None,
        fetched_at=msg.fetched_at.ToDatetime(tzinfo=timezone.utc) if msg.HasField("fetched_at") else None,
        **counts,
    )

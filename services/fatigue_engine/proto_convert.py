"""Conversion between protobuf messages and the plain types of the engine.

- ``row_from_proto`` / ``row_to_proto``: ``adfatigue.v1.InsightRow`` <->
  ``services.common.insight_row.InsightRow`` (unset optional fields <->
  ``None``; spend and action values are decimal strings <-> ``Decimal``;
  ``actions_present`` false <-> ``actions is None``).
- ``config_from_proto``: ``adfatigue.v1.FatigueConfig`` -> ``FatigueConfig``
  (unset fields take the spec defaults).
- ``result_to_proto``: ``FatigueResult`` -> ``adfatigue.v1.FatigueResult``.

Every malformed value raises ``ProtoConversionError`` (a ValueError) whose
message names the field and the value; the servicer prefixes the position.
"""

from __future__ import annotations

import math
from datetime import date, timezone
from decimal import Decimal, InvalidOperation

from services.common.insight_row import RANKINGS, InsightRow
from services.common.pb.adfatigue.v1 import fatigue_pb2, insights_pb2
from services.fatigue_engine.config import DEFAULT_CONFIG, AudienceType, FatigueConfig
from services.fatigue_engine.result import FatigueLevel, FatigueResult, WindowInfo


class ProtoConversionError(ValueError):
    """A protobuf field holds a value the engine cannot use."""


_INT_FIELDS = ("impressions", "reach", "clicks", "inline_link_clicks", "reach_cum")

LEVEL_TO_PROTO = {
    FatigueLevel.INSUFFICIENT_DATA: fatigue_pb2.INSUFFICIENT_DATA,
    FatigueLevel.HEALTHY: fatigue_pb2.HEALTHY,
    FatigueLevel.CAUTION: fatigue_pb2.CAUTION,
    FatigueLevel.WARNING: fatigue_pb2.WARNING,
    FatigueLevel.CRITICAL: fatigue_pb2.CRITICAL,
}


def parse_date(text: str, field_name: str) -> date:
    """``YYYY-MM-DD`` -> date; raises ProtoConversionError naming ``field_name``."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ProtoConversionError(f"{field_name} {text!r} is not a YYYY-MM-DD date") from None


def _decimal(text: str, field_name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ProtoConversionError(f"{field_name} {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ProtoConversionError(f"{field_name} {text!r} must be a finite number >= 0")
    return value


def row_from_proto(pb: insights_pb2.InsightRow) -> InsightRow:
    """One proto row -> ``InsightRow``.

    ``date_stop`` empty means the same as ``date_start``. Rankings: empty ->
    ``None``; otherwise one of ``RANKINGS``. Counts must be >= 0. Raises
    ProtoConversionError for an unparsable date, a negative count, a
    non-decimal spend or action value, or an unknown ranking.
    """
    start = parse_date(pb.date_start, "date_start")
    stop = parse_date(pb.date_stop, "date_stop") if pb.date_stop else start
    has = pb.HasField
    impressions = pb.impressions if has("impressions") else None
    reach = pb.reach if has("reach") else None
    clicks = pb.clicks if has("clicks") else None
    link_clicks = pb.inline_link_clicks if has("inline_link_clicks") else None
    reach_cum = pb.reach_cum if has("reach_cum") else None
    for name, value in (("impressions", impressions), ("reach", reach), ("clicks", clicks),
                        ("inline_link_clicks", link_clicks), ("reach_cum", reach_cum)):
        if value is not None and value < 0:
            raise ProtoConversionError(f"{name} {value} is negative")
    spend = _decimal(pb.spend, "spend") if has("spend") else None
    actions = None
    if pb.actions_present:
        actions = {k: _decimal(v, f"actions[{k!r}]") for k, v in pb.actions.items()}
    quality = _ranking(pb.quality_ranking, "quality_ranking")
    engagement = _ranking(pb.engagement_rate_ranking, "engagement_rate_ranking")
    conversion = _ranking(pb.conversion_rate_ranking, "conversion_rate_ranking")
    fetched = pb.fetched_at.ToDatetime(tzinfo=timezone.utc) if has("fetched_at") else None
    return InsightRow(
        account_id=pb.account_id, ad_id=pb.ad_id, date_start=start, date_stop=stop,
        ad_name=pb.ad_name, adset_id=pb.adset_id, adset_name=pb.adset_name,
        campaign_id=pb.campaign_id, campaign_name=pb.campaign_name,
        impressions=impressions, reach=reach, clicks=clicks, inline_link_clicks=link_clicks,
        spend=spend, actions=actions, quality_ranking=quality, engagement_rate_ranking=engagement,
        conversion_rate_ranking=conversion, reach_cum=reach_cum, fetched_at=fetched,
    )


_RANKING_SET = frozenset(RANKINGS)


def _ranking(value: str, field_name: str) -> str | None:
    if not value:
        return None
    if value not in _RANKING_SET:
        raise ProtoConversionError(f"{field_name} {value!r} is not one of {', '.join(RANKINGS)}")
    return value


def row_to_proto(row: InsightRow) -> insights_pb2.InsightRow:
    """``InsightRow`` -> proto row; ``None`` fields stay unset (unknown, never 0)."""
    pb = insights_pb2.InsightRow(
        account_id=row.account_id, ad_id=row.ad_id, ad_name=row.ad_name, adset_id=row.adset_id,
        adset_name=row.adset_name, campaign_id=row.campaign_id, campaign_name=row.campaign_name,
        date_start=row.date_start.isoformat(), date_stop=row.date_stop.isoformat(),
        quality_ranking=row.quality_ranking or "", engagement_rate_ranking=row.engagement_rate_ranking or "",
        conversion_rate_ranking=row.conversion_rate_ranking or "",
    )
    for name in _INT_FIELDS:
        value = getattr(row, name)
        if value is not None:
            setattr(pb, name, value)
    if row.spend is not None:
        pb.spend = str(row.spend)
    if row.actions is not None:
        pb.actions_present = True
        for k, v in row.actions.items():
            pb.actions[k] = str(v)
    if row.fetched_at is not None:
        at = row.fetched_at if row.fetched_at.tzinfo else row.fetched_at.replace(tzinfo=timezone.utc)
        pb.fetched_at.FromDatetime(at.astimezone(timezone.utc))
    return pb


def config_from_proto(pb: fatigue_pb2.FatigueConfig) -> FatigueConfig:
    """Proto config -> ``FatigueConfig``; AUDIENCE_TYPE_UNSPECIFIED is prospecting (fatigue.proto)."""
    audience = AudienceType.RETARGETING if pb.audience_type == fatigue_pb2.RETARGETING else AudienceType.PROSPECTING
    action = pb.conversion_action_type or DEFAULT_CONFIG.conversion_action_type
    if audience is DEFAULT_CONFIG.audience_type and action == DEFAULT_CONFIG.conversion_action_type:
        return DEFAULT_CONFIG
    return FatigueConfig(audience_type=audience, conversion_action_type=action)


def _window(w: WindowInfo | None) -> fatigue_pb2.Window | None:
    if w is None:
        return None
    return fatigue_pb2.Window(since=w.since.isoformat(), until=w.until.isoformat(),
                              delivery_days=w.delivery_days, impressions=w.impressions)


def result_to_proto(result: FatigueResult, insights_version: int = 0) -> fatigue_pb2.FatigueResult:
    """``FatigueResult`` -> proto, with ``insights_version`` copied in.

    ``None`` numbers stay unset; non-finite detail values are left out.
    """
    pb = fatigue_pb2.FatigueResult(
        account_id=result.account_id, ad_id=result.ad_id, ad_name=result.ad_name,
        adset_name=result.adset_name, campaign_name=result.campaign_name,
        level=LEVEL_TO_PROTO[result.level], insufficient_reason=result.insufficient_reason,
        meta_parity_floor_applied=result.meta_parity_floor_applied,
        delivery_days=result.delivery_days, impressions=result.impressions, insights_version=insights_version,
    )
    if result.score is not None:
        pb.score = result.score
    for c in result.components:
        pc = pb.components.add(name=c.name, available=c.available, unavailable_reason=c.unavailable_reason,
                               band_lo=c.band_lo, band_hi=c.band_hi, weight=c.weight)
        if c.raw_value is not None:
            pc.raw_value = c.raw_value
        if c.score is not None:
            pc.score = c.score
        for k, v in c.details.items():
            if math.isfinite(v):
                pc.details[k] = v
    f = result.forecast
    pf = pb.forecast
    pf.reason = f.reason
    pf.fit_points = f.fit_points
    pf.projected_scores.extend(f.projected_scores)
    if f.days_to_critical is not None:
        pf.days_to_critical = f.days_to_critical
    if f.slope_b is not None:
        pf.slope_b = f.slope_b
    if f.slope_t_stat is not None:
        pf.slope_t_stat = f.slope_t_stat
    if f.frequency_growth_per_day is not None:
        pf.frequency_growth_per_day = f.frequency_growth_per_day
    for name, w in (("baseline", result.baseline), ("recent", result.recent)):
        pw = _window(w)
        if pw is not None:
            getattr(pb, name).CopyFrom(pw)
    return pb


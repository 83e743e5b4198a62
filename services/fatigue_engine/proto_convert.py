"""Conversion between protobuf messages and the plain types of the engine.

- ``row_from_proto`` / ``row_to_proto``: re-exported from ``services.common.row_proto``.
- ``config_from_proto``: ``adfatigue.v1.FatigueConfig`` -> ``FatigueConfig``
  (unset fields take the spec defaults).
- ``result_to_proto``: ``FatigueResult`` -> ``adfatigue.v1.FatigueResult``.

Every malformed value raises ``ProtoConversionError`` (a ValueError) whose
message names the field and the value; the servicer prefixes the position.
"""

from __future__ import annotations

import math

from services.common.fatigue_config import config_problem
from services.common.row_proto import RowDecodeError, row_from_proto, row_to_proto  # noqa: F401 (re-exported)
from services.common.pb.adfatigue.v1 import fatigue_pb2
from services.fatigue_engine.config import DEFAULT_CONFIG, AudienceType, FatigueConfig
from services.fatigue_engine.result import FatigueLevel, FatigueResult, WindowInfo


#: Every malformed value raises this (a ValueError naming the field and the value).
ProtoConversionError = RowDecodeError

LEVEL_TO_PROTO = {
    FatigueLevel.INSUFFICIENT_DATA: fatigue_pb2.INSUFFICIENT_DATA,
    FatigueLevel.HEALTHY: fatigue_pb2.HEALTHY,
    FatigueLevel.CAUTION: fatigue_pb2.CAUTION,
    FatigueLevel.WARNING: fatigue_pb2.WARNING,
    FatigueLevel.CRITICAL: fatigue_pb2.CRITICAL,
}


def config_from_proto(pb: fatigue_pb2.FatigueConfig) -> FatigueConfig:
    """Proto config -> ``FatigueConfig``; AUDIENCE_TYPE_UNSPECIFIED is prospecting (fatigue.proto).

    Raises ``ProtoConversionError`` for an ``audience_type`` that is not one of the enum's values (an
    unknown number would silently score as prospecting) and for a ``conversion_action_type`` that is not
    a Graph API action type (``services/common/fatigue_config.py``).
    """
    problem = config_problem(pb)
    if problem:
        raise ProtoConversionError(problem)
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
    if result.spend is not None:
        pb.spend = str(result.spend)
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


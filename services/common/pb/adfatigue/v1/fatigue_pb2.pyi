from services.common.pb.adfatigue.v1 import insights_pb2 as _insights_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FatigueLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FATIGUE_LEVEL_UNSPECIFIED: _ClassVar[FatigueLevel]
    INSUFFICIENT_DATA: _ClassVar[FatigueLevel]
    HEALTHY: _ClassVar[FatigueLevel]
    CAUTION: _ClassVar[FatigueLevel]
    WARNING: _ClassVar[FatigueLevel]
    CRITICAL: _ClassVar[FatigueLevel]

class AudienceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIENCE_TYPE_UNSPECIFIED: _ClassVar[AudienceType]
    PROSPECTING: _ClassVar[AudienceType]
    RETARGETING: _ClassVar[AudienceType]
FATIGUE_LEVEL_UNSPECIFIED: FatigueLevel
INSUFFICIENT_DATA: FatigueLevel
HEALTHY: FatigueLevel
CAUTION: FatigueLevel
WARNING: FatigueLevel
CRITICAL: FatigueLevel
AUDIENCE_TYPE_UNSPECIFIED: AudienceType
PROSPECTING: AudienceType
RETARGETING: AudienceType

class FatigueConfig(_message.Message):
    __slots__ = ("audience_type", "conversion_action_type")
    AUDIENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    audience_type: AudienceType
    conversion_action_type: str
    def __init__(self, audience_type: _Optional[_Union[AudienceType, str]] = ..., conversion_action_type: _Optional[str] = ...) -> None: ...

class FatigueComponent(_message.Message):
    __slots__ = ("name", "available", "unavailable_reason", "raw_value", "band_lo", "band_hi", "score", "weight", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    RAW_VALUE_FIELD_NUMBER: _ClassVar[int]
    BAND_LO_FIELD_NUMBER: _ClassVar[int]
    BAND_HI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    unavailable_reason: str
    raw_value: float
    band_lo: float
    band_hi: float
    score: float
    weight: float
    details: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., unavailable_reason: _Optional[str] = ..., raw_value: _Optional[float] = ..., band_lo: _Optional[float] = ..., band_hi: _Optional[float] = ..., score: _Optional[float] = ..., weight: _Optional[float] = ..., details: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FatigueForecast(_message.Message):
    __slots__ = ("days_to_critical", "reason", "slope_b", "slope_t_stat", "frequency_growth_per_day", "fit_points", "projected_scores")
    DAYS_TO_CRITICAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SLOPE_B_FIELD_NUMBER: _ClassVar[int]
    SLOPE_T_STAT_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_GROWTH_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    FIT_POINTS_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_SCORES_FIELD_NUMBER: _ClassVar[int]
    days_to_critical: int
    reason: str
    slope_b: float
    slope_t_stat: float
    frequency_growth_per_day: float
    fit_points: int
    projected_scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, days_to_critical: _Optional[int] = ..., reason: _Optional[str] = ..., slope_b: _Optional[float] = ..., slope_t_stat: _Optional[float] = ..., frequency_growth_per_day: _Optional[float] = ..., fit_points: _Optional[int] = ..., projected_scores: _Optional[_Iterable[float]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("since", "until", "delivery_days", "impressions")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_DAYS_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    delivery_days: int
    impressions: int
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., delivery_days: _Optional[int] = ..., impressions: _Optional[int] = ...) -> None: ...

class FatigueResult(_message.Message):
    __slots__ = ("account_id", "ad_id", "ad_name", "adset_name", "campaign_name", "score", "level", "insufficient_reason", "components", "meta_parity_floor_applied", "forecast", "baseline", "recent", "delivery_days", "impressions", "insights_version", "spend")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    AD_NAME_FIELD_NUMBER: _ClassVar[int]
    ADSET_NAME_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    INSUFFICIENT_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    META_PARITY_FLOOR_APPLIED_FIELD_NUMBER: _ClassVar[int]
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_DAYS_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    INSIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEND_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    ad_id: str
    ad_name: str
    adset_name: str
    campaign_name: str
    score: float
    level: FatigueLevel
    insufficient_reason: str
    components: _containers.RepeatedCompositeFieldContainer[FatigueComponent]
    meta_parity_floor_applied: bool
    forecast: FatigueForecast
    baseline: Window
    recent: Window
    delivery_days: int
    impressions: int
    insights_version: int
    spend: str
    def __init__(self, account_id: _Optional[str] = ..., ad_id: _Optional[str] = ..., ad_name: _Optional[str] = ..., adset_name: _Optional[str] = ..., campaign_name: _Optional[str] = ..., score: _Optional[float] = ..., level: _Optional[_Union[FatigueLevel, str]] = ..., insufficient_reason: _Optional[str] = ..., components: _Optional[_Iterable[_Union[FatigueComponent, _Mapping]]] = ..., meta_parity_floor_applied: _Optional[bool] = ..., forecast: _Optional[_Union[FatigueForecast, _Mapping]] = ..., baseline: _Optional[_Union[Window, _Mapping]] = ..., recent: _Optional[_Union[Window, _Mapping]] = ..., delivery_days: _Optional[int] = ..., impressions: _Optional[int] = ..., insights_version: _Optional[int] = ..., spend: _Optional[str] = ...) -> None: ...

class AdSeries(_message.Message):
    __slots__ = ("ad_id", "days")
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    ad_id: str
    days: _containers.RepeatedCompositeFieldContainer[_insights_pb2.InsightRow]
    def __init__(self, ad_id: _Optional[str] = ..., days: _Optional[_Iterable[_Union[_insights_pb2.InsightRow, _Mapping]]] = ...) -> None: ...

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FreshnessClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRESHNESS_CLASS_UNSPECIFIED: _ClassVar[FreshnessClass]
    FINAL: _ClassVar[FreshnessClass]
    PROVISIONAL: _ClassVar[FreshnessClass]
    PARTIAL: _ClassVar[FreshnessClass]

class DataStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_STATUS_UNSPECIFIED: _ClassVar[DataStatus]
    FRESH: _ClassVar[DataStatus]
    STALE_REVALIDATING: _ClassVar[DataStatus]
    STALE_UPSTREAM_ERROR: _ClassVar[DataStatus]
FRESHNESS_CLASS_UNSPECIFIED: FreshnessClass
FINAL: FreshnessClass
PROVISIONAL: FreshnessClass
PARTIAL: FreshnessClass
DATA_STATUS_UNSPECIFIED: DataStatus
FRESH: DataStatus
STALE_REVALIDATING: DataStatus
STALE_UPSTREAM_ERROR: DataStatus

class InsightRow(_message.Message):
    __slots__ = ("account_id", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name", "date_start", "date_stop", "impressions", "reach", "clicks", "inline_link_clicks", "spend", "actions", "actions_present", "quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking", "reach_cum", "fetched_at", "action_attribution_windows")
    class ActionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    AD_NAME_FIELD_NUMBER: _ClassVar[int]
    ADSET_ID_FIELD_NUMBER: _ClassVar[int]
    ADSET_NAME_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_NAME_FIELD_NUMBER: _ClassVar[int]
    DATE_START_FIELD_NUMBER: _ClassVar[int]
    DATE_STOP_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    REACH_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    INLINE_LINK_CLICKS_FIELD_NUMBER: _ClassVar[int]
    SPEND_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_PRESENT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_RANKING_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_RATE_RANKING_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_RANKING_FIELD_NUMBER: _ClassVar[int]
    REACH_CUM_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_ATTRIBUTION_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    ad_id: str
    ad_name: str
    adset_id: str
    adset_name: str
    campaign_id: str
    campaign_name: str
    date_start: str
    date_stop: str
    impressions: int
    reach: int
    clicks: int
    inline_link_clicks: int
    spend: str
    actions: _containers.ScalarMap[str, str]
    actions_present: bool
    quality_ranking: str
    engagement_rate_ranking: str
    conversion_rate_ranking: str
    reach_cum: int
    fetched_at: _timestamp_pb2.Timestamp
    action_attribution_windows: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, account_id: _Optional[str] = ..., ad_id: _Optional[str] = ..., ad_name: _Optional[str] = ..., adset_id: _Optional[str] = ..., adset_name: _Optional[str] = ..., campaign_id: _Optional[str] = ..., campaign_name: _Optional[str] = ..., date_start: _Optional[str] = ..., date_stop: _Optional[str] = ..., impressions: _Optional[int] = ..., reach: _Optional[int] = ..., clicks: _Optional[int] = ..., inline_link_clicks: _Optional[int] = ..., spend: _Optional[str] = ..., actions: _Optional[_Mapping[str, str]] = ..., actions_present: _Optional[bool] = ..., quality_ranking: _Optional[str] = ..., engagement_rate_ranking: _Optional[str] = ..., conversion_rate_ranking: _Optional[str] = ..., reach_cum: _Optional[int] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action_attribution_windows: _Optional[_Iterable[str]] = ...) -> None: ...

class DayFreshness(_message.Message):
    __slots__ = ("date", "fetched_at", "freshness_class", "due")
    DATE_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_CLASS_FIELD_NUMBER: _ClassVar[int]
    DUE_FIELD_NUMBER: _ClassVar[int]
    date: str
    fetched_at: _timestamp_pb2.Timestamp
    freshness_class: FreshnessClass
    due: bool
    def __init__(self, date: _Optional[str] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., freshness_class: _Optional[_Union[FreshnessClass, str]] = ..., due: _Optional[bool] = ...) -> None: ...

class Freshness(_message.Message):
    __slots__ = ("status", "as_of", "reason", "days", "action_attribution_windows")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    ACTION_ATTRIBUTION_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    status: DataStatus
    as_of: _timestamp_pb2.Timestamp
    reason: str
    days: _containers.RepeatedCompositeFieldContainer[DayFreshness]
    action_attribution_windows: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[_Union[DataStatus, str]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., days: _Optional[_Iterable[_Union[DayFreshness, _Mapping]]] = ..., action_attribution_windows: _Optional[_Iterable[str]] = ...) -> None: ...

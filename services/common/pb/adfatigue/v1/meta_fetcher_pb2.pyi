import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from services.common.pb.adfatigue.v1 import insights_pb2 as _insights_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FetchInsightsRequest(_message.Message):
    __slots__ = ("account_id", "since", "until", "fields", "with_reach_cum", "action_attribution_windows")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    WITH_REACH_CUM_FIELD_NUMBER: _ClassVar[int]
    ACTION_ATTRIBUTION_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    with_reach_cum: bool
    action_attribution_windows: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., with_reach_cum: _Optional[bool] = ..., action_attribution_windows: _Optional[_Iterable[str]] = ...) -> None: ...

class FetchInsightsResponse(_message.Message):
    __slots__ = ("account_id", "rows", "fetched_at", "upstream_calls", "account_timezone", "account_currency", "account_name")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_NAME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    rows: _containers.RepeatedCompositeFieldContainer[_insights_pb2.InsightRow]
    fetched_at: _timestamp_pb2.Timestamp
    upstream_calls: int
    account_timezone: str
    account_currency: str
    account_name: str
    def __init__(self, account_id: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[_insights_pb2.InsightRow, _Mapping]]] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., upstream_calls: _Optional[int] = ..., account_timezone: _Optional[str] = ..., account_currency: _Optional[str] = ..., account_name: _Optional[str] = ...) -> None: ...

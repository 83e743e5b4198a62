from services.common.pb.adfatigue.v1 import fatigue_pb2 as _fatigue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreAdsRequest(_message.Message):
    __slots__ = ("account_id", "ads", "config", "insights_version", "series_key", "since", "until")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ADS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INSIGHTS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERIES_KEY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    ads: _containers.RepeatedCompositeFieldContainer[_fatigue_pb2.AdSeries]
    config: _fatigue_pb2.FatigueConfig
    insights_version: int
    series_key: str
    since: str
    until: str
    def __init__(self, account_id: _Optional[str] = ..., ads: _Optional[_Iterable[_Union[_fatigue_pb2.AdSeries, _Mapping]]] = ..., config: _Optional[_Union[_fatigue_pb2.FatigueConfig, _Mapping]] = ..., insights_version: _Optional[int] = ..., series_key: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class ScoreAdsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_fatigue_pb2.FatigueResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_fatigue_pb2.FatigueResult, _Mapping]]] = ...) -> None: ...

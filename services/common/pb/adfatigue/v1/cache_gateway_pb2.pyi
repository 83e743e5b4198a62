import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from services.common.pb.adfatigue.v1 import insights_pb2 as _insights_pb2
from services.common.pb.adfatigue.v1 import fatigue_pb2 as _fatigue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInsightsRequest(_message.Message):
    __slots__ = ("account_id", "since", "until", "fields", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetInsightsResponse(_message.Message):
    __slots__ = ("account_id", "version", "rows", "freshness", "next_page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    version: int
    rows: _containers.RepeatedCompositeFieldContainer[_insights_pb2.InsightRow]
    freshness: _insights_pb2.Freshness
    next_page_token: str
    def __init__(self, account_id: _Optional[str] = ..., version: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[_insights_pb2.InsightRow, _Mapping]]] = ..., freshness: _Optional[_Union[_insights_pb2.Freshness, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFatigueRequest(_message.Message):
    __slots__ = ("account_id", "since", "until", "config")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    config: _fatigue_pb2.FatigueConfig
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., config: _Optional[_Union[_fatigue_pb2.FatigueConfig, _Mapping]] = ...) -> None: ...

class GetFatigueResponse(_message.Message):
    __slots__ = ("account_id", "version", "results", "freshness", "account_currency", "stored_days")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STORED_DAYS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    version: int
    results: _containers.RepeatedCompositeFieldContainer[_fatigue_pb2.FatigueResult]
    freshness: _insights_pb2.Freshness
    account_currency: str
    stored_days: DateRange
    def __init__(self, account_id: _Optional[str] = ..., version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[_fatigue_pb2.FatigueResult, _Mapping]]] = ..., freshness: _Optional[_Union[_insights_pb2.Freshness, _Mapping]] = ..., account_currency: _Optional[str] = ..., stored_days: _Optional[_Union[DateRange, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("account_id", "since", "until", "fields", "from_version")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    from_version: int
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., from_version: _Optional[int] = ...) -> None: ...

class SubscribeEvent(_message.Message):
    __slots__ = ("kind", "version", "rows", "fatigue", "committed_at", "removed")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SubscribeEvent.Kind]
        SNAPSHOT: _ClassVar[SubscribeEvent.Kind]
        CHANGE: _ClassVar[SubscribeEvent.Kind]
        JUMP: _ClassVar[SubscribeEvent.Kind]
    KIND_UNSPECIFIED: SubscribeEvent.Kind
    SNAPSHOT: SubscribeEvent.Kind
    CHANGE: SubscribeEvent.Kind
    JUMP: SubscribeEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FATIGUE_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    kind: SubscribeEvent.Kind
    version: int
    rows: _containers.RepeatedCompositeFieldContainer[_insights_pb2.InsightRow]
    fatigue: _containers.RepeatedCompositeFieldContainer[_fatigue_pb2.FatigueResult]
    committed_at: _timestamp_pb2.Timestamp
    removed: _containers.RepeatedCompositeFieldContainer[_insights_pb2.InsightRow]
    def __init__(self, kind: _Optional[_Union[SubscribeEvent.Kind, str]] = ..., version: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[_insights_pb2.InsightRow, _Mapping]]] = ..., fatigue: _Optional[_Iterable[_Union[_fatigue_pb2.FatigueResult, _Mapping]]] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., removed: _Optional[_Iterable[_Union[_insights_pb2.InsightRow, _Mapping]]] = ...) -> None: ...

class RefreshRequest(_message.Message):
    __slots__ = ("account_id", "since", "until", "force")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    force: bool
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RefreshResponse(_message.Message):
    __slots__ = ("account_id", "version", "fetched_ranges", "rows_changed", "upstream_calls")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FETCHED_RANGES_FIELD_NUMBER: _ClassVar[int]
    ROWS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    version: int
    fetched_ranges: _containers.RepeatedCompositeFieldContainer[DateRange]
    rows_changed: int
    upstream_calls: int
    def __init__(self, account_id: _Optional[str] = ..., version: _Optional[int] = ..., fetched_ranges: _Optional[_Iterable[_Union[DateRange, _Mapping]]] = ..., rows_changed: _Optional[int] = ..., upstream_calls: _Optional[int] = ...) -> None: ...

class DateRange(_message.Message):
    __slots__ = ("since", "until")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AccountSummary(_message.Message):
    __slots__ = ("account_id", "name", "currency", "timezone_name", "version", "known")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    currency: str
    timezone_name: str
    version: int
    known: bool
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., currency: _Optional[str] = ..., timezone_name: _Optional[str] = ..., version: _Optional[int] = ..., known: _Optional[bool] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountSummary]
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountSummary, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GatewayStats(_message.Message):
    __slots__ = ("l1_hits", "l1_misses", "l2_hits", "l2_misses", "upstream_calls", "upstream_calls_avoided", "stale_answers", "l1_bytes", "l1_max_bytes", "l1_entries", "l2_reads", "l1_accounts", "l1_replica_loads")
    L1_HITS_FIELD_NUMBER: _ClassVar[int]
    L1_MISSES_FIELD_NUMBER: _ClassVar[int]
    L2_HITS_FIELD_NUMBER: _ClassVar[int]
    L2_MISSES_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_AVOIDED_FIELD_NUMBER: _ClassVar[int]
    STALE_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    L1_BYTES_FIELD_NUMBER: _ClassVar[int]
    L1_MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    L1_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    L2_READS_FIELD_NUMBER: _ClassVar[int]
    L1_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    L1_REPLICA_LOADS_FIELD_NUMBER: _ClassVar[int]
    l1_hits: int
    l1_misses: int
    l2_hits: int
    l2_misses: int
    upstream_calls: int
    upstream_calls_avoided: int
    stale_answers: int
    l1_bytes: int
    l1_max_bytes: int
    l1_entries: int
    l2_reads: int
    l1_accounts: int
    l1_replica_loads: int
    def __init__(self, l1_hits: _Optional[int] = ..., l1_misses: _Optional[int] = ..., l2_hits: _Optional[int] = ..., l2_misses: _Optional[int] = ..., upstream_calls: _Optional[int] = ..., upstream_calls_avoided: _Optional[int] = ..., stale_answers: _Optional[int] = ..., l1_bytes: _Optional[int] = ..., l1_max_bytes: _Optional[int] = ..., l1_entries: _Optional[int] = ..., l2_reads: _Optional[int] = ..., l1_accounts: _Optional[int] = ..., l1_replica_loads: _Optional[int] = ...) -> None: ...

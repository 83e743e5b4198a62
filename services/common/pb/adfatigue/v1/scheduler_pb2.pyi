import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AccountStaleness(_message.Message):
    __slots__ = ("account_id", "oldest_fetched_at", "due_days")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_DAYS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    oldest_fetched_at: _timestamp_pb2.Timestamp
    due_days: int
    def __init__(self, account_id: _Optional[str] = ..., oldest_fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_days: _Optional[int] = ...) -> None: ...

class SchedulerStatus(_message.Message):
    __slots__ = ("instance_id", "is_leader", "leader_id", "last_cycle_started", "last_cycle_finished", "next_cycle", "cycles_run", "interval_seconds", "refreshes_requested", "last_error", "accounts")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_CYCLE_STARTED_FIELD_NUMBER: _ClassVar[int]
    LAST_CYCLE_FINISHED_FIELD_NUMBER: _ClassVar[int]
    NEXT_CYCLE_FIELD_NUMBER: _ClassVar[int]
    CYCLES_RUN_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFRESHES_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    is_leader: bool
    leader_id: str
    last_cycle_started: _timestamp_pb2.Timestamp
    last_cycle_finished: _timestamp_pb2.Timestamp
    next_cycle: _timestamp_pb2.Timestamp
    cycles_run: int
    interval_seconds: int
    refreshes_requested: int
    last_error: str
    accounts: _containers.RepeatedCompositeFieldContainer[AccountStaleness]
    def __init__(self, instance_id: _Optional[str] = ..., is_leader: _Optional[bool] = ..., leader_id: _Optional[str] = ..., last_cycle_started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_cycle_finished: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_cycle: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cycles_run: _Optional[int] = ..., interval_seconds: _Optional[int] = ..., refreshes_requested: _Optional[int] = ..., last_error: _Optional[str] = ..., accounts: _Optional[_Iterable[_Union[AccountStaleness, _Mapping]]] = ...) -> None: ...

class RunNowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunNowResponse(_message.Message):
    __slots__ = ("accounts_refreshed", "upstream_calls")
    ACCOUNTS_REFRESHED_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_FIELD_NUMBER: _ClassVar[int]
    accounts_refreshed: int
    upstream_calls: int
    def __init__(self, accounts_refreshed: _Optional[int] = ..., upstream_calls: _Optional[int] = ...) -> None: ...

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from services.common.pb.adfatigue.v1 import insights_pb2 as _insights_pb2
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
    __slots__ = ("account_id", "oldest_fetched_at", "due_days", "max_overdue_seconds", "partial_due_days", "provisional_due_days", "final_due_days", "subscribers", "reads_last_hour", "last_read_at", "priority")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_OVERDUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_DUE_DAYS_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_DUE_DAYS_FIELD_NUMBER: _ClassVar[int]
    FINAL_DUE_DAYS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    READS_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_AT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    oldest_fetched_at: _timestamp_pb2.Timestamp
    due_days: int
    max_overdue_seconds: int
    partial_due_days: int
    provisional_due_days: int
    final_due_days: int
    subscribers: int
    reads_last_hour: int
    last_read_at: _timestamp_pb2.Timestamp
    priority: float
    def __init__(self, account_id: _Optional[str] = ..., oldest_fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_days: _Optional[int] = ..., max_overdue_seconds: _Optional[int] = ..., partial_due_days: _Optional[int] = ..., provisional_due_days: _Optional[int] = ..., final_due_days: _Optional[int] = ..., subscribers: _Optional[int] = ..., reads_last_hour: _Optional[int] = ..., last_read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[float] = ...) -> None: ...

class BudgetStatus(_message.Message):
    __slots__ = ("source", "app_limit", "window_seconds", "app_used", "app_left", "scheduler_share", "scheduler_used", "scheduler_left", "reserve")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    APP_LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APP_USED_FIELD_NUMBER: _ClassVar[int]
    APP_LEFT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_SHARE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_USED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_LEFT_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    source: str
    app_limit: int
    window_seconds: int
    app_used: int
    app_left: int
    scheduler_share: int
    scheduler_used: int
    scheduler_left: int
    reserve: int
    def __init__(self, source: _Optional[str] = ..., app_limit: _Optional[int] = ..., window_seconds: _Optional[int] = ..., app_used: _Optional[int] = ..., app_left: _Optional[int] = ..., scheduler_share: _Optional[int] = ..., scheduler_used: _Optional[int] = ..., scheduler_left: _Optional[int] = ..., reserve: _Optional[int] = ...) -> None: ...

class QueueItem(_message.Message):
    __slots__ = ("account_id", "since", "until", "freshness_class", "estimated_calls", "score", "due_at", "state")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_CLASS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CALLS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    since: str
    until: str
    freshness_class: _insights_pb2.FreshnessClass
    estimated_calls: int
    score: float
    due_at: _timestamp_pb2.Timestamp
    state: str
    def __init__(self, account_id: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., freshness_class: _Optional[_Union[_insights_pb2.FreshnessClass, str]] = ..., estimated_calls: _Optional[int] = ..., score: _Optional[float] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ...) -> None: ...

class CycleSummary(_message.Message):
    __slots__ = ("cycle", "fencing_token", "due_items", "planned_items", "refreshed_items", "deferred_items", "failed_items", "estimated_calls", "calls_spent", "accounts_refreshed", "idle_skipped")
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DUE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    PLANNED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    FAILED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CALLS_FIELD_NUMBER: _ClassVar[int]
    CALLS_SPENT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_REFRESHED_FIELD_NUMBER: _ClassVar[int]
    IDLE_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    cycle: int
    fencing_token: int
    due_items: int
    planned_items: int
    refreshed_items: int
    deferred_items: int
    failed_items: int
    estimated_calls: int
    calls_spent: int
    accounts_refreshed: int
    idle_skipped: int
    def __init__(self, cycle: _Optional[int] = ..., fencing_token: _Optional[int] = ..., due_items: _Optional[int] = ..., planned_items: _Optional[int] = ..., refreshed_items: _Optional[int] = ..., deferred_items: _Optional[int] = ..., failed_items: _Optional[int] = ..., estimated_calls: _Optional[int] = ..., calls_spent: _Optional[int] = ..., accounts_refreshed: _Optional[int] = ..., idle_skipped: _Optional[int] = ...) -> None: ...

class SchedulerStatus(_message.Message):
    __slots__ = ("instance_id", "is_leader", "leader_id", "last_cycle_started", "last_cycle_finished", "next_cycle", "cycles_run", "interval_seconds", "refreshes_requested", "last_error", "accounts", "fencing_token", "budget", "queue", "queue_length", "last_cycle", "accounts_total")
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
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LAST_CYCLE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
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
    fencing_token: int
    budget: BudgetStatus
    queue: _containers.RepeatedCompositeFieldContainer[QueueItem]
    queue_length: int
    last_cycle: CycleSummary
    accounts_total: int
    def __init__(self, instance_id: _Optional[str] = ..., is_leader: _Optional[bool] = ..., leader_id: _Optional[str] = ..., last_cycle_started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_cycle_finished: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_cycle: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cycles_run: _Optional[int] = ..., interval_seconds: _Optional[int] = ..., refreshes_requested: _Optional[int] = ..., last_error: _Optional[str] = ..., accounts: _Optional[_Iterable[_Union[AccountStaleness, _Mapping]]] = ..., fencing_token: _Optional[int] = ..., budget: _Optional[_Union[BudgetStatus, _Mapping]] = ..., queue: _Optional[_Iterable[_Union[QueueItem, _Mapping]]] = ..., queue_length: _Optional[int] = ..., last_cycle: _Optional[_Union[CycleSummary, _Mapping]] = ..., accounts_total: _Optional[int] = ...) -> None: ...

class RunNowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunNowResponse(_message.Message):
    __slots__ = ("accounts_refreshed", "upstream_calls", "cycle")
    ACCOUNTS_REFRESHED_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_CALLS_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    accounts_refreshed: int
    upstream_calls: int
    cycle: CycleSummary
    def __init__(self, accounts_refreshed: _Optional[int] = ..., upstream_calls: _Optional[int] = ..., cycle: _Optional[_Union[CycleSummary, _Mapping]] = ...) -> None: ...

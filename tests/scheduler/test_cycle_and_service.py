"""A cycle end to end over in-memory ports, the loop's schedule, and the gRPC service (GetStatus, RunNow)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from services.cache_gateway.demand_tracker import AccountDemand
from services.common.audit_log import AuditLog
from services.common.auth import JwtVerifier, bearer, mint_token
from services.common.grpc_server import GrpcHost
from services.common.pb.adfatigue.v1 import insights_pb2, scheduler_pb2 as pb, scheduler_pb2_grpc
from services.scheduler.budget import LocalBudget
from services.scheduler.cycle import CycleRunner, RefreshFailed, RefreshOutcome
from services.scheduler.events import CycleCompleted, Notifier
from services.scheduler.leader_lease import LocalLease, LocalSchedule
from services.scheduler.planning import AccountFreshness, WorkItem
from services.scheduler.scheduler_loop import NotLeader, SchedulerLoop
from services.scheduler.servicer import SchedulerServicer
from services.scheduler.settings import SchedulerSettings
from services.scheduler.status_text import render_status

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)
TODAY = NOW.date()


class Views:
    def __init__(self, views):
        self.views = views

    async def load(self, now):
        return self.views


class Demand:
    def __init__(self, demand):
        self.demand = demand

    async def load(self, now):
        return self.demand


class Refresher:
    def __init__(self, fail: dict[str, RefreshFailed] | None = None):
        self.items: list[tuple[WorkItem, int]] = []
        self.fail = fail or {}
        self.on_call = None

    async def refresh(self, item, token):
        self.items.append((item, token))
        if self.on_call:
            self.on_call()
        if item.account_id in self.fail:
            raise self.fail[item.account_id]
        return RefreshOutcome(upstream_calls=1)


class Recorder:
    def __init__(self):
        self.events: list[CycleCompleted] = []

    async def send(self, event):
        self.events.append(event)

    async def aclose(self):
        pass


def stale_view(account: str, rows: float = 10.0) -> AccountFreshness:
    """Today fetched 20 minutes ago (due) and the last 3 days fetched 7 hours ago (due)."""
    fetched = {TODAY: NOW - timedelta(minutes=20)}
    fetched.update({TODAY - timedelta(days=k): NOW - timedelta(hours=7) for k in (1, 2, 3)})
    return AccountFreshness(account, "UTC", fetched, rows)


def build(views, demand=None, refresher=None, settings=None, lease=None, budget_clock=None):
    settings = settings or SchedulerSettings(interval_s=600)
    refresher = refresher or Refresher()
    t = budget_clock or [0.0]
    runner = CycleRunner(Views(views), Demand(demand or {}), LocalBudget(settings, clock=lambda: t[0]), refresher,
                         settings)
    recorder = Recorder()
    loop = SchedulerLoop(runner, lease or LocalLease("sched-test"), LocalSchedule(clock=lambda: NOW), settings,
                         Notifier([recorder]), clock=lambda: NOW)
    return loop, refresher, recorder


async def test_a_cycle_refreshes_what_people_look_at_first_and_reports_it():
    demand = {"live": AccountDemand("live", subscribers=1, last_read_at=NOW),
              "idle": AccountDemand("idle", last_read_at=NOW - timedelta(days=30))}
    loop, refresher, recorder = build([stale_view("idle"), stale_view("unknown"), stale_view("live")], demand)
    result = await loop.run_cycle()
    refreshed = [(i.account_id, i.cls.name) for i, _ in refresher.items]
    assert refreshed[:2] == [("live", "PARTIAL"), ("live", "PROVISIONAL")]
    assert "idle" not in {a for a, _ in refreshed}
    assert {tok for _, tok in refresher.items} == {1}
    assert result.summary()["idle_skipped"] == 2
    assert [e.cycle for e in recorder.events] == [1] and recorder.events[0].refreshed_items == len(refreshed)
    assert await loop.run_cycle() is None  # the next one is due in 10 minutes
    assert loop.next_cycle == NOW + timedelta(minutes=10)
    forced = await loop.run_cycle(force=True)
    assert forced.cycle == 2 and loop.cycles_run == 2


async def test_the_budget_is_checked_before_every_call():
    settings = SchedulerSettings(interval_s=600, share_calls=3, budget_calls=200)
    demand = {a: AccountDemand(a, subscribers=1) for a in ("a", "b", "c")}
    loop, refresher, _ = build([stale_view(a) for a in ("a", "b", "c")], demand, settings=settings)
    result = await loop.run_cycle()
    assert result.calls_spent == len(refresher.items) <= 3
    assert result.summary()["deferred_items"] == len(result.items) - len(refresher.items) > 0
    assert (await loop.runner.budget.snapshot()).scheduler_left == 0
    assert all("budget" in i.state for i in result.waiting)


async def test_a_cycle_stops_when_leadership_is_lost_and_a_fencing_refusal_counts_as_lost():
    class Flaky(LocalLease):
        def __init__(self):
            super().__init__("sched-test")
            self.ok = True

        def holds(self):
            return self.ok

    lease = Flaky()
    demand = {a: AccountDemand(a, subscribers=1) for a in ("a", "b")}
    loop, refresher, _ = build([stale_view("a"), stale_view("b")], demand, lease=lease)
    refresher.on_call = lambda: setattr(lease, "ok", False)
    result = await loop.run_cycle()
    assert len(refresher.items) == 1 and result.lost_leadership
    assert all("no longer the leader" in i.state for i in result.waiting)
    with pytest.raises(NotLeader):
        await loop.run_cycle(force=True)

    refused = RefreshFailed("FAILED_PRECONDITION", "refresh refused: fencing token 1 is older than 2; ...")
    loop, refresher, _ = build([stale_view("a"), stale_view("b")], demand,
                               refresher=Refresher({"a": refused, "b": refused}))
    result = await loop.run_cycle()
    assert len(refresher.items) == 1 and result.lost_leadership and "fencing" in result.errors[0]


async def test_other_errors_are_reported_and_the_cycle_goes_on():
    demand = {a: AccountDemand(a, subscribers=1) for a in ("a", "b")}
    loop, refresher, recorder = build([stale_view("a"), stale_view("b")], demand,
                                      refresher=Refresher({"a": RefreshFailed("UNAVAILABLE", "Meta down")}))
    result = await loop.run_cycle()
    assert {i.account_id for i, _ in refresher.items} == {"a", "b"}
    assert result.summary()["failed_items"] == 2 and "UNAVAILABLE: Meta down" in loop.last_error
    assert recorder.events[0].failed_items == 2


# -- the gRPC service ------------------------------------------------------------------------------

@pytest.fixture
async def audit(mongo):
    client, db_name = mongo
    log = AuditLog(client[db_name]["audit"], service="scheduler", batch_window_s=0)
    await log.start()
    yield log
    await log.close()
    assert log.dropped == 0


@contextlib.asynccontextmanager
async def serve(loop: SchedulerLoop, audit: AuditLog):
    host = GrpcHost("127.0.0.1:0")
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(
        SchedulerServicer(loop, JwtVerifier(SECRET, ["HS256"]), audit), host.server)
    port = await host.start(["adfatigue.v1.Scheduler"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield scheduler_pb2_grpc.SchedulerStub(channel)
    finally:
        await channel.close()
        await host.stop(0)


def token(*roles: str):
    return bearer(mint_token(SECRET, "someone", ["*"], list(roles)))


async def test_run_now_is_for_operators_and_status_shows_leader_budget_queue_and_staleness(audit):
    demand = {"1001": AccountDemand("1001", subscribers=2, reads_last_hour=5, last_read_at=NOW)}
    loop, refresher, _ = build([stale_view("1001"), stale_view("1002")], demand,
                               settings=SchedulerSettings(interval_s=600, share_calls=2))
    async with serve(loop, audit) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunNow(pb.RunNowRequest(), metadata=token())
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "operator" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunNow(pb.RunNowRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refresher.items == []
        reply = await stub.RunNow(pb.RunNowRequest(), metadata=token("operator"))
        assert reply.cycle.cycle == 1 and reply.upstream_calls == len(refresher.items) == 2
        with pytest.raises(grpc.aio.AioRpcError) as err:  # an operational RPC: readers are refused
            await stub.GetStatus(pb.GetStatusRequest(), metadata=token())
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "operator" in err.value.details()
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=token("operator"))
        narrow = await stub.GetStatus(pb.GetStatusRequest(),
                                      metadata=bearer(mint_token(SECRET, "one-account", ["act_1002"], ["operator"])))
    # finding: scheduler RPCs were not audited; now every call is, with its caller and final status
    await audit.flush()
    entries = [(d["method"], d["subject"], d["status"]) async for d in audit.collection.find({}).sort("at", 1)]
    assert entries == [("RunNow", "someone", "PERMISSION_DENIED"), ("RunNow", "", "UNAUTHENTICATED"),
                       ("RunNow", "someone", "OK"), ("GetStatus", "someone", "PERMISSION_DENIED"),
                       ("GetStatus", "someone", "OK"), ("GetStatus", "one-account", "OK")]
    assert {d["service"] async for d in audit.collection.find({})} == {"scheduler"}
    # an operator limited to act_1002 sees only that account's entries
    assert {a.account_id for a in narrow.accounts} == {"1002"} and {q.account_id for q in narrow.queue} <= {"1002"}
    assert status.is_leader and status.leader_id == status.instance_id == "sched-test"
    assert status.fencing_token == 1 and status.cycles_run == 1 and status.interval_seconds == 600
    assert status.last_cycle_started.ToDatetime(tzinfo=timezone.utc) == NOW
    assert status.next_cycle.ToDatetime(tzinfo=timezone.utc) == NOW + timedelta(minutes=10)
    b = status.budget
    assert (b.source, b.app_limit, b.scheduler_share, b.scheduler_used, b.scheduler_left, b.reserve, b.app_used) == \
        ("configured-share", 200, 2, 2, 0, 198, -1)
    assert status.queue_length == len(status.queue) - 2 > 0
    assert [q.state for q in status.queue][:2] == ["refreshed", "refreshed"]
    assert status.queue[0].account_id == "1001" and status.queue[0].freshness_class == insights_pb2.PARTIAL
    assert status.accounts_total == 2 and status.accounts[0].account_id == "1001"
    first = status.accounts[0]
    assert (first.subscribers, first.reads_last_hour) == (2, 5)
    assert (first.partial_due_days, first.provisional_due_days) == (1, 3)
    assert first.max_overdue_seconds == 3600 and first.priority > status.accounts[1].priority
    assert status.last_cycle.refreshed_items == 2 and status.last_cycle.deferred_items > 0

    text = render_status(status, NOW)  # what `adfatigue status` prints
    for words in ("scheduler sched-test (leader, fencing token 1); leader: sched-test",
                  "cycles: last #1 started 15:00:00 (took 0.0 s), next 15:10:00, every 600 s; 1 run here",
                  "budget (configured-share): app limit 200 per 3600 s (usage not visible without REDIS_URL); "
                  "scheduler 2/2, may spend 0 more",
                  "act_1001", "refreshed", "deferred: budget",
                  "stale accounts at the last cycle (2 of 2 with due days"):
        assert words in text, (words, text)


async def test_run_now_on_a_follower_names_the_leader(audit):
    class Follower(LocalLease):
        def holds(self):
            return False

        async def leader(self):
            return "sched-elsewhere"

    loop, refresher, _ = build([stale_view("1001")], lease=Follower("sched-me"))
    async with serve(loop, audit) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunNow(pb.RunNowRequest(), metadata=token("operator"))
        status = await stub.GetStatus(pb.GetStatusRequest(), metadata=token("operator"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "sched-elsewhere" in err.value.details()
    assert not status.is_leader and status.leader_id == "sched-elsewhere" and refresher.items == []

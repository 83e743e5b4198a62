"""Scheduler gRPC servicer: GetStatus and RunNow.

GetStatus (operator role, else PERMISSION_DENIED): who leads (from the lease, the same on
every replica), the last and next cycle of the shared schedule, the budget
now, the last cycle's plan and what still waits (the queue), and per-account
staleness (the leader's view; a follower shows its own, usually empty).
RunNow (operator role, else PERMISSION_DENIED): runs a cycle at once on the
leader; FAILED_PRECONDITION naming the leader on any other replica.
"""

from __future__ import annotations

import logging
from datetime import datetime

import grpc

from services.common.audit_log import AuditLog, audited, current_caller
from services.common.auth import AuthError, JwtVerifier, require_operator
from services.common.pb.adfatigue.v1 import scheduler_pb2 as pb
from services.scheduler.budget import BudgetSnapshot
from services.scheduler.cycle import CycleResult, account_reports
from services.scheduler.scheduler_loop import NotLeader, SchedulerLoop

log = logging.getLogger(__name__)

STATUS_LIMIT = 100


def _ts(field, value: datetime | None) -> None:
    if value is not None:
        field.FromDatetime(value)


def budget_message(snap: BudgetSnapshot) -> pb.BudgetStatus:
    return pb.BudgetStatus(
        source=snap.source, app_limit=snap.app_limit, window_seconds=int(snap.window_s),
        app_used=-1 if snap.app_used is None else snap.app_used,
        app_left=-1 if snap.app_left is None else snap.app_left, scheduler_share=snap.share,
        scheduler_used=snap.scheduler_used, scheduler_left=snap.scheduler_left, reserve=snap.reserve,
    )


def cycle_message(result: CycleResult) -> pb.CycleSummary:
    s = result.summary()
    return pb.CycleSummary(**{k: s[k] for k in (
        "cycle", "fencing_token", "due_items", "planned_items", "refreshed_items", "deferred_items", "failed_items",
        "estimated_calls", "calls_spent", "accounts_refreshed", "idle_skipped")})


def fill_from_result(status: pb.SchedulerStatus, result: CycleResult, now: datetime) -> None:
    """Queue, per-account staleness and the cycle summary of ``result`` (at most STATUS_LIMIT entries each)."""
    status.last_cycle.CopyFrom(cycle_message(result))
    status.accounts_total = result.accounts_total
    waiting = [i for i in result.items if i.state != "refreshed"]
    status.queue_length = len(waiting)
    for entry in (result.items + [])[:STATUS_LIMIT]:
        item = entry.candidate.item
        q = status.queue.add(account_id=item.account_id, since=item.days.since.isoformat(),
                             until=item.days.until.isoformat(), freshness_class=int(item.cls),
                             estimated_calls=item.estimated_calls, score=round(entry.candidate.score, 4),
                             state=entry.state)
        _ts(q.due_at, item.due_at)
    for report in account_reports(result.candidates, result.demand, now)[:STATUS_LIMIT]:
        a = status.accounts.add(
            account_id=report.account_id, due_days=report.due_days, max_overdue_seconds=int(report.max_overdue_s),
            partial_due_days=report.partial, provisional_due_days=report.provisional, final_due_days=report.final,
            priority=round(report.priority, 4),
        )
        _ts(a.oldest_fetched_at, report.oldest_fetched_at)
        if report.demand is not None:
            a.subscribers, a.reads_last_hour = report.demand.subscribers, report.demand.reads_last_hour
            _ts(a.last_read_at, report.demand.last_read_at)


class SchedulerServicer:
    """GetStatus and RunNow need the operator role (PERMISSION_DENIED otherwise); every call is audited."""

    def __init__(self, loop: SchedulerLoop, verifier: JwtVerifier, audit: AuditLog):
        self.loop = loop
        self.verifier = verifier
        self.audit = audit

    async def _authenticate(self, context, operator_for: str = ""):
        try:
            principal = self.verifier.authenticate(context.invocation_metadata())
            current_caller.set(principal)
            if operator_for:
                require_operator(principal, operator_for)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
        return principal

    @audited
    async def GetStatus(self, request: pb.GetStatusRequest, context) -> pb.SchedulerStatus:
        """The scheduler's state (operator); per-account entries only for accounts the caller may read."""
        principal = await self._authenticate(context, "GetStatus")
        loop = self.loop
        leader = await loop._leader()
        status = pb.SchedulerStatus(
            instance_id=loop.lease.holder_id, is_leader=loop.lease.holds(), leader_id=leader,
            cycles_run=loop.cycles_run, interval_seconds=int(loop.interval_s),
            refreshes_requested=loop.refreshes_requested, last_error=loop.last_error,
            fencing_token=loop.lease.fencing_token,
        )
        shared = await loop.shared_state()
        _ts(status.last_cycle_started, shared.started or (loop.last.started if loop.last else None))
        _ts(status.last_cycle_finished, shared.finished or (loop.last.finished if loop.last else None))
        _ts(status.next_cycle, loop.next_cycle)
        try:
            status.budget.CopyFrom(budget_message(await loop.runner.budget.snapshot()))
        except Exception as exc:  # Redis down: say so, keep answering
            status.last_error = f"budget: {type(exc).__name__}: {exc}"
        if loop.last is not None:
            fill_from_result(status, loop.last, loop.clock())
        elif shared.summary:
            s = shared.summary
            status.last_cycle.CopyFrom(pb.CycleSummary(**{k: int(s.get(k) or 0) for k in (
                "cycle", "fencing_token", "due_items", "planned_items", "refreshed_items", "deferred_items",
                "failed_items", "estimated_calls", "calls_spent", "accounts_refreshed", "idle_skipped")}))
        for repeated in (status.queue, status.accounts):
            visible = [item for item in repeated if principal.may_read(item.account_id)]
            del repeated[:]
            repeated.extend(visible)
        return status

    @audited
    async def RunNow(self, request: pb.RunNowRequest, context) -> pb.RunNowResponse:
        await self._authenticate(context, "RunNow")
        try:
            result = await self.loop.run_cycle(force=True)
        except NotLeader as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if result is None:  # cannot happen with force, kept for type safety
            await context.abort(grpc.StatusCode.INTERNAL, "the cycle was not claimed")
        return pb.RunNowResponse(accounts_refreshed=result.accounts_refreshed, upstream_calls=result.calls_spent,
                                 cycle=cycle_message(result))

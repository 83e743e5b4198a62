"""Scheduler gRPC servicer: GetStatus and RunNow."""

from __future__ import annotations

from datetime import datetime

from services.common.auth import AuthError, JwtVerifier, require_operator
from services.common.pb.adfatigue.v1 import scheduler_pb2 as pb
from services.scheduler.scheduler_loop import SchedulerLoop


def _ts(field, value: datetime | None) -> None:
    if value is not None:
        field.FromDatetime(value)


class SchedulerServicer:
    """GetStatus needs any valid bearer token; RunNow the operator role (PERMISSION_DENIED otherwise)."""

    def __init__(self, loop: SchedulerLoop, verifier: JwtVerifier):
        self.loop = loop
        self.verifier = verifier

    async def _authenticate(self, context, operator_for: str = ""):
        try:
            principal = self.verifier.authenticate(context.invocation_metadata())
            if operator_for:
                require_operator(principal, operator_for)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)

    async def GetStatus(self, request: pb.GetStatusRequest, context) -> pb.SchedulerStatus:
        await self._authenticate(context)
        loop = self.loop
        status = pb.SchedulerStatus(
            instance_id=loop.lease.holder_id, is_leader=loop.is_leader, leader_id=await loop.lease.leader(),
            cycles_run=loop.cycles_run, interval_seconds=int(loop.interval_s),
            refreshes_requested=loop.refreshes_requested, last_error=loop.last_error,
        )
        if loop.last:
            _ts(status.last_cycle_started, loop.last.started)
            _ts(status.last_cycle_finished, loop.last.finished)
        _ts(status.next_cycle, loop.next_cycle)
        for due in loop.last_due:
            item = status.accounts.add(account_id=due.account_id, due_days=due.due_days)
            _ts(item.oldest_fetched_at, due.oldest_fetched_at)
        return status

    async def RunNow(self, request: pb.RunNowRequest, context) -> pb.RunNowResponse:
        await self._authenticate(context, "RunNow")
        report = await self.loop.run_cycle()
        return pb.RunNowResponse(accounts_refreshed=report.accounts_refreshed, upstream_calls=report.upstream_calls)

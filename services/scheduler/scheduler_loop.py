"""The scheduler's loop: every ``interval_s`` (600 by default, R6), if leader, refresh what is due."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import grpc

from services.cache_gateway.freshness import FreshnessPolicy
from services.cache_gateway.l2_store import InsightsStore
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc as gw_grpc
from services.common.auth import ServiceToken
from services.scheduler.leader_lease import Lease
from services.scheduler.refresh_cycle import AccountDue, CycleReport, find_due

log = logging.getLogger(__name__)


class SchedulerLoop:
    def __init__(self, store: InsightsStore, gateway: gw_grpc.CacheGatewayStub, lease: Lease,
                 interval_s: float = 600.0, policy: FreshnessPolicy | None = None, token: ServiceToken | None = None):
        self.store = store
        self.token = token
        self.gateway = gateway
        self.lease = lease
        self.interval_s = interval_s
        self.policy = policy or FreshnessPolicy()
        self.cycles_run = 0
        self.refreshes_requested = 0
        self.last: CycleReport | None = None
        self.next_cycle: datetime | None = None
        self.last_error = ""
        self.is_leader = False
        self.last_due: list[AccountDue] = []
        self._lock = asyncio.Lock()

    async def run_cycle(self) -> CycleReport:
        """Refresh every due range of every account once (serialised: never two cycles at once)."""
        async with self._lock:
            report = CycleReport(started=datetime.now(timezone.utc))
            self.last_due = await find_due(self.store, self.policy, report.started)
            for account in self.last_due:
                touched = False
                for rng in account.ranges:
                    request = gw.RefreshRequest(account_id=account.account_id, since=rng.since.isoformat(),
                                                until=rng.until.isoformat())
                    try:
                        metadata = self.token.metadata() if self.token else None
                        reply = await self.gateway.Refresh(request, timeout=300, metadata=metadata)
                        report.upstream_calls += reply.upstream_calls
                        touched = True
                        self.refreshes_requested += 1
                    except grpc.aio.AioRpcError as exc:
                        report.errors.append(f"act_{account.account_id} {rng}: {exc.code().name} {exc.details()}")
                report.accounts_refreshed += touched
            report.finished = datetime.now(timezone.utc)
            self.cycles_run += 1
            self.last = report
            self.last_error = report.errors[-1] if report.errors else ""
            log.info("refresh cycle completed: %d account(s), %d upstream call(s), %d error(s)",
                     report.accounts_refreshed, report.upstream_calls, len(report.errors))
            return report

    async def run_forever(self, tick_s: float = 5.0) -> None:
        """Renew the lease every ``tick_s``; run a cycle when leader and the interval has passed."""
        next_at = datetime.now(timezone.utc)
        while True:
            try:
                self.is_leader = await self.lease.try_acquire_or_renew()
                now = datetime.now(timezone.utc)
                if self.is_leader and now >= next_at:
                    await self.run_cycle()
                    next_at = now + timedelta(seconds=self.interval_s)
                self.next_cycle = next_at
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; report it in GetStatus
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("scheduler tick failed")
            await asyncio.sleep(min(tick_s, self.interval_s))

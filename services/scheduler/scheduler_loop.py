"""The scheduler's loop: keep the lease, and when leading run each cycle of the shared schedule (R6).

Two tasks: the *keeper* renews the lease every ttl/3 (so a long cycle never
lets it lapse); the *runner* checks every ``tick_s`` whether this replica
leads and the next cycle of the shared schedule is due, claims it (fenced,
see ``leader_lease.py``) and runs it with ``cycle.CycleRunner``. After each
cycle a ``CycleCompleted`` event goes to the notifier. ``run_cycle(force=True)``
is RunNow: it runs at once (still only on the leader).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from services.scheduler.cycle import CycleResult, CycleRunner, account_reports
from services.scheduler.events import CycleCompleted, Notifier
from services.scheduler.leader_lease import Lease, LocalSchedule, RedisSchedule, ScheduleState
from services.scheduler.settings import SchedulerSettings
from services.scheduler import metrics

log = logging.getLogger(__name__)


class NotLeader(Exception):
    """This replica does not lead; ``leader`` is who does ("" if nobody)."""

    def __init__(self, leader: str, why: str = ""):
        super().__init__(f"this scheduler replica is not the leader (leader: {leader or 'none yet'}"
                         f"{'; ' + why if why else ''}); call RunNow on the leader")
        self.leader = leader


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SchedulerLoop:
    def __init__(self, runner: CycleRunner, lease: Lease, schedule: LocalSchedule | RedisSchedule,
                 settings: SchedulerSettings, notifier: Notifier | None = None,
                 clock: Callable[[], datetime] = _utcnow):
        self.runner = runner
        self.lease = lease
        self.schedule = schedule
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.interval_s = settings.interval_s
        self.is_leader = False
        self.cycles_run = 0
        self.refreshes_requested = 0
        self.last: CycleResult | None = None
        self.next_cycle: datetime | None = None
        self.last_error = ""
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    async def keep_lease(self) -> bool:
        """Acquire or renew once; on a Redis error keep the local view (``lease.holds()`` expires by itself)."""
        try:
            await self.lease.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_error = f"lease: {type(exc).__name__}: {exc}"
            log.warning("lease renewal failed: %s", self.last_error)
        was, self.is_leader = self.is_leader, self.lease.holds()
        if self.is_leader != was:
            log.info("%s leadership (holder %s, fencing token %d)", "took" if self.is_leader else "lost",
                     self.lease.holder_id, self.lease.fencing_token)
        return self.is_leader

    async def run_cycle(self, force: bool = False) -> CycleResult | None:
        """Claim and run the next cycle (at once when ``force``); None when it is not due yet.

        Raises NotLeader when this replica does not lead (or was deposed at the claim).
        """
        async with self._lock:
            if not self.lease.holds():
                raise NotLeader(await self._leader())
            token = self.lease.fencing_token
            claim = await self.schedule.claim(token, self.interval_s, force, self.lease.holder_id)
            if claim.cycle < 0:
                self.is_leader = False
                raise NotLeader(await self._leader(), f"fencing token {token} of this replica is no longer the "
                                                      "latest: a newer leader was elected")
            if claim.cycle == 0:
                self.next_cycle = claim.started + timedelta(seconds=claim.wait_s)
                return None
            self.next_cycle = claim.started + timedelta(seconds=self.interval_s)
            result = await self.runner.run(self.clock(), token, self.lease.holds, claim.cycle, self.clock)
            self.cycles_run += 1
            self.refreshes_requested += sum(1 for i in result.items if not i.state.startswith("deferred"))
            self.last = result
            metrics.cycle_finished(result, account_reports(result.candidates, result.demand,
                                                           result.finished or self.clock()))
            self.last_error = result.errors[-1] if result.errors else ""
            summary = {**result.summary(), "holder": self.lease.holder_id}
            await self.schedule.finish(claim.cycle, result.finished or self.clock(), summary)
            await self.notifier.publish(self._event(result))
            return result

    def _event(self, result: CycleResult) -> CycleCompleted:
        s = result.summary()
        finished = result.finished or result.started
        return CycleCompleted(
            cycle=result.cycle, leader=self.lease.holder_id, fencing_token=result.fencing_token,
            started=result.started.isoformat(), finished=finished.isoformat(),
            duration_s=max(0.0, (finished - result.started).total_seconds()),
            refreshed_items=s["refreshed_items"], accounts_refreshed=s["accounts_refreshed"],
            deferred_items=s["deferred_items"], failed_items=s["failed_items"], calls_spent=s["calls_spent"],
            budget_left=s["budget_left"], scheduler_share=self.settings.share_calls, errors=tuple(result.errors[:3]),
        )

    async def _leader(self) -> str:
        try:
            return await self.lease.leader()
        except Exception:
            return ""

    async def shared_state(self) -> ScheduleState:
        """The shared schedule (last cycle of any replica); empty on errors."""
        try:
            return await self.schedule.state()
        except Exception as exc:
            self.last_error = f"schedule: {type(exc).__name__}: {exc}"
            return ScheduleState()

    async def _keeper(self) -> None:
        period = max(0.2, self.settings.lease_ttl_s / 3)
        while True:
            await self.keep_lease()
            await asyncio.sleep(period)

    def request_stop(self) -> None:
        """Let ``run_forever`` return once the cycle in progress (if any) has finished."""
        self._stop.set()

    async def run_forever(self, tick_s: float | None = None) -> None:
        """Keep the lease and run cycles when due, until cancelled or ``request_stop``.

        Errors are kept for GetStatus and never end the loop.
        """
        tick = tick_s if tick_s is not None else min(5.0, self.settings.lease_ttl_s / 3, self.interval_s)
        await self.keep_lease()
        keeper = asyncio.create_task(self._keeper())
        try:
            while not self._stop.is_set():
                wait = tick
                try:
                    if self.lease.holds():
                        result = await self.run_cycle()
                        if result is None and self.next_cycle is not None:
                            wait = min(tick, max(0.05, (self.next_cycle - self.clock()).total_seconds()))
                    else:
                        state = await self.shared_state()
                        if state.started is not None:
                            self.next_cycle = state.started + timedelta(seconds=self.interval_s)
                except asyncio.CancelledError:
                    raise
                except NotLeader:
                    pass
                except Exception as exc:  # keep the loop alive; report it in GetStatus
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("scheduler tick failed")
                try:
                    await asyncio.wait_for(self._stop.wait(), wait)
                except asyncio.TimeoutError:
                    pass
        finally:
            keeper.cancel()
            try:
                await keeper
            except (asyncio.CancelledError, Exception):
                pass

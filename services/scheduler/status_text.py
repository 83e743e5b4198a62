"""``adfatigue status`` as text a person reads: who leads, the cycles, the budget, what waits, what is stale.

``render_status(status, now)`` takes an ``adfatigue.v1.SchedulerStatus`` and returns lines like::

    scheduler sched-a-123 (leader, fencing token 4); leader: sched-a-123
    cycles: last #57 started 10:40:00 (took 3.1 s), next 10:50:00, every 600 s; 12 run here
    budget (redis-shared): app 143/200 calls used in the last 3600 s, 57 left; scheduler 61/150, may spend 7 more
            (reserve 50 kept for on-demand reads)
    last cycle: 31 due, 9 planned, 9 refreshed (4 accounts), 22 waiting, 0 failed, 8 idle; 14 calls (est. 15)
    ...

Times are shown in UTC. Nothing here talks to the network.
"""

from __future__ import annotations

from datetime import datetime, timezone

from services.common.pb.adfatigue.v1 import insights_pb2
from services.common.pb.adfatigue.v1 import scheduler_pb2 as pb

_CLASS = {insights_pb2.PARTIAL: "partial", insights_pb2.PROVISIONAL: "provisional", insights_pb2.FINAL: "final"}


def _when(ts, now: datetime) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    at = ts.ToDatetime(tzinfo=timezone.utc)
    fmt = "%H:%M:%S" if abs((at - now).total_seconds()) < 86400 else "%Y-%m-%d %H:%M"
    return at.strftime(fmt)


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render_status(status: pb.SchedulerStatus, now: datetime | None = None, limit: int = 15) -> str:
    """Human-readable status (module docstring); ``limit`` rows of queue and accounts each."""
    now = now or datetime.now(timezone.utc)
    role = "leader" if status.is_leader else "follower"
    lines = [f"scheduler {status.instance_id} ({role}, fencing token {status.fencing_token}); "
             f"leader: {status.leader_id or 'none'}"]
    took = ""
    if status.HasField("last_cycle_started") and status.HasField("last_cycle_finished"):
        seconds = (status.last_cycle_finished.ToDatetime() - status.last_cycle_started.ToDatetime()).total_seconds()
        if seconds >= 0:
            took = f" (took {seconds:.1f} s)"
    lines.append(f"cycles: last #{status.last_cycle.cycle} started {_when(status.last_cycle_started, now)}{took}, "
                 f"next {_when(status.next_cycle, now)}, every {status.interval_seconds} s; "
                 f"{status.cycles_run} run here")
    b = status.budget
    if b.source:
        app = (f"app {b.app_used}/{b.app_limit} calls used in the last {b.window_seconds} s, {b.app_left} left"
               if b.app_used >= 0 else f"app limit {b.app_limit} per {b.window_seconds} s (usage not visible "
                                        "without REDIS_URL)")
        lines.append(f"budget ({b.source}): {app}; scheduler {b.scheduler_used}/{b.scheduler_share}, may spend "
                     f"{b.scheduler_left} more (reserve {b.reserve} kept for on-demand reads)")
    c = status.last_cycle
    if c.cycle:
        lines.append(f"last cycle: {c.due_items} due, {c.planned_items} planned, {c.refreshed_items} refreshed "
                     f"({c.accounts_refreshed} accounts), {c.deferred_items} waiting, {c.failed_items} failed, "
                     f"{c.idle_skipped} idle; {c.calls_spent} calls (est. {c.estimated_calls})")
    if status.last_error:
        lines.append(f"last error: {status.last_error}")
    if status.queue:
        lines.append(f"\nqueue ({status.queue_length} waiting; the last plan first):")
        lines.append(f"  {'account':<16} {'days':<23} {'class':<12} {'calls':>5} {'score':>8} {'due':>9}  state")
        for q in status.queue[:limit]:
            lines.append(f"  act_{q.account_id:<12} {q.since + '..' + q.until:<23} "
                         f"{_CLASS.get(q.freshness_class, '?'):<12} {q.estimated_calls:>5} {q.score:>8.2f} "
                         f"{_when(q.due_at, now):>9}  {q.state}")
        if len(status.queue) > limit:
            lines.append(f"  ... {len(status.queue) - limit} more")
    if status.accounts:
        lines.append(f"\nstale accounts at the last cycle ({len(status.accounts)} of {status.accounts_total} "
                     "with due days; most urgent first):")
        lines.append(f"  {'account':<16} {'due days (P/V/F)':<18} {'overdue':>9} {'oldest fetch':>16} {'subs':>5} "
                     f"{'reads/h':>8} {'priority':>9}")
        for a in status.accounts[:limit]:
            split = f"{a.due_days} ({a.partial_due_days}/{a.provisional_due_days}/{a.final_due_days})"
            lines.append(f"  act_{a.account_id:<12} {split:<18} {_age(a.max_overdue_seconds):>9} "
                         f"{_when(a.oldest_fetched_at, now):>16} {a.subscribers:>5} {a.reads_last_hour:>8} "
                         f"{a.priority:>9.2f}")
        if len(status.accounts) > limit:
            lines.append(f"  ... {len(status.accounts) - limit} more")
    elif status.is_leader and c.cycle:
        lines.append("\nno account has due days")
    return "\n".join(lines)

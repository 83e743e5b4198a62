"""The scheduler's domain instruments (names under ``adfatigue.``).

* ``adfatigue.scheduler.cycles`` {cycle} — cycles this replica ran (as leader), ``outcome`` = ok |
  errors (at least one refresh failed) | lost_leadership.
* ``adfatigue.scheduler.refreshes`` {refresh} — planned refreshes by ``state`` = refreshed |
  deferred | failed.
* ``adfatigue.scheduler.last_cycle`` (s) — Unix time the last cycle finished (``time() - x`` is
  how long ago; the info alert fires when it moves).
* ``adfatigue.scheduler.viewed_staleness`` (s) — at the last cycle, the longest any day of an
  account people are looking at (live subscribers or reads in the last hour) had been overdue for
  refresh; ``adfatigue.scheduler.due_accounts`` {account} — accounts with due work then.
"""

from __future__ import annotations

from opentelemetry.metrics import Observation

from services.common.telemetry import meter

_m = meter("adfatigue.scheduler")

cycles = _m.create_counter("adfatigue.scheduler.cycles", unit="{cycle}", description="Refresh cycles run, by outcome")
refreshes = _m.create_counter("adfatigue.scheduler.refreshes", unit="{refresh}",
                              description="Planned refreshes by state (refreshed, deferred, failed)")
_last: dict[str, float] = {}


def cycle_finished(result, reports) -> None:
    """Record one finished cycle (``CycleResult``) and the per-account staleness (``AccountReport``s)."""
    outcome = "lost_leadership" if result.lost_leadership else "errors" if result.errors else "ok"
    cycles.add(1, {"outcome": outcome})
    for item in result.items:
        refreshes.add(1, {"state": item.state.split(":", 1)[0]})
    finished = result.finished or result.started
    viewed = [r.max_overdue_s for r in reports
              if r.demand is not None and (r.demand.subscribers > 0 or r.demand.reads_last_hour > 0)]
    _last.update(finished=finished.timestamp(), viewed=max(viewed, default=0.0), due=float(len(reports)))


def _gauge(key: str):
    return lambda _o: [Observation(_last[key])] if key in _last else []


_m.create_observable_gauge("adfatigue.scheduler.last_cycle", [_gauge("finished")], unit="s",
                           description="Unix time the last refresh cycle finished")
_m.create_observable_gauge("adfatigue.scheduler.viewed_staleness", [_gauge("viewed")], unit="s",
                           description="Longest overdue refresh of an account people are looking at")
_m.create_observable_gauge("adfatigue.scheduler.due_accounts", [_gauge("due")], unit="{account}",
                           description="Accounts with due refresh work at the last cycle")

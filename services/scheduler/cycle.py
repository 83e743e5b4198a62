"""One scheduler cycle, over ports: production wires MongoDB/Redis/gRPC, the simulation in-memory fakes.

``CycleRunner.run(now, fencing_token, still_leader)``:

1. load every account's freshness, the demand, and the budget snapshot;
2. ``planning.candidates`` + ``planning.plan_cycle`` under ``budget.allowance``;
3. hand the chosen items, best first, to the refresher (CacheGateway.Refresh -
   the gateway stays the only writer), re-reading the budget before each one
   (an item whose estimate no longer fits what is left waits), stopping at once
   when this replica stops being the leader;
4. record what each refresh spent (the fetchers' window delta when visible,
   else the estimate) and return a ``CycleResult``.

A refresh that fails does not stop the cycle; its error is in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Protocol, Sequence

from services.cache_gateway.demand_tracker import AccountDemand
from services.common.freshness import FreshnessClass, FreshnessPolicy
from services.scheduler.budget import BudgetSnapshot, BudgetSource, allowance
from services.scheduler.planning import AccountFreshness, Candidate, Plan, WorkItem, candidates, plan_cycle
from services.scheduler.settings import SchedulerSettings

REFRESHED = "refreshed"


class FreshnessSource(Protocol):
    async def load(self, now: datetime) -> list[AccountFreshness]: ...


class DemandSource(Protocol):
    async def load(self, now: datetime) -> Mapping[str, AccountDemand]: ...


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    upstream_calls: int            # FetchInsights calls the gateway made (0: nothing was due any more)
    rows_changed: int = 0
    version: int = 0
    meta_calls: int | None = None  # HTTP requests to Meta, when the refresher knows them


class RefreshFailed(Exception):
    """A refresh was refused or failed; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Refresher(Protocol):
    async def refresh(self, item: WorkItem, fencing_token: int) -> RefreshOutcome:
        """Refresh ``item.days`` of ``item.account_id``; raises RefreshFailed."""
        ...


@dataclass(slots=True)
class ItemResult:
    candidate: Candidate
    state: str                     # "refreshed", "deferred: ...", "failed: ..."
    calls: int = 0


@dataclass(slots=True)
class CycleResult:
    started: datetime
    finished: datetime | None = None
    cycle: int = 0
    fencing_token: int = 0
    accounts_total: int = 0
    plan: Plan = field(default_factory=Plan)
    items: list[ItemResult] = field(default_factory=list)
    budget_before: BudgetSnapshot | None = None
    budget_after: BudgetSnapshot | None = None
    candidates: list[Candidate] = field(default_factory=list)
    demand: Mapping[str, AccountDemand] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lost_leadership: bool = False

    @property
    def refreshed(self) -> list[ItemResult]:
        return [i for i in self.items if i.state == REFRESHED]

    @property
    def calls_spent(self) -> int:
        return sum(i.calls for i in self.items)

    @property
    def upstream_calls(self) -> int:
        return self.calls_spent

    @property
    def accounts_refreshed(self) -> int:
        return len({i.candidate.item.account_id for i in self.refreshed})

    @property
    def waiting(self) -> list[ItemResult]:
        return [i for i in self.items if i.state != REFRESHED]

    def summary(self) -> dict:
        """Counts for status, events and the shared cycle log (JSON-safe)."""
        failed = sum(1 for i in self.items if i.state.startswith("failed"))
        return {
            "cycle": self.cycle, "fencing_token": self.fencing_token,
            "started": self.started.isoformat(), "finished": self.finished.isoformat() if self.finished else None,
            "due_items": self.plan.due_items, "planned_items": len(self.plan.chosen),
            "refreshed_items": len(self.refreshed), "deferred_items": len(self.items) - len(self.refreshed) - failed,
            "failed_items": failed, "estimated_calls": self.plan.estimated_calls, "calls_spent": self.calls_spent,
            "accounts_refreshed": self.accounts_refreshed, "idle_skipped": len(self.plan.idle),
            "budget_left": self.budget_after.scheduler_left if self.budget_after else None,
            "lost_leadership": self.lost_leadership,
        }


class CycleRunner:
    """Runs cycles against the four ports; the planning is ``services.scheduler.planning`` (pure)."""

    def __init__(self, freshness: FreshnessSource, demand: DemandSource, budget: BudgetSource, refresher: Refresher,
                 settings: SchedulerSettings):
        self.freshness = freshness
        self.demand = demand
        self.budget = budget
        self.refresher = refresher
        self.settings = settings
        self.policy: FreshnessPolicy = settings.policy

    async def run(self, now: datetime, fencing_token: int, still_leader: Callable[[], bool] = lambda: True,
                  cycle: int = 0, clock: Callable[[], datetime] | None = None) -> CycleResult:
        """One cycle at ``now`` under ``fencing_token`` (see the module docstring)."""
        s = self.settings
        result = CycleResult(started=now, cycle=cycle, fencing_token=fencing_token)
        views = await self.freshness.load(now)
        demand = await self.demand.load(now)
        snap = await self.budget.snapshot()
        result.accounts_total, result.demand, result.budget_before = len(views), demand, snap
        result.candidates = candidates(views, demand, self.policy, now, s.interval_s, s.idle_after_s, s.page_limit)
        result.plan = plan = plan_cycle(result.candidates, allowance(snap, s.pace_calls, s.burst_cycles, s.interval_s))
        for cand in plan.chosen:
            if not still_leader():
                result.lost_leadership = True
                result.items.append(ItemResult(cand, "deferred: this replica is no longer the leader"))
                continue
            live = await self.budget.snapshot()
            if cand.item.estimated_calls > live.scheduler_left:
                result.items.append(ItemResult(cand, f"deferred: budget ({live.scheduler_left} call(s) left for the "
                                                     f"scheduler, {cand.item.estimated_calls} needed)"))
                continue
            try:
                outcome = await self.refresher.refresh(cand.item, fencing_token)
            except RefreshFailed as exc:
                result.items.append(ItemResult(cand, f"failed: {exc}"))
                result.errors.append(f"act_{cand.item.account_id} {cand.item.days}: {exc}")
                if exc.code == "FAILED_PRECONDITION" and "fencing" in exc.message:
                    result.lost_leadership = True  # the gateway says a newer leader exists
                    still_leader = lambda: False
                continue
            spent = await self._spent(cand.item, outcome, live)
            await self.budget.record(spent)
            result.items.append(ItemResult(cand, REFRESHED, spent))
        for cand in plan.deferred:
            result.items.append(ItemResult(cand, "deferred: budget (lower priority than what was refreshed)"))
        result.budget_after = await self.budget.snapshot()
        result.finished = clock() if clock else now
        return result

    async def _spent(self, item: WorkItem, outcome: RefreshOutcome, before: BudgetSnapshot) -> int:
        """Meta calls one refresh used: exact when known; the window's growth (at least one per upstream
        call) when visible; else the estimate. Nothing when the gateway found nothing due."""
        if outcome.meta_calls is not None:
            return outcome.meta_calls
        if outcome.upstream_calls <= 0:
            return 0
        if before.app_used is not None:
            after = await self.budget.snapshot()
            if after.app_used is not None:
                return max(outcome.upstream_calls, after.app_used - before.app_used)
        return max(outcome.upstream_calls, item.estimated_calls)


@dataclass(frozen=True, slots=True)
class AccountReport:
    """Per-account staleness for GetStatus (only accounts with due work)."""

    account_id: str
    due_days: int
    partial: int
    provisional: int
    final: int
    oldest_fetched_at: datetime | None
    max_overdue_s: float
    priority: float
    demand: AccountDemand | None


def account_reports(cands: Sequence[Candidate], demand: Mapping[str, AccountDemand], now: datetime
                    ) -> list[AccountReport]:
    """Due work per account, most urgent first (priority, then overdue)."""
    by: dict[str, list[Candidate]] = {}
    for c in cands:
        by.setdefault(c.item.account_id, []).append(c)
    out = []
    for account_id, cs in by.items():
        count = lambda cls: sum(c.item.day_count for c in cs if c.item.cls is cls)
        fetched = [c.item.oldest_fetched_at for c in cs if c.item.oldest_fetched_at is not None]
        overdue = max(0.0, max((now - c.item.due_at).total_seconds() for c in cs))
        out.append(AccountReport(account_id, sum(c.item.day_count for c in cs), count(FreshnessClass.PARTIAL),
                                 count(FreshnessClass.PROVISIONAL), count(FreshnessClass.FINAL),
                                 min(fetched, default=None), overdue, max(c.score for c in cs),
                                 demand.get(account_id)))
    out.sort(key=lambda r: (-r.priority, -r.max_overdue_s, r.account_id))
    return out

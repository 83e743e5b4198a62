"""Scheduler simulation: 1,000 accounts over a simulated day, on a fast virtual clock (issue 7).

    .venv/bin/python bench/scheduler_simulation.py [--accounts 1000] [--hours 24] [--views 1000] [--seed 7]
                                                   [--scenario as-built|revalidation-capped|no-scheduler|all]

Prints a table per simulated hour and a summary per scenario; writes
everything as JSON to ``bench/results/scheduler_simulation.json``.

What runs is the production scheduler: ``services.scheduler.cycle.CycleRunner``
with ``services.scheduler.planning`` (due work, scores, plan) and
``services.scheduler.budget.allowance``. Only its four ports are fakes, pure
Python and in memory (no sockets, no sleeping):

- ``SimFreshness``: L2's ``fetched_at`` per account-day (the ``freshness`` collection);
- ``SimDemand``: what the gateway's demand tracker reports (reads in the last
  hour, last read, live subscribers);
- ``SimBudget``: the fetchers' shared sliding window of Meta calls, 200 per
  hour for the whole app (Redis in production; ``RedisBudget`` reads it);
- ``SimGateway``: CacheGateway.Refresh (due days only, every day of the range
  when forced) and the gateway's read path: missing days fetched before
  answering, due days answered stale with a background refresh
  (stale-while-revalidate); every Meta call is taken from the same window and
  refused when it is spent, as meta_fetcher does.

Scenarios:

- ``as-built``: the system as it is - the fetchers' budget is first come, first served;
- ``revalidation-capped``: the gateway's background revalidations may use at
  most the on-demand reserve (50 calls per hour); fetching missing days is
  limited only by the app budget. Not built: it shows what that change to
  the gateway/fetcher would give (see the issue report);
- ``no-scheduler``: the baseline - reads alone keep data fresh.

Model (all in ``SimConfig``):

- 1,000 accounts; ads per account log-normal (median 15, about 5 % above
  100, cap 400); a Meta page holds 100 rows, so refreshing d days costs
  ceil(ads × d / 100) calls; account time zones across the Americas, Europe
  and Asia-Pacific.
- Page views: ``views_per_day`` in total (1,000: e.g. 20 people × 50 views;
  ``--views 2500`` shows a day where reads alone exceed the budget),
  spread over accounts by a Zipf law (exponent 1: a few accounts are looked
  at all day, most rarely), in each account's working hours (peaks late
  morning and mid-afternoon, local time). A view reads the last 7 days to
  today (35 %), the last 28 days to today (40 %) or 90 days to yesterday
  (25 %); with probability ``subscribe_probability`` (0.3) the page stays open
  with a live subscription for an exponential time (mean 20 min).
- Before the day, L2 holds each account's last 90 days from a read at a
  random moment of the previous 24 h (and for half of them a later read of
  7 or 28 days); each account was last read at a time drawn from its
  popularity; a ``warmup_hours`` (6) run-in is not measured.

Measures: Meta calls per clock hour (scheduler, on-demand) and the most in
any sliding hour; staleness per freshness class - *age* (now - fetched_at)
and *overdue* (how long a day has been due without a refresh) - sampled
every 5 min for days inside live subscriptions, every 30 min for accounts
read in the last 24 h and hourly for all accounts; reads answered fresh;
subscribed pages fresh; and the guarantee "subscribed ranges are never
staler than their class interval while the budget allows" (checked once a
subscription is older than one cycle interval - the scheduler has had a cycle
to see it - and only when no subscribed work waited for budget in the last cycle).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import random
import sys
import time as wallclock
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.cache_gateway.demand_tracker import AccountDemand  # noqa: E402
from services.common.freshness import FreshnessClass  # noqa: E402
from services.cache_gateway.planner import merge_ranges  # noqa: E402
from services.common.dates import DateRange  # noqa: E402
from services.scheduler.budget import SOURCE_REDIS, BudgetSnapshot  # noqa: E402
from services.scheduler.cycle import CycleRunner, RefreshFailed, RefreshOutcome  # noqa: E402
from services.scheduler.planning import TIER_SUBSCRIBED, AccountFreshness, DueRule, WorkItem  # noqa: E402
from services.scheduler.settings import SchedulerSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scheduler_simulation.json"
TIMEZONES = [("America/Los_Angeles", 0.22), ("America/New_York", 0.22), ("America/Sao_Paulo", 0.06),
             ("Europe/London", 0.12), ("Europe/Berlin", 0.12), ("Asia/Kuala_Lumpur", 0.1), ("Asia/Tokyo", 0.1),
             ("Australia/Sydney", 0.06)]
#: Relative page views per local hour (0-23): working hours, peaks late morning and mid-afternoon.
HOURLY = [0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.1, 0.3, 0.7, 1.0, 1.3, 1.3, 0.9, 1.0, 1.3, 1.2, 1.0, 0.8, 0.5,
          0.3, 0.2, 0.15, 0.1, 0.08]
#: (name, days back from the last day, days the range ends before today, share of views)
RANGES = [("last 7 days", 6, 0, 0.35), ("last 28 days", 27, 0, 0.40), ("90 days to yesterday", 89, 1, 0.25)]
CLASS_NAMES = {FreshnessClass.PARTIAL: "partial", FreshnessClass.PROVISIONAL: "provisional",
               FreshnessClass.FINAL: "final"}
SCENARIOS = {
    "as-built": {"scheduler": True, "revalidate_cap": None},
    "revalidation-capped": {"scheduler": True, "revalidate_cap": "reserve"},
    "no-scheduler": {"scheduler": False, "revalidate_cap": None},
}


@dataclass(frozen=True)
class SimConfig:
    accounts: int = 1000
    hours: float = 24.0
    warmup_hours: float = 6.0
    seed: int = 7
    views_per_day: int = 1000
    subscribe_probability: float = 0.3
    session_minutes: float = 20.0
    zipf_exponent: float = 1.0
    ads_median: float = 15.0
    ads_sigma: float = 1.2
    ads_cap: int = 400
    page_rows: int = 100
    start: str = "2026-03-02T00:00:00+00:00"   # a Monday, 00:00 UTC: the measured day starts here
    app_budget_calls: int = 200
    scheduler_share: int = 150
    interval_s: float = 600.0
    scheduler: bool = True
    revalidate_cap: int | None = None          # calls per window for background revalidation; None = no cap
    measure_all: bool = True                   # False: only the subscribed population (faster, for tests)

    def validate(self) -> "SimConfig":
        if self.accounts < 1 or self.hours <= 0 or self.warmup_hours < 0 or self.views_per_day < 0:
            raise ValueError("accounts >= 1, hours > 0, warmup_hours >= 0 and views_per_day >= 0 are required")
        if not 0 <= self.subscribe_probability <= 1 or self.session_minutes <= 0:
            raise ValueError("subscribe_probability must be in [0, 1] and session_minutes > 0")
        return self


@dataclass
class Account:
    account_id: str
    tz: ZoneInfo
    ads: int
    views_per_day: float
    l2: dict[date, datetime] = field(default_factory=dict)
    reads: deque = field(default_factory=deque)
    last_read_at: datetime | None = None
    subs: list[tuple[datetime, datetime, DateRange]] = field(default_factory=list)  # (start, end, range)


# ---------------------------------------------------------------------------------------- fakes


class SimBudget:
    """The fetchers' shared sliding window of Meta calls (whole app), plus the scheduler's own record.

    ``try_take(calls, who)`` with ``who`` in "scheduler", "missing", "revalidate";
    all-or-nothing (the fetcher takes units page by page; the difference does not matter here).
    """

    def __init__(self, world: "World"):
        self.world = world
        self.settings = world.settings
        self.window = timedelta(seconds=self.settings.budget_window_s)
        self.grants: deque[tuple[datetime, int, str]] = deque()
        self.mine: deque[tuple[datetime, int]] = deque()
        self.used = defaultdict(int)
        self.max_window_total = 0
        self.max_window_scheduler = 0
        self.refused = defaultdict(int)

    def _expire(self, now: datetime) -> None:
        while self.grants and self.grants[0][0] <= now - self.window:
            _, n, who = self.grants.popleft()
            self.used[who] -= n
        while self.mine and self.mine[0][0] <= now - self.window:
            self.mine.popleft()

    def total(self) -> int:
        return sum(self.used.values())

    def try_take(self, calls: int, who: str) -> bool:
        now = self.world.now
        self._expire(now)
        cap = self.world.revalidate_cap
        if self.total() + calls > self.settings.budget_calls or (
                who == "revalidate" and cap is not None and self.used[who] + calls > cap):
            self.refused[who] += 1
            return False
        self.grants.append((now, calls, who))
        self.used[who] += calls
        self.max_window_total = max(self.max_window_total, self.total())
        self.max_window_scheduler = max(self.max_window_scheduler, self.used["scheduler"])
        self.world.count_calls(calls, who)
        return True

    async def snapshot(self) -> BudgetSnapshot:
        self._expire(self.world.now)
        s = self.settings
        return BudgetSnapshot(SOURCE_REDIS, s.budget_calls, s.budget_window_s, self.total(),
                              sum(n for _, n in self.mine), s.share_calls, s.reserve)

    async def record(self, calls: int) -> None:
        if calls > 0:
            self.mine.append((self.world.now, calls))


class SimFreshness:
    def __init__(self, world: "World"):
        self.world = world

    async def load(self, now: datetime) -> list[AccountFreshness]:
        back = [timedelta(days=k) for k in range(self.world.settings.restatement_days + 2)]
        out = []
        for a in self.world.accounts:
            today, l2 = now.astimezone(a.tz).date(), a.l2
            days = {d: l2[d] for k in back if (d := today - k) in l2}
            out.append(AccountFreshness(a.account_id, a.tz.key, days, float(a.ads)))
        return out


class SimDemand:
    def __init__(self, world: "World"):
        self.world = world

    async def load(self, now: datetime) -> dict[str, AccountDemand]:
        out = {}
        hour_ago = now - timedelta(hours=1)
        for a in self.world.accounts:
            while a.reads and a.reads[0] <= hour_ago:
                a.reads.popleft()
            if a.last_read_at is None and not a.subs:
                continue
            out[a.account_id] = AccountDemand(a.account_id, len(a.subs), len(a.reads), a.last_read_at)
        return out


class SimGateway:
    """CacheGateway.Refresh and the read path over the simulated L2 and budget."""

    def __init__(self, world: "World"):
        self.world = world
        self.calls = defaultdict(int)           # by "who:what"

    def _cost(self, a: Account, ranges: list[DateRange]) -> int:
        rows = self.world.cfg.page_rows
        return sum(max(1, math.ceil(a.ads * len(r) / rows)) for r in ranges)

    def _due(self, a: Account, days: list[date], now: datetime) -> list[date]:
        rule, today = self.world.rule, now.astimezone(a.tz).date()
        out = []
        for d in days:
            t = a.l2.get(d)
            if t is None:
                out.append(d)
            else:
                at = rule.due_at(d, t, today, a.tz)
                if at is not None and at <= now:
                    out.append(d)
        return out

    async def refresh(self, item: WorkItem, fencing_token: int) -> RefreshOutcome:
        a = self.world.by_id[item.account_id]
        now = self.world.now
        todo = item.days.days() if item.prefetch else self._due(a, item.days.days(), now)
        if not todo:
            return RefreshOutcome(0, meta_calls=0)
        ranges = merge_ranges(todo)
        cost = self._cost(a, ranges)
        if not self.world.budget.try_take(cost, "scheduler"):
            raise RefreshFailed("RESOURCE_EXHAUSTED", "the app's Meta call budget is spent")
        for d in todo:
            a.l2[d] = now
        self.calls[f"scheduler:{CLASS_NAMES[item.cls]}"] += cost
        return RefreshOutcome(len(ranges), meta_calls=cost)

    def read(self, a: Account, rng: DateRange) -> str:
        """One GetInsights: "fresh", "stale" (served, revalidating) or "failed" (missing days not fetched)."""
        now = self.world.now
        days = rng.days()
        missing = [d for d in days if d not in a.l2]
        if missing:
            cost = self._cost(a, merge_ranges(missing))
            if not self.world.budget.try_take(cost, "missing"):
                return "failed"
            for d in missing:
                a.l2[d] = now
            self.calls["ondemand:missing"] += cost
        due = self._due(a, days, now)
        if not due:
            return "fresh"
        cost = self._cost(a, merge_ranges(due))
        if self.world.budget.try_take(cost, "revalidate"):  # the background refresh; this answer is stale
            for d in due:
                a.l2[d] = now
            self.calls["ondemand:revalidate"] += cost
        return "stale"


# ---------------------------------------------------------------------------------------- the world


def _pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class World:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg.validate()
        self.rng = random.Random(cfg.seed)
        self.settings = SchedulerSettings(interval_s=cfg.interval_s, budget_calls=cfg.app_budget_calls,
                                          share_calls=cfg.scheduler_share, page_limit=cfg.page_rows)
        self.revalidate_cap = cfg.revalidate_cap
        self.rule = DueRule(self.settings.policy)
        self.day_start = datetime.fromisoformat(cfg.start)
        self.now = self.day_start - timedelta(hours=cfg.warmup_hours)
        self.end = self.day_start + timedelta(hours=cfg.hours)
        self.accounts = self._make_accounts()
        self.by_id = {a.account_id: a for a in self.accounts}
        self.budget = SimBudget(self)
        self.gateway = SimGateway(self)
        self.runner = CycleRunner(SimFreshness(self), SimDemand(self), self.budget, self.gateway, self.settings)
        self.events: list = []
        self._seq = 0
        self.hourly = defaultdict(lambda: defaultdict(int))
        self.samples = {pop: {c: {"age": [], "overdue": []} for c in CLASS_NAMES.values()}
                        for pop in ("subscribed", "read_last_24h", "all_accounts")}
        self.reads = defaultdict(int)
        self.sub_samples = 0
        self.sub_fresh = 0
        self.guarantee_checked = 0
        self.guarantee_violations: list[dict] = []
        self.subscribed_waiting_cycles = 0
        self.cycles = 0
        self._subscribed_waiting = False

    # -- setup ------------------------------------------------------------------------------------
    def _make_accounts(self) -> list[Account]:
        cfg, rng = self.cfg, self.rng
        zones = [ZoneInfo(name) for name, _ in TIMEZONES]
        weights = [w for _, w in TIMEZONES]
        harmonic = sum(1 / (r ** cfg.zipf_exponent) for r in range(1, cfg.accounts + 1))
        ranks = list(range(1, cfg.accounts + 1))
        rng.shuffle(ranks)
        out = []
        for i in range(cfg.accounts):
            ads = int(min(cfg.ads_cap, max(1, round(rng.lognormvariate(math.log(cfg.ads_median), cfg.ads_sigma)))))
            rate = cfg.views_per_day / (ranks[i] ** cfg.zipf_exponent) / harmonic
            a = Account(str(100_000_000 + i), rng.choices(zones, weights)[0], ads, rate)
            first_read = self.now - timedelta(seconds=rng.random() * 86400)
            self._prefill(a, first_read, 90)
            if rng.random() < 0.5:
                self._prefill(a, first_read + (self.now - first_read) * rng.random(), rng.choice((7, 28)))
            if rate > 0:  # last read: an exponential gap at the account's rate, at most 30 days ago
                a.last_read_at = self.now - timedelta(seconds=min(30 * 86400, rng.expovariate(rate / 86400)))
            out.append(a)
        return out

    @staticmethod
    def _prefill(a: Account, at: datetime, days: int) -> None:
        """L2 as if the ``days`` days up to yesterday (account zone) had been fetched at ``at`` (UTC)."""
        today = at.astimezone(a.tz).date()
        for back in range(1, days + 1):
            a.l2[today - timedelta(days=back)] = at

    def _push(self, at: datetime, kind: str, payload=None) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, payload))

    def _schedule_views(self) -> None:
        rng, total = self.rng, sum(HOURLY)
        hour = self.now.replace(minute=0, second=0, microsecond=0)
        while hour < self.end:
            for a in self.accounts:
                n = _poisson(rng, a.views_per_day * HOURLY[hour.astimezone(a.tz).hour] / total)
                for _ in range(n):
                    at = hour + timedelta(seconds=rng.random() * 3600)
                    if self.now <= at < self.end:
                        self._push(at, "view", a)
            hour += timedelta(hours=1)

    # -- measurements -----------------------------------------------------------------------------
    def _measured(self) -> bool:
        return self.now >= self.day_start

    def _hour(self) -> int:
        return int((self.now - self.day_start).total_seconds() // 3600)

    def count_calls(self, calls: int, who: str) -> None:
        if self._measured():
            self.hourly[self._hour()]["calls_scheduler" if who == "scheduler" else "calls_ondemand"] += calls

    # -- events -----------------------------------------------------------------------------------
    def _view(self, a: Account) -> None:
        rng = self.rng
        _, back, end_offset, _ = rng.choices(RANGES, [w for *_, w in RANGES])[0]
        until = self.now.astimezone(a.tz).date() - timedelta(days=end_offset)
        days = DateRange(until - timedelta(days=back), until)
        outcome = self.gateway.read(a, days)
        a.reads.append(self.now)
        a.last_read_at = self.now
        if self._measured():
            self.reads[outcome] += 1
            self.hourly[self._hour()]["reads"] += 1
            self.hourly[self._hour()][f"reads_{outcome}"] += 1
        if rng.random() < self.cfg.subscribe_probability:
            sub = (self.now, self.now + timedelta(minutes=rng.expovariate(1 / self.cfg.session_minutes)), days)
            a.subs.append(sub)
            self._push(sub[1], "unsubscribe", (a, sub))

    async def _cycle(self) -> None:
        result = await self.runner.run(self.now, 1, cycle=self.cycles + 1)
        self.cycles += 1
        self._subscribed_waiting = any(i.state != "refreshed" and i.candidate.tier == TIER_SUBSCRIBED
                                       for i in result.items)
        if self._measured():
            self.subscribed_waiting_cycles += self._subscribed_waiting
            h = self.hourly[self._hour()]
            h["cycles"] += 1
            h["scheduler_items"] += len(result.refreshed)
            h["waiting_items"] += len(result.items) - len(result.refreshed)
            h["idle_items"] += len(result.plan.idle)

    def _sample(self, populations: set[str]) -> None:
        now, rule, policy = self.now, self.rule, self.settings.policy
        day_ago = now - timedelta(hours=24)
        interval = {FreshnessClass.PARTIAL: self.settings.partial_interval_s,
                    FreshnessClass.PROVISIONAL: self.settings.provisional_interval_s}
        back = [timedelta(days=k) for k in range(self.settings.restatement_days + 2)]
        subscribed_now = 0
        for a in self.accounts:
            pops = []
            if "all_accounts" in populations:
                pops.append("all_accounts")
            if "read_last_24h" in populations and a.last_read_at is not None and a.last_read_at >= day_ago:
                pops.append("read_last_24h")
            sub_since: dict[date, datetime] = {}
            for start, _, days in a.subs:
                for d in days.days():
                    if d not in sub_since or start < sub_since[d]:
                        sub_since[d] = start
            if not pops and not sub_since:
                continue
            today = now.astimezone(a.tz).date()
            window = {today - k for k in back} if pops else set()
            fresh = True
            for d in window.union(sub_since):
                fetched = a.l2.get(d)
                if fetched is None:
                    fresh = fresh and d not in sub_since
                    continue
                cls = policy.classify(d, today)
                at = rule.due_at(d, fetched, today, a.tz)
                overdue = max(0.0, (now - at).total_seconds()) if at is not None else 0.0
                age = (now - fetched).total_seconds()
                targets = [p for p in pops if d in window]
                if d in sub_since:
                    targets.append("subscribed")
                    fresh = fresh and overdue == 0
                    if cls in interval and (now - sub_since[d]).total_seconds() > self.settings.interval_s \
                            and not self._subscribed_waiting:
                        self.guarantee_checked += 1
                        if age > interval[cls]:
                            self.guarantee_violations.append({"at": now.isoformat(), "account": a.account_id,
                                                              "day": d.isoformat(), "class": CLASS_NAMES[cls],
                                                              "age_s": round(age)})
                for pop in targets:
                    bucket = self.samples[pop][CLASS_NAMES[cls]]
                    bucket["overdue"].append(overdue)
                    if cls is not FreshnessClass.FINAL:
                        bucket["age"].append(age)
            if sub_since:
                subscribed_now += 1
                self.sub_samples += 1
                self.sub_fresh += fresh
        h = self.hourly[self._hour()]
        h["subscribed_accounts"] = max(h["subscribed_accounts"], subscribed_now)

    # -- run --------------------------------------------------------------------------------------
    async def run(self) -> dict:
        self._schedule_views()
        if self.cfg.scheduler:
            t = self.now
            while t < self.end:
                self._push(t, "cycle")
                t += timedelta(seconds=self.settings.interval_s)
        t, k = self.day_start, 0
        while t < self.end:  # samples 1 s after each 5-min mark: just after the cycles' work
            pops = set()
            if self.cfg.measure_all and k % 6 == 0:
                pops.add("read_last_24h")
            if self.cfg.measure_all and k % 12 == 0:
                pops.add("all_accounts")
            self._push(t + timedelta(seconds=1), "sample", pops)
            t += timedelta(seconds=300)
            k += 1
        while self.events:
            at, _, kind, payload = heapq.heappop(self.events)
            self.now = at
            if kind == "view":
                self._view(payload)
            elif kind == "unsubscribe":
                payload[0].subs.remove(payload[1])
            elif kind == "cycle":
                await self._cycle()
            elif kind == "sample":
                self._sample(payload)
        return self.report()

    def report(self) -> dict:
        keys = ("calls_scheduler", "calls_ondemand", "reads", "reads_fresh", "reads_stale", "reads_failed", "cycles",
                "scheduler_items", "waiting_items", "idle_items", "subscribed_accounts")
        per_hour = [{"hour": h, **{k: self.hourly.get(h, {}).get(k, 0) for k in keys}}
                    for h in range(math.ceil(self.cfg.hours))]
        staleness = {}
        for pop, classes in self.samples.items():
            if not any(v["overdue"] for v in classes.values()):
                continue
            staleness[pop] = {}
            for name, values in classes.items():
                ages, over = values["age"], values["overdue"]
                staleness[pop][name] = {
                    "samples": len(over),
                    "max_age_s": round(max(ages, default=0.0)), "p95_age_s": round(_pct(ages, 0.95)),
                    "max_overdue_s": round(max(over, default=0.0)), "p95_overdue_s": round(_pct(over, 0.95)),
                    "overdue_share": round(sum(1 for v in over if v > 0) / len(over), 4) if over else 0.0,
                }
        reads = sum(self.reads.values())
        calls_s = sum(r["calls_scheduler"] for r in per_hour)
        calls_o = sum(r["calls_ondemand"] for r in per_hour)
        return {
            "config": asdict(self.cfg),
            "settings": {"interval_s": self.settings.interval_s, "app_budget_calls": self.settings.budget_calls,
                         "scheduler_share": self.settings.share_calls, "reserve": self.settings.reserve,
                         "pace_calls_per_cycle": self.settings.pace_calls,
                         "partial_interval_s": self.settings.partial_interval_s,
                         "provisional_interval_s": self.settings.provisional_interval_s},
            "per_hour": per_hour,
            "calls": {"scheduler": calls_s, "ondemand": calls_o, "total": calls_s + calls_o,
                      "per_hour_avg": round((calls_s + calls_o) / self.cfg.hours, 1),
                      "max_in_any_hour_total": self.budget.max_window_total,
                      "max_in_any_hour_scheduler": self.budget.max_window_scheduler,
                      "by_kind_incl_warmup": dict(sorted(self.gateway.calls.items())),
                      "refused": dict(sorted(self.budget.refused.items()))},
            "staleness": staleness,
            "demand": {"reads": reads, "reads_fresh": self.reads.get("fresh", 0),
                       "reads_stale": self.reads.get("stale", 0), "reads_failed": self.reads.get("failed", 0),
                       "reads_fresh_pct": round(100 * self.reads.get("fresh", 0) / reads, 2) if reads else 0.0,
                       "subscribed_samples": self.sub_samples,
                       "subscribed_fresh_pct": round(100 * self.sub_fresh / self.sub_samples, 2)
                       if self.sub_samples else 0.0},
            "guarantee": {"checked": self.guarantee_checked, "violations": len(self.guarantee_violations),
                          "first_violations": self.guarantee_violations[:5],
                          "cycles_with_subscribed_work_waiting": self.subscribed_waiting_cycles},
            "cycles": self.cycles,
        }


def simulate(cfg: SimConfig | None = None) -> dict:
    """Run one scenario; returns its report (see the module docstring). Raises ValueError for a bad config."""
    world = World(cfg or SimConfig())
    started = wallclock.perf_counter()
    report = asyncio.run(world.run())
    report["wall_seconds"] = round(wallclock.perf_counter() - started, 2)
    return report


def scenario_config(base: SimConfig, name: str) -> SimConfig:
    spec = SCENARIOS[name]
    cap = spec["revalidate_cap"]
    if cap == "reserve":
        cap = base.app_budget_calls - base.scheduler_share
    return replace(base, scheduler=spec["scheduler"], revalidate_cap=cap)


# ---------------------------------------------------------------------------------------- output


def print_hours(report: dict) -> None:
    print(f"{'hour':>4} {'sched':>6} {'ondem':>6} {'total':>6} {'reads':>6} {'fresh%':>7} {'subs':>5} "
          f"{'refr':>5} {'wait':>6} {'idle':>5}")
    for r in report["per_hour"]:
        fresh = 100 * r["reads_fresh"] / r["reads"] if r["reads"] else 0.0
        print(f"{r['hour']:>4} {r['calls_scheduler']:>6} {r['calls_ondemand']:>6} "
              f"{r['calls_scheduler'] + r['calls_ondemand']:>6} {r['reads']:>6} {fresh:>6.1f}% "
              f"{r['subscribed_accounts']:>5} {r['scheduler_items']:>5} {r['waiting_items']:>6} {r['idle_items']:>5}")
    print("  (sched/ondem/total: Meta calls in the clock hour; subs: most accounts with a live page; "
          "refr/wait/idle: scheduler work items refreshed / left waiting (summed over the hour's cycles) / "
          "skipped as nobody looks)")


def print_summary(name: str, report: dict) -> None:
    c, d, g = report["calls"], report["demand"], report["guarantee"]
    print(f"\n== {name}: {report['config']['accounts']} accounts, {report['config']['hours']:g} h "
          f"(+{report['config']['warmup_hours']:g} h warm-up), {report['cycles']} cycles, "
          f"{report['wall_seconds']} s wall clock")
    print(f"Meta calls: {c['total']} ({c['per_hour_avg']}/h; scheduler {c['scheduler']}, on-demand {c['ondemand']}); "
          f"most in any sliding hour: {c['max_in_any_hour_total']} total (app budget "
          f"{report['settings']['app_budget_calls']}), {c['max_in_any_hour_scheduler']} by the scheduler (share "
          f"{report['settings']['scheduler_share']}); refused: {c['refused'] or 'none'}")
    print(f"{'population':<15} {'class':<12} {'max age':>9} {'p95 age':>9} {'max overdue':>12} {'p95 overdue':>12} "
          f"{'overdue%':>9} {'samples':>9}")
    for pop, classes in report["staleness"].items():
        for cls, s in classes.items():
            age = f"{s['max_age_s']:>9} {s['p95_age_s']:>9}" if cls != "final" else f"{'-':>9} {'-':>9}"
            print(f"{pop:<15} {cls:<12} {age} {s['max_overdue_s']:>12} {s['p95_overdue_s']:>12} "
                  f"{100 * s['overdue_share']:>8.1f}% {s['samples']:>9}")
    print(f"demand served fresh: {d['reads_fresh_pct']} % of {d['reads']} reads ({d['reads_stale']} stale, "
          f"revalidating; {d['reads_failed']} failed); live pages fresh in {d['subscribed_fresh_pct']} % of "
          f"{d['subscribed_samples']} samples")
    print(f"guarantee (live pages never staler than their class interval while the budget allows): "
          f"{g['violations']} violation(s) in {g['checked']} checks; cycles where live-page work waited for "
          f"budget: {g['cycles_with_subscribed_work_waiting']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Scheduler simulation (see the module docstring)")
    p.add_argument("--accounts", type=int, default=SimConfig.accounts)
    p.add_argument("--hours", type=float, default=SimConfig.hours)
    p.add_argument("--views", type=int, default=SimConfig.views_per_day, help="page views per day, all accounts")
    p.add_argument("--seed", type=int, default=SimConfig.seed)
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    try:
        base = SimConfig(accounts=args.accounts, hours=args.hours, views_per_day=args.views, seed=args.seed).validate()
    except ValueError as exc:
        p.error(str(exc))
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports = {}
    for name in names:
        reports[name] = simulate(scenario_config(base, name))
        if name == names[0]:
            print(f"scenario {name} - per simulated hour:")
            print_hours(reports[name])
        print_summary(name, reports[name])
    if len(reports) > 1:
        print(f"\n{'scenario':<20} {'calls/h':>8} {'max/h':>6} {'sched':>6} {'ondem':>6} {'reads fresh':>12} "
              f"{'live fresh':>11} {'live p95 age partial':>21}")
        for name, r in reports.items():
            sub = r["staleness"].get("subscribed", {}).get("partial", {})
            print(f"{name:<20} {r['calls']['per_hour_avg']:>8} {r['calls']['max_in_any_hour_total']:>6} "
                  f"{r['calls']['scheduler']:>6} {r['calls']['ondemand']:>6} {r['demand']['reads_fresh_pct']:>11}% "
                  f"{r['demand']['subscribed_fresh_pct']:>10}% {sub.get('p95_age_s', 0):>20}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scenarios": reports}, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one scheduler cycle refreshes: pure functions, shared by production and the simulation.

Input per cycle: each account's freshness (when each day of its restatement
window was last fetched, ``AccountFreshness``), its demand (``AccountDemand``
from the gateway's demand tracker), and the budget the scheduler may spend
(``Allowance``, from ``budget.py``). Output: a ``Plan`` - the work items to hand
to CacheGateway.Refresh, in order, and the ones left waiting.

1. ``due_work``: per account, the days due now (``FreshnessPolicy.due_at``,
   the gateway's own rule), merged per freshness class into contiguous ranges.
   Accounts with live subscribers also get the days that will be due before
   the next cycle (``horizon_s`` = the interval; such a *prefetch* item is sent
   with ``force`` since the gateway alone would skip days not due yet): a live
   page is then never older than its class interval while the budget allows.
   Accounts read in the last hour look ahead for provisional days only: the
   next read would pay for that refresh anyway (stale-while-revalidate), so
   doing it first costs the same and answers fresh; today's 15-minute refreshes
   are not worth prefetching without a live page. When the account's
   last stored day was fetched while it was still "today" (its readers look at
   today) and a new day has started, the days since count as due, so the
   window keeps rolling; days never asked for otherwise are left to the
   gateway's on-demand path.
2. ``estimate_calls``: Meta calls a range costs - pages of ``page_limit`` rows
   (ads x days), at least one. ``rows_per_day`` comes from L2 (ads seen per day).
3. ``score``: demand weight x class weight x staleness factor.
   Demand: live subscribers dominate (10 + 2·log2(1+subscribers)), then reads in
   the last hour (2·log2(1+reads)), then how recently the account was read
   (e^(−age/6 h)); an account unread for ``idle_after_s`` with no subscribers
   scores 0 and is not refreshed by the scheduler (its next reader triggers an
   on-demand refresh); an account with no demand record at all (demand not
   tracked) gets ``UNKNOWN_DEMAND_WEIGHT``. Class: partial 3 > provisional 2 >
   final 1 (issue 7). Staleness: 1 + overdue / class interval, clamped to
   [0.1, 10] (a prefetch not yet due scores below 1).
4. ``plan_cycle``: greedy in score order, live pages first; an item is taken
   when its estimated calls fit its tier's limit (live pages: everything the
   scheduler may still spend; recently read accounts: ``burst`` cycles' worth;
   the rest: one cycle's pace - both only from what is left once live pages
   have what they need for a whole window), otherwise it waits ("deferred")
   and smaller items may still fit.

The weights are design choices, not measured constants; the simulation
(``bench/scheduler_simulation.py``) shows their effect on a 1,000-account day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from services.cache_gateway.demand_tracker import AccountDemand
from services.common.freshness import FreshnessClass, FreshnessPolicy
from services.common.dates import DateRange, zone

CLASS_WEIGHT = {FreshnessClass.PARTIAL: 3.0, FreshnessClass.PROVISIONAL: 2.0, FreshnessClass.FINAL: 1.0}
#: Weight of an account the demand tracker has never seen (demand not wired, or data from before it).
UNKNOWN_DEMAND_WEIGHT = 0.1
RECENCY_HALF_LIFE_S = 6 * 3600.0
#: Tiers of ``plan_cycle``: 0 live subscribers, 1 read recently (last hour or last 24 h), 2 the rest.
TIER_SUBSCRIBED, TIER_RECENT, TIER_BACKGROUND = 0, 1, 2
RECENT_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class AccountFreshness:
    """What L2 knows of one account: ``fetched_at`` per day of (at least) its restatement window.

    ``timezone``: IANA name ("" = UTC); ``rows_per_day``: rows Meta returns per
    day (about the number of active ads), for call estimates.
    """

    account_id: str
    timezone: str
    fetched_at: Mapping[date, datetime]
    rows_per_day: float = 1.0


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One contiguous range of due days of one freshness class, refreshed by one Refresh call."""

    account_id: str
    days: DateRange
    cls: FreshnessClass
    due_at: datetime                  # earliest due moment among its days (may be after ``now``: a prefetch)
    oldest_fetched_at: datetime | None
    estimated_calls: int
    day_count: int
    prefetch: bool = False            # some day is not due yet: ask the gateway to force-refresh the range
    calls_per_day: float = 0.0        # rows per day / page limit: what one more day costs (for ``split``)

    def split(self, calls: int) -> "tuple[WorkItem, WorkItem] | None":
        """The most recent days that fit in ``calls`` Meta calls, and the rest; None when not even one day fits
        (or the range has one day). The recent days go first: they are the likeliest to have changed."""
        if self.day_count < 2 or calls < 1:
            return None
        fit = self.day_count - 1 if self.calls_per_day <= 0 else min(self.day_count - 1,
                                                                      int(calls / self.calls_per_day))
        if fit < 1:
            return None
        cut = self.days.until - timedelta(days=fit - 1)
        head = replace(self, days=DateRange(cut, self.days.until), day_count=fit,
                       estimated_calls=max(1, math.ceil(fit * self.calls_per_day)))
        rest = replace(self, days=DateRange(self.days.since, cut - timedelta(days=1)), day_count=self.day_count - fit,
                       estimated_calls=max(1, math.ceil((self.day_count - fit) * self.calls_per_day)))
        return head, rest


@dataclass(frozen=True, slots=True)
class Allowance:
    """Calls the scheduler may spend in this cycle, per tier (see ``budget.allowance``)."""

    hard: int        # live-page work: everything left of the share, never the on-demand reserve
    burst: int       # recently read work
    paced: int       # everything else: one cycle's share of the window
    cycles_per_window: float = 1.0   # budget window / cycle interval (6 for 3600 s / 600 s)


@dataclass(slots=True)
class Candidate:
    item: WorkItem
    score: float
    tier: int
    demand_weight: float


@dataclass(slots=True)
class Plan:
    """The outcome of ``plan_cycle``: ``chosen`` in order, ``deferred`` (budget), ``idle`` (nobody looks)."""

    chosen: list[Candidate] = field(default_factory=list)
    deferred: list[Candidate] = field(default_factory=list)
    idle: list[Candidate] = field(default_factory=list)
    estimated_calls: int = 0

    @property
    def due_items(self) -> int:
        return len(self.chosen) + len(self.deferred) + len(self.idle)


def class_interval_s(cls: FreshnessClass, policy: FreshnessPolicy) -> float:
    """The refresh interval of a class in seconds (FINAL uses the provisional interval as its yardstick)."""
    return policy.partial_interval_s if cls is FreshnessClass.PARTIAL else policy.provisional_interval_s


def estimate_calls(days: int, rows_per_day: float, page_limit: int = 100) -> int:
    """Meta HTTP requests for ``days`` days of an account with ``rows_per_day`` rows a day: pages, at least 1.

    Raises ValueError for ``days`` < 1, ``page_limit`` < 1 or a negative/NaN ``rows_per_day``.
    """
    if days < 1 or page_limit < 1 or not (rows_per_day >= 0):
        raise ValueError(f"estimate_calls needs days >= 1, page_limit >= 1, rows_per_day >= 0 "
                         f"(got {days}, {page_limit}, {rows_per_day})")
    return max(1, math.ceil(days * rows_per_day / page_limit))


class DueRule:
    """``FreshnessPolicy.due_at`` for many days at once: same answers, midnights cached (in UTC).

    ``due_at(day, fetched_at, today, tz)`` where ``today`` is ``now`` in ``tz``.
    """

    def __init__(self, policy: FreshnessPolicy):
        self.policy = policy
        self.restatement_days = policy.restatement_days
        self.partial = timedelta(seconds=policy.partial_interval_s)
        self.provisional = timedelta(seconds=policy.provisional_interval_s)
        self._finalised: dict[tuple[date, str], datetime] = {}
        self._by_offset: dict[tuple[date, str], list[datetime]] = {}

    def finalised_at(self, day: date, tz: ZoneInfo) -> datetime:
        """``policy.finalised_at`` as a UTC datetime (cached)."""
        key = (day, tz.key)
        at = self._finalised.get(key)
        if at is None:
            if len(self._finalised) > 100_000:
                self._finalised.clear()
            at = self._finalised[key] = self.policy.finalised_at(day, tz).astimezone(timezone.utc)
        return at

    def finalised_by_offset(self, today: date, tz: ZoneInfo) -> list[datetime]:
        """``finalised_at(today - k)`` for k = 0 .. restatement_days + 2 (cached per today and zone)."""
        key = (today, tz.key)
        out = self._by_offset.get(key)
        if out is None:
            if len(self._by_offset) > 10_000:
                self._by_offset.clear()
            out = self._by_offset[key] = [self.finalised_at(today - timedelta(days=k), tz)
                                          for k in range(self.restatement_days + 3)]
        return out

    def due_at(self, day: date, fetched_at: datetime, today: date, tz: ZoneInfo) -> datetime | None:
        finalised = self.finalised_at(day, tz)
        offset = (today - day).days
        if offset > self.restatement_days:
            return None if fetched_at >= finalised else fetched_at
        at = fetched_at + (self.partial if offset <= 0 else self.provisional)
        return at if at < finalised else finalised


def due_work(view: AccountFreshness, policy: FreshnessPolicy, now: datetime, horizon_s: float = 0.0,
             page_limit: int = 100, max_range_days: int = 90, rule: DueRule | None = None,
             horizons: Mapping[FreshnessClass, float] | None = None) -> list[WorkItem]:
    """The account's due ranges at ``now`` (aware), one class per range; see the module docstring.

    A day is due when ``policy.due_at`` (the gateway's rule) is at or before
    ``now + horizon`` (``horizons[class]`` when given, else ``horizon_s``); a
    day whose only reason is that it becomes final is not fetched ahead (a
    read before it is final would not settle it). ``WorkItem.prefetch`` is set
    when some day of the range is not due yet. Raises ValueError for a naive
    ``now`` or a negative horizon.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    h = {cls: (horizons or {}).get(cls, horizon_s) for cls in FreshnessClass}
    if min(h.values()) < 0:
        raise ValueError("horizons must be >= 0")
    if not view.fetched_at:
        return []
    rule = rule or DueRule(policy)
    tz = zone(view.timezone)
    today = now.astimezone(tz).date()
    limit_partial = now + timedelta(seconds=h[FreshnessClass.PARTIAL])
    limit_provisional = now + timedelta(seconds=h[FreshnessClass.PROVISIONAL])
    restatement, partial_iv, provisional_iv = rule.restatement_days, rule.partial, rule.provisional
    finals = rule.finalised_by_offset(today, tz)   # finalised_at of the day ``offset`` days before today
    n_finals = len(finals)
    partial: list[tuple[date, datetime, datetime | None]] = []      # (day, due at, fetched at) per class
    provisional: list[tuple[date, datetime, datetime | None]] = []
    final: list[tuple[date, datetime, datetime | None]] = []
    for day, fetched in view.fetched_at.items():  # inlined DueRule.due_at: this loop runs for every account-day
        offset = (today - day).days
        if offset < 0:
            continue
        finalised = finals[offset] if offset < n_finals else rule.finalised_at(day, tz)
        if offset > restatement:
            if fetched < finalised:
                final.append((day, fetched, fetched))
            continue
        if offset == 0:
            at, limit, bucket = fetched + partial_iv, limit_partial, partial
        else:
            at, limit, bucket = fetched + provisional_iv, limit_provisional, provisional
        if at < finalised and at <= limit:  # else: not due within the horizon, or only because it becomes final
            bucket.append((day, at, fetched))
    last = max(view.fetched_at)
    if (today - timedelta(days=restatement) <= last < today
            and view.fetched_at[last] < datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)):
        # the last day was fetched while it was "today": readers look at today, and a new day started
        for offset in range(1, (today - last).days + 1):
            day = last + timedelta(days=offset)
            bucket = partial if policy.classify(day, today) is FreshnessClass.PARTIAL else provisional
            bucket.append((day, min(now, datetime.combine(day, time(0), tzinfo=tz)), None))
    items: list[WorkItem] = []
    one_day = timedelta(days=1)
    for cls, entries in ((FreshnessClass.PARTIAL, partial), (FreshnessClass.PROVISIONAL, provisional),
                         (FreshnessClass.FINAL, final)):
        if not entries:
            continue
        entries.sort(key=lambda e: e[0])
        run: list[tuple[date, datetime, datetime | None]] = []
        for entry in entries + [None]:  # contiguous runs of at most max_range_days (planner.merge_ranges)
            if entry is not None and run and entry[0] == run[-1][0] + one_day and len(run) < max_range_days:
                run.append(entry)
                continue
            if run:
                times = [e[1] for e in run]
                fetched = [e[2] for e in run if e[2] is not None]
                items.append(WorkItem(view.account_id, DateRange(run[0][0], run[-1][0]), cls, min(times),
                                      min(fetched, default=None),
                                      estimate_calls(len(run), view.rows_per_day, page_limit), len(run),
                                      max(times) > now, view.rows_per_day / page_limit))
            run = [entry] if entry is not None else []
    items.sort(key=lambda i: (i.days.since, i.cls))
    return items


def demand_weight(demand: AccountDemand | None, now: datetime, idle_after_s: float = 7 * 86400) -> float:
    """How much people look at an account (module docstring, step 3); 0 = idle, not refreshed."""
    if demand is None:
        return UNKNOWN_DEMAND_WEIGHT
    weight = 0.0
    if demand.subscribers > 0:
        weight += 10.0 + 2.0 * math.log2(1 + demand.subscribers)
    if demand.reads_last_hour > 0:
        weight += 2.0 * math.log2(1 + demand.reads_last_hour)
    if demand.last_read_at is not None:
        age = max(0.0, (now - demand.last_read_at).total_seconds())
        if age < idle_after_s:
            weight += math.exp(-age / RECENCY_HALF_LIFE_S) + 1e-6  # read within idle_after: never exactly 0
    return weight


def tier_of(demand: AccountDemand | None, now: datetime) -> int:
    """``TIER_SUBSCRIBED``, ``TIER_RECENT`` (read in the last hour or 24 h) or ``TIER_BACKGROUND``."""
    if demand is None:
        return TIER_BACKGROUND
    if demand.subscribers > 0:
        return TIER_SUBSCRIBED
    if demand.reads_last_hour > 0 or (
            demand.last_read_at is not None and (now - demand.last_read_at).total_seconds() < RECENT_S):
        return TIER_RECENT
    return TIER_BACKGROUND


def score(item: WorkItem, weight: float, policy: FreshnessPolicy, now: datetime) -> float:
    """demand weight × class weight × staleness factor (1 + overdue/class interval, clamped to [0.1, 10])."""
    overdue = (now - item.due_at).total_seconds()
    staleness = min(10.0, max(0.1, 1.0 + overdue / class_interval_s(item.cls, policy)))
    return weight * CLASS_WEIGHT[item.cls] * staleness


def candidates(views: Iterable[AccountFreshness], demand: Mapping[str, AccountDemand], policy: FreshnessPolicy,
               now: datetime, interval_s: float, idle_after_s: float = 7 * 86400, page_limit: int = 100
               ) -> list[Candidate]:
    """Due work of every account, scored (subscribed accounts look ``interval_s`` ahead)."""
    out = []
    rule = DueRule(policy)
    for view in views:
        d = demand.get(view.account_id)
        weight = demand_weight(d, now, idle_after_s)
        tier = tier_of(d, now)
        if tier == TIER_SUBSCRIBED:
            horizons = {FreshnessClass.PARTIAL: interval_s, FreshnessClass.PROVISIONAL: interval_s}
        elif d is not None and d.reads_last_hour > 0:
            horizons = {FreshnessClass.PROVISIONAL: interval_s}
        else:
            horizons = None
        for item in due_work(view, policy, now, 0.0, page_limit, rule=rule, horizons=horizons):
            out.append(Candidate(item, score(item, weight, policy, now), tier, weight))
    return out


def plan_cycle(cands: Sequence[Candidate], allowance: Allowance) -> Plan:
    """Choose what to refresh this cycle (module docstring, step 4). Deterministic for equal inputs.

    Live-page work is planned first, best score first, within ``allowance.hard``. Live pages
    come back every cycle, so the other tiers only get what would still be left if this
    cycle's live-page calls recurred for a whole budget window (``cycles_per_window`` × them),
    each within its own tier limit (``burst`` for recently read accounts, ``paced`` for the rest).
    An item larger than what is left is split (``WorkItem.split``): its most recent days go now,
    the rest waits - so a large account is refreshed over a few cycles instead of never.
    """
    plan = Plan()
    order = lambda c: (-c.score, c.item.due_at, c.item.account_id, c.item.days.since, c.item.days.until,
                       c.item.cls, c.tier, -c.demand_weight, c.item.estimated_calls)
    live = sorted((c for c in cands if c.tier == TIER_SUBSCRIBED and c.demand_weight > 0), key=order)
    rest = sorted((c for c in cands if c.tier != TIER_SUBSCRIBED or c.demand_weight <= 0), key=order)

    def take(cand: Candidate, left: int) -> int:
        """Plan ``cand`` (or the part of it that fits in ``left`` calls); returns the calls planned."""
        if cand.item.estimated_calls <= left:
            plan.chosen.append(cand)
            return cand.item.estimated_calls
        parts = cand.item.split(left)
        if parts is None:
            plan.deferred.append(cand)
            return 0
        plan.chosen.append(replace(cand, item=parts[0]))
        plan.deferred.append(replace(cand, item=parts[1]))
        return parts[0].estimated_calls

    spent = 0
    for cand in live:
        spent += take(cand, allowance.hard - spent)
    room = max(0, allowance.hard - math.ceil(spent * allowance.cycles_per_window))
    limits = {TIER_RECENT: min(room, allowance.burst), TIER_BACKGROUND: min(room, allowance.paced)}
    others = 0
    for cand in rest:
        if cand.demand_weight <= 0:
            plan.idle.append(cand)
        else:
            others += take(cand, limits[cand.tier] - others)
    plan.estimated_calls = spent + others
    return plan

"""The simulated ``/ad-fatigue`` working day, driven over loopback by a bounded asyncio load generator.

Page: one load of the page issues the 8 widget requests a real page makes at
once — ``GetInsights`` and ``GetFatigue`` for each of the overlapping ranges
*last 7 days*, *last 14 days*, *last 28 days* (Meta's ``last_Nd`` presets: N
days ending yesterday in the account's time zone) and *lifetime* (the
account's first day to yesterday), every field (empty field selection).

Day: 09:00-17:00 (8 h) compressed into ``day_seconds`` of wall time (factor
``F = 28,800 / day_seconds``); arrival times are seeded, drawn per account
from an hourly profile (morning peak, lunch dip). While a page is open (a
lognormal 2-120 simulated minutes, median 20) it holds a ``Subscribe`` stream
on the account's last 28 days (only the gateway has one; the alternatives
have no push). Restatements arrive at seeded times: ``/_sandbox/restate``
adds 1,000 leads to every ad of one provisional day of one account; for the
gateway they then reach users through ``Refresh(force=True)`` of that day with
an operator token (what the scheduler's next refresh of a due day does, without
waiting for it). Every time setting of the gateway and of the TTL cache is
divided by F (so "6 h" still means 6 simulated hours); Meta's latency is not
scaled (it is a fixed, documented per-call delay).

Bounds: at most ``max_inflight`` widget requests in flight (a semaphore); a
request's latency is measured from when it is sent (after the semaphore), the
page time from the page's scheduled arrival (so queueing shows there).

Stale answers: every GetInsights answer whose range holds a restated day is
decoded; ``floor(leads / 1000)`` on that day is the number of restatements
it reflects. It is *behind* when the sandbox had acknowledged more
restatements of that day before the request was sent; *silent* when behind
and not marked ``STALE_*`` in its freshness. GetFatigue answers are not
checked (their content does not expose leads directly).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import grpc
import httpx

from bench.accounts import RESTATE_LEADS, BenchAccount
from bench.common import GatewayClient, call_with_tier, cpu_delta, percentiles, stats_delta
from bench.system import WORK_DAY_S, BenchSystem
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw

RANGES = ("7d", "14d", "28d", "lifetime")
WIDGETS = tuple((kind, rng) for rng in RANGES for kind in ("insights", "fatigue"))
#: Relative page traffic per hour 09-10 ... 16-17.
HOURLY_WEIGHTS = (0.9, 1.4, 1.3, 1.0, 0.5, 1.1, 1.2, 0.8)
FRESH = 1


def page_ranges(account: BenchAccount) -> dict[str, tuple[str, str]]:
    until = account.last_day
    out = {f"{n}d": ((until - timedelta(days=n - 1)).isoformat(), until.isoformat()) for n in (7, 14, 28)}
    out["lifetime"] = (account.first_day.isoformat(), until.isoformat())
    return out


def widget_request(kind: str, account_id: str, since: str, until: str, page_size: int = 0):
    if kind == "insights":
        return gw.GetInsightsRequest(account_id=account_id, since=since, until=until, page_size=page_size)
    return gw.GetFatigueRequest(account_id=account_id, since=since, until=until)


def method_name(kind: str) -> str:
    return "GetInsights" if kind == "insights" else "GetFatigue"


@dataclass(frozen=True)
class PageLoad:
    at_s: float          # wall seconds after the day starts
    account: BenchAccount
    open_s: float        # wall seconds the page stays open
    user: int


@dataclass(frozen=True)
class Restatement:
    at_s: float
    account: BenchAccount
    day: date


@dataclass
class Schedule:
    loads: list[PageLoad]
    restatements: list[Restatement]
    day_s: float

    @property
    def compression(self) -> float:
        return WORK_DAY_S / self.day_s


def make_schedule(accounts: list[BenchAccount], page_loads: int, day_s: float, restatements: int,
                  seed: int = 1) -> Schedule:
    """``page_loads`` spread round-robin over a seeded shuffle of the accounts (with fewer loads than
    accounts, only some accounts are looked at that day), times from the hourly profile."""
    rng = random.Random(seed)
    f = WORK_DAY_S / day_s
    order = list(accounts)
    rng.shuffle(order)
    loads = []
    for i in range(page_loads):
        account = order[i % len(order)]
        hour = rng.choices(range(8), weights=HOURLY_WEIGHTS)[0]
        sim_s = (hour + rng.random()) * 3600
        open_sim_s = min(120 * 60.0, max(120.0, rng.lognormvariate(math.log(20 * 60), 0.8)))
        loads.append(PageLoad(sim_s / f, account, open_sim_s / f, i // len(order)))
    loads.sort(key=lambda p: p.at_s)
    rest = []
    visited = list({p.account.account_id: p.account for p in loads}.values()) or list(accounts)
    for _ in range(restatements):
        account = rng.choice(visited)  # Meta restates every account; only the ones looked at matter here
        rest.append(Restatement(rng.uniform(0.03, 0.97) * day_s, account,
                                account.last_day - timedelta(days=rng.randint(1, 26))))
    rest.sort(key=lambda r: r.at_s)
    return Schedule(loads, rest, day_s)


def subset(schedule: Schedule, accounts: list[BenchAccount]) -> Schedule:
    """The part of a schedule that concerns ``accounts`` (the baseline contenders' sample)."""
    keep = {a.account_id for a in accounts}
    return Schedule([p for p in schedule.loads if p.account.account_id in keep],
                    [r for r in schedule.restatements if r.account.account_id in keep], schedule.day_s)


class Truth:
    """Restatements the sandbox acknowledged, with when (time.monotonic); kept across contenders."""

    def __init__(self):
        self.acks: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.by_account: dict[str, set[str]] = defaultdict(set)

    def add(self, account_id: str, day: str, at: float) -> None:
        self.acks[(account_id, day)].append(at)
        self.by_account[account_id].add(day)

    def expected(self, account_id: str, day: str, before: float) -> int:
        return sum(1 for t in self.acks.get((account_id, day), ()) if t <= before)

    def last_ack(self, account_id: str, day: str, before: float) -> float | None:
        times = [t for t in self.acks.get((account_id, day), ()) if t <= before]
        return max(times) if times else None

    def days_in(self, account_id: str, since: str, until: str) -> list[str]:
        return [d for d in self.by_account.get(account_id, ()) if since <= d <= until]


def restatements_reflected(rows, day: str) -> int:
    seen = 0
    for row in rows:
        if row.date_start == day:
            lead = row.actions.get("lead")
            if lead is not None:
                seen = max(seen, int(Decimal(lead)) // RESTATE_LEADS)
    return seen


@dataclass
class Recorder:
    """Everything measured in one phase of one contender."""

    requests: list[tuple] = field(default_factory=list)  # (t_send, latency_s, kind, range, code, tier, status)
    page_times: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    checked: int = 0
    behind: int = 0
    behind_marked: int = 0
    marked_stale: int = 0
    refresh_latency: list[float] = field(default_factory=list)
    refresh_upstream_calls: int = 0
    restated: int = 0
    subs_opened: int = 0
    subs_failed: int = 0
    snapshot_latency: list[float] = field(default_factory=list)
    sub_events: int = 0
    restate_to_page: list[float] = field(default_factory=list)
    schedule_lag: float = 0.0


class Contender:
    """One contender as the load generator sees it: an address, and whether it has Refresh/Subscribe."""

    def __init__(self, name: str, label: str, address: str, gateway: bool, channels: int = 4):
        self.name = name
        self.label = label
        self.address = address
        self.gateway = gateway
        self.client = GatewayClient(address, channels)

    async def close(self) -> None:
        await self.client.close()


class DayRunner:
    def __init__(self, system: BenchSystem, contender: Contender, truth: Truth, *, max_inflight: int = 64,
                 request_timeout_s: float = 120.0):
        self.system = system
        self.c = contender
        self.truth = truth
        self.sem = asyncio.Semaphore(max_inflight)
        self.timeout = request_timeout_s
        self.md = system.user_md

    # -- one widget -----------------------------------------------------------------------------
    async def widget(self, rec: Recorder, account: BenchAccount, kind: str, rng: str, check: bool = True) -> None:
        since, until = page_ranges(account)[rng]
        request = widget_request(kind, account.account_id, since, until)
        async with self.sem:
            t_send = time.monotonic()
            try:
                payload, tier = await call_with_tier(self.c.client.method(method_name(kind)), request, self.md,
                                                     self.timeout)
            except grpc.aio.AioRpcError as exc:
                rec.errors[exc.code().name] += 1
                rec.requests.append((t_send, time.monotonic() - t_send, kind, rng, exc.code().name, "", 0))
                return
            latency = time.monotonic() - t_send
        status = 0
        if check:
            if kind == "insights":
                reply = gw.GetInsightsResponse.FromString(payload)
                status = reply.freshness.status
                days = self.truth.days_in(account.account_id, since, until)
                if days:
                    rec.checked += 1
                    if any(restatements_reflected(reply.rows, d) < self.truth.expected(account.account_id, d, t_send)
                           for d in days):
                        rec.behind += 1
                        if status > FRESH:
                            rec.behind_marked += 1
            else:
                status = gw.GetFatigueResponse.FromString(payload).freshness.status
            if status > FRESH:
                rec.marked_stale += 1
        rec.requests.append((t_send, latency, kind, rng, "OK", tier, status))

    async def page(self, rec: Recorder, load: PageLoad, arrival: float, subscribe: bool) -> None:
        sub = None
        if subscribe and self.c.gateway:
            sub = asyncio.ensure_future(self.subscription(rec, load))
        await asyncio.gather(*(self.widget(rec, load.account, kind, rng) for kind, rng in WIDGETS))
        rec.page_times.append(time.monotonic() - arrival)
        if sub is not None:
            await sub

    async def subscription(self, rec: Recorder, load: PageLoad) -> None:
        since, until = page_ranges(load.account)["28d"]
        opened = time.monotonic()
        call = self.c.client.method("Subscribe")(
            gw.SubscribeRequest(account_id=load.account.account_id, since=since, until=until),
            metadata=self.md, timeout=load.open_s + 60)
        events: list[tuple[float, bytes]] = []
        rec.subs_opened += 1

        async def read() -> None:
            async for raw in call:
                events.append((time.monotonic(), raw))

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(load.open_s)
        call.cancel()
        try:
            await reader
        except (asyncio.CancelledError, grpc.aio.AioRpcError) as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() != grpc.StatusCode.CANCELLED:
                rec.subs_failed += 1
        if events:
            rec.snapshot_latency.append(events[0][0] - opened)
        for t, raw in events[1:]:
            event = gw.SubscribeEvent.FromString(raw)
            rec.sub_events += 1
            for day in {r.date_start for r in event.rows}:
                ack = self.truth.last_ack(load.account.account_id, day, t)
                if ack is not None and ack >= opened and restatements_reflected(event.rows, day):
                    rec.restate_to_page.append(t - ack)

    async def restate(self, rec: Recorder, http: httpx.AsyncClient, r: Restatement) -> None:
        day = r.day.isoformat()
        changed = await self.system.restate(http, r.account.account_id, day, RESTATE_LEADS)
        if not changed:
            return
        self.truth.add(r.account.account_id, day, time.monotonic())
        rec.restated += 1
        if self.c.gateway:
            t = time.monotonic()
            try:
                reply = await self.c.client.method("Refresh")(
                    gw.RefreshRequest(account_id=r.account.account_id, since=day, until=day, force=True),
                    metadata=self.system.operator_md, timeout=self.timeout)
                rec.refresh_latency.append(time.monotonic() - t)
                rec.refresh_upstream_calls += reply.upstream_calls
            except grpc.aio.AioRpcError as exc:
                rec.errors[f"Refresh:{exc.code().name}"] += 1

    # -- phases ---------------------------------------------------------------------------------
    async def warmup(self, accounts: list[BenchAccount], pages_in_parallel: int = 8,
                     timeout_s: float = 600.0) -> tuple[Recorder, float, int]:
        """Every account's page loaded once (not part of the day: the day starts warm, as day 2 would).

        Returns (recorder, wall seconds, accounts not warmed within ``timeout_s``)."""
        rec = Recorder()
        gate = asyncio.Semaphore(pages_in_parallel)
        t0 = time.monotonic()
        done_accounts = 0

        async def one(account: BenchAccount) -> None:
            nonlocal done_accounts
            async with gate:
                await self.page(rec, PageLoad(0, account, 0, -1), time.monotonic(), subscribe=False)
            done_accounts += 1

        saved, self.timeout = self.timeout, timeout_s
        tasks = [asyncio.ensure_future(one(a)) for a in accounts]
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self.timeout = saved
        return rec, time.monotonic() - t0, len(accounts) - done_accounts

    async def day(self, schedule: Schedule, subscribe: bool = True, on_hour=None,
                  max_overrun_s: float | None = None) -> tuple[Recorder, float, int]:
        """Play the schedule; returns (recorder, wall seconds, page loads not finished in time)."""
        rec = Recorder()
        events = sorted([(p.at_s, 0, p) for p in schedule.loads] + [(r.at_s, 1, r) for r in schedule.restatements],
                        key=lambda e: (e[0], e[1]))
        tasks: list[asyncio.Task] = []
        hours = []
        async with httpx.AsyncClient() as http:
            start = time.monotonic()
            if on_hour is not None:
                hours = [asyncio.ensure_future(self._at(start + h * schedule.day_s / 8, on_hour, h))
                         for h in range(1, 9)]
            for at_s, what, item in events:
                delay = start + at_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    rec.schedule_lag = max(rec.schedule_lag, -delay)
                arrival = start + at_s
                if what == 0:
                    tasks.append(asyncio.ensure_future(self.page(rec, item, arrival, subscribe)))
                else:
                    tasks.append(asyncio.ensure_future(self.restate(rec, http, item)))
            overrun = max_overrun_s if max_overrun_s is not None else max(30.0, schedule.day_s)
            remaining = max(1.0, start + schedule.day_s + overrun - time.monotonic())
            done, pending = await asyncio.wait(tasks, timeout=remaining) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    rec.errors[type(task.exception()).__name__] += 1
            await asyncio.gather(*hours, return_exceptions=True)
            wall = time.monotonic() - start
        return rec, wall, len(pending)

    @staticmethod
    async def _at(when: float, fn, arg) -> None:
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        await fn(arg)


def summarise(rec: Recorder) -> dict:
    ok = [r for r in rec.requests if r[4] == "OK"]
    by_widget = defaultdict(list)
    by_kind = defaultdict(list)
    by_tier = defaultdict(list)
    for t_send, latency, kind, rng, code, tier, status in ok:
        by_widget[f"{kind}:{rng}"].append(latency)
        by_kind[kind].append(latency)
        if tier:
            by_tier[tier].append(latency)
    out = {
        "requests": len(rec.requests), "ok": len(ok), "errors": dict(rec.errors),
        "latency_ms": percentiles(r[1] for r in ok),
        "latency_by_kind_ms": {k: percentiles(v) for k, v in sorted(by_kind.items())},
        "latency_by_widget_ms": {k: percentiles(v) for k, v in sorted(by_widget.items())},
        "page_load_ms": percentiles(rec.page_times),
        "stale": {"insights_answers_checked": rec.checked, "behind": rec.behind,
                  "behind_but_marked_stale": rec.behind_marked, "silent_stale": rec.behind - rec.behind_marked,
                  "marked_stale_answers": rec.marked_stale},
        "restatements": rec.restated,
        "schedule_lag_ms": rec.schedule_lag * 1000,
    }
    if by_tier:
        out["latency_by_tier_ms"] = {k: percentiles(v) for k, v in sorted(by_tier.items())}
    if rec.refresh_latency:
        out["refresh_ms"] = percentiles(rec.refresh_latency)
        out["refresh_upstream_calls"] = rec.refresh_upstream_calls
    if rec.subs_opened:
        out["subscriptions"] = {"opened": rec.subs_opened, "failed": rec.subs_failed,
                                "snapshot_ms": percentiles(rec.snapshot_latency), "change_events": rec.sub_events,
                                "restatement_to_open_page_ms": percentiles(rec.restate_to_page)}
    return out


async def settle(system: BenchSystem, quiet_s: float = 1.0, max_s: float = 20.0) -> None:
    """Wait until the sandbox has seen no Graph call for ``quiet_s`` (background refreshes done)."""
    deadline = time.monotonic() + max_s
    last = await asyncio.to_thread(system.sandbox_counts)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        now = await asyncio.to_thread(system.sandbox_counts)
        if now == last:
            return
        last = now


def hit_rates(contender: Contender, delta: dict[str, int], subscribes: int) -> dict:
    if contender.gateway:
        unary = delta["l1_hits"] + delta["l1_misses"]
        reads = delta["l2_hits"] + delta["l2_misses"]
        total = unary + subscribes
        return {
            "requests_seen": total,
            "hit_rate": 1 - delta["l2_misses"] / total if total else None,
            "l1_hit_rate": delta["l1_hits"] / unary if unary else None,
            "l2_hit_rate": delta["l2_hits"] / reads if reads else None,
            "answered_by": {"l1": delta["l1_hits"], "l2": delta["l2_hits"], "l3": delta["l2_misses"]},
        }
    total = delta["l1_hits"] + delta["l1_misses"]
    if total == 0:  # naive: no cache at all
        return {"requests_seen": None, "hit_rate": 0.0, "l1_hit_rate": None, "l2_hit_rate": None,
                "answered_by": {"l3": "every request"}}
    return {"requests_seen": total, "hit_rate": delta["l1_hits"] / total, "l1_hit_rate": delta["l1_hits"] / total,
            "l2_hit_rate": None, "answered_by": {"cache": delta["l1_hits"], "l3": delta["l1_misses"]}}


async def run_contender(system: BenchSystem, contender: Contender, schedule: Schedule, truth: Truth,
                        accounts: list[BenchAccount], log=print, max_inflight: int = 64, scale: float = 1.0,
                        warmup_timeout_s: float = 600.0, warmup_parallel: int = 8) -> dict:
    """Warm-up, then the day; Meta calls counted at the sandbox, tiers from the contender's GetStats.

    ``scale``: factor applied to this contender's Meta-call count when it ran a sample of the accounts."""
    runner = DayRunner(system, contender, truth, max_inflight=max_inflight)
    await asyncio.to_thread(system.reset_sandbox_stats)
    cpu0 = await asyncio.to_thread(system.cpu)
    warm_rec, warm_s, not_warmed = await runner.warmup(accounts, warmup_parallel, warmup_timeout_s)
    await settle(system, 0.5, 10)
    cpu1 = await asyncio.to_thread(system.cpu)
    warm_meta = await asyncio.to_thread(system.sandbox_counts)
    await asyncio.to_thread(system.reset_sandbox_stats)
    before = await contender.client.stats(system.operator_md)
    hourly: list[int] = []
    cache_bytes: list[tuple[int, int]] = []

    async def on_hour(h: int) -> None:
        hourly.append((await asyncio.to_thread(system.sandbox_counts))["graph_requests"])
        stats = await contender.client.stats(system.operator_md)
        cache_bytes.append((stats.l1_bytes, stats.l1_entries))

    log(f"  {contender.label}: warm-up {len(accounts)} page loads in {warm_s:.1f} s "
        f"({warm_meta['graph_requests']} Meta calls{f', {not_warmed} accounts NOT warmed' if not_warmed else ''}); "
        f"day: {len(schedule.loads)} page loads, {len(schedule.restatements)} restatements over {schedule.day_s:g} s")
    rec, wall, unfinished = await runner.day(schedule, subscribe=True, on_hour=on_hour)
    await settle(system)
    cpu2 = await asyncio.to_thread(system.cpu)
    meta = await asyncio.to_thread(system.sandbox_counts)
    after = await contender.client.stats(system.operator_md)
    delta = stats_delta(after, before)
    per_hour = [b - a for a, b in zip([0] + hourly[:-1], hourly)] if hourly else []
    out = {
        "contender": contender.name, "label": contender.label,
        "warmup": {"page_loads": len(accounts), "seconds": warm_s, "meta_calls": warm_meta["graph_requests"],
                   "errors": dict(warm_rec.errors), "accounts_not_warmed": not_warmed,
                   "latency_by_widget_ms": summarise(warm_rec)["latency_by_widget_ms"],
                   "cpu_s": cpu_delta(cpu1, cpu0)},
        "day_wall_s": wall, "page_loads": len(schedule.loads), "unfinished_page_loads": unfinished,
        "meta_calls": meta["graph_requests"], "meta_calls_scaled": round(meta["graph_requests"] * scale),
        "scale": scale, "day_cpu_s": cpu_delta(cpu2, cpu1), "meta_insights_pages": meta["insights_requests"],
        "meta_account_lookups": meta["account_requests"], "meta_calls_per_sim_hour": per_hour,
        "fetch_insights_calls": delta["upstream_calls"], "stats_delta": delta,
        "stats_after": {"l1_bytes": after.l1_bytes, "l1_max_bytes": after.l1_max_bytes,
                        "l1_entries": after.l1_entries, "l1_accounts": after.l1_accounts},
        "l2_reads_per_page_load": delta["l2_reads"] / max(1, len(schedule.loads)),
        "cache_bytes_peak": max((b for b, _ in cache_bytes), default=after.l1_bytes),
        "cache_entries_peak": max((e for _, e in cache_bytes), default=after.l1_entries),
        **hit_rates(contender, delta, rec.subs_opened),
        **summarise(rec),
    }
    return out

"""The scheduler's pure planning: due work equals the gateway's rule, ranking, and plans that fit the budget."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from services.cache_gateway.demand_tracker import AccountDemand
from services.common.freshness import FreshnessClass, FreshnessPolicy
from services.common.dates import DateRange
from services.scheduler.planning import (
    TIER_BACKGROUND, TIER_RECENT, TIER_SUBSCRIBED, UNKNOWN_DEMAND_WEIGHT, AccountFreshness, Allowance, Candidate,
    DueRule, WorkItem, candidates, demand_weight, due_work, estimate_calls, plan_cycle, score, tier_of,
)

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)
POLICY = FreshnessPolicy()
ZONES = ["UTC", "America/Los_Angeles", "Asia/Kuala_Lumpur", "Pacific/Kiritimati", "Europe/Berlin"]


def view(fetched: dict[date, datetime], tz: str = "UTC", rows: float = 10.0, account: str = "1") -> AccountFreshness:
    return AccountFreshness(account, tz, fetched, rows)


def due_days(items: list[WorkItem]) -> set[date]:
    return {d for i in items for d in i.days.days()}


# -- due work = the gateway's rule -----------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(tz=st.sampled_from(ZONES), minutes=st.integers(0, 24 * 60 - 1),
       ages=st.lists(st.one_of(st.none(), st.integers(0, 60 * 24 * 40)), min_size=31, max_size=31))
def test_due_days_are_exactly_the_days_the_gateway_would_refresh(tz, minutes, ages):
    now = NOW + timedelta(minutes=minutes)
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    fetched = {today - timedelta(days=k): now - timedelta(minutes=age)
               for k, age in enumerate(ages) if age is not None}
    # days fetched at or after 'now' cannot exist; keep the last fetched day settled so no rolling applies
    items = due_work(view(fetched, tz), POLICY, now)
    expected = {d for d, at in fetched.items() if POLICY.is_due(d, at, now, zone)}
    last = max(fetched, default=None)
    if last is not None and today - timedelta(days=28) <= last < today and \
            fetched[last] < datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone):
        expected |= {last + timedelta(days=k) for k in range(1, (today - last).days + 1)}
    assert due_days(items) == expected
    for item in items:
        assert {POLICY.classify(d, today) for d in item.days.days()} == {item.cls}
        assert item.estimated_calls == estimate_calls(len(item.days), 10.0)
        assert not item.prefetch


@settings(max_examples=200, deadline=None)
@given(tz=st.sampled_from(ZONES), day_back=st.integers(0, 40), age_min=st.integers(0, 60 * 24 * 40),
       minutes=st.integers(0, 24 * 60 - 1))
def test_due_rule_matches_the_freshness_policy(tz, day_back, age_min, minutes):
    now = NOW + timedelta(minutes=minutes)
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    day = today - timedelta(days=day_back)
    fetched = now - timedelta(minutes=age_min)
    assert DueRule(POLICY).due_at(day, fetched, today, zone) == POLICY.due_at(day, fetched, now, zone)


def test_live_pages_look_one_interval_ahead_and_those_items_are_prefetches():
    today = NOW.date()
    fetched = {today: NOW - timedelta(minutes=10), today - timedelta(days=1): NOW - timedelta(hours=1)}
    assert due_work(view(fetched), POLICY, NOW) == []  # today is due in 5 minutes, not now
    items = due_work(view(fetched), POLICY, NOW, horizon_s=600)
    assert [(i.days, i.cls, i.prefetch) for i in items] == [(DateRange(today, today), FreshnessClass.PARTIAL, True)]
    assert items[0].due_at == NOW + timedelta(minutes=5)


def test_a_day_about_to_become_final_is_not_fetched_ahead():
    today = NOW.date()
    last_provisional = today - timedelta(days=28)  # becomes final at midnight
    late = datetime.combine(today, time(23, 55), tzinfo=timezone.utc)
    fetched = {last_provisional: late - timedelta(minutes=55), today: late}
    items = due_work(view(fetched), POLICY, late, horizon_s=600)
    assert last_provisional not in due_days(items)
    after_midnight = late + timedelta(minutes=10)
    final = [i for i in due_work(view(fetched), POLICY, after_midnight) if i.cls is FreshnessClass.FINAL]
    assert [i.days for i in final] == [DateRange(last_provisional, last_provisional)]


def test_the_window_rolls_when_readers_look_at_today():
    yesterday = NOW.date() - timedelta(days=1)
    watched_today = {yesterday: datetime.combine(yesterday, time(18), tzinfo=timezone.utc)}
    assert NOW.date() in due_days(due_work(view(watched_today), POLICY, NOW))
    read_the_day_after = {yesterday: datetime.combine(NOW.date(), time(1), tzinfo=timezone.utc)}
    assert NOW.date() not in due_days(due_work(view(read_the_day_after), POLICY, NOW))


def test_due_work_validates_its_inputs():
    with pytest.raises(ValueError, match="timezone-aware"):
        due_work(view({}), POLICY, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="horizon"):
        due_work(view({}), POLICY, NOW, horizon_s=-1)


def test_estimate_calls_counts_pages_and_rejects_nonsense():
    assert estimate_calls(1, 6) == 1
    assert estimate_calls(28, 15) == math.ceil(28 * 15 / 100) == 5
    assert estimate_calls(28, 0) == 1
    for bad in [(0, 10, 100), (1, -1, 100), (1, float("nan"), 100), (1, 10, 0)]:
        with pytest.raises(ValueError):
            estimate_calls(*bad)


# -- ranking ---------------------------------------------------------------------------------------

def test_demand_ranks_live_pages_then_reads_then_recency_and_idle_accounts_are_skipped():
    live = AccountDemand("1", subscribers=1, reads_last_hour=0, last_read_at=NOW - timedelta(hours=3))
    busy = AccountDemand("2", reads_last_hour=20, last_read_at=NOW)
    recent = AccountDemand("3", last_read_at=NOW - timedelta(hours=2))
    idle = AccountDemand("4", last_read_at=NOW - timedelta(days=8))
    weights = [demand_weight(d, NOW) for d in (live, busy, recent)]
    assert weights == sorted(weights, reverse=True)
    assert demand_weight(recent, NOW) > UNKNOWN_DEMAND_WEIGHT == demand_weight(None, NOW)
    assert demand_weight(None, NOW) > demand_weight(idle, NOW) == 0
    assert [tier_of(d, NOW) for d in (live, busy, recent, idle, None)] == \
        [TIER_SUBSCRIBED, TIER_RECENT, TIER_RECENT, TIER_BACKGROUND, TIER_BACKGROUND]


def test_class_breaks_ties_partial_before_provisional_before_final():
    def item(cls, day):
        return WorkItem("1", DateRange(day, day), cls, NOW, NOW - timedelta(days=1), 1, 1)
    scores = [score(item(cls, NOW.date()), 1.0, POLICY, NOW)
              for cls in (FreshnessClass.PARTIAL, FreshnessClass.PROVISIONAL, FreshnessClass.FINAL)]
    assert scores[0] > scores[1] > scores[2]


def test_staler_work_scores_higher_up_to_a_cap():
    day = NOW.date() - timedelta(days=3)
    def s(overdue_h):
        return score(WorkItem("1", DateRange(day, day), FreshnessClass.PROVISIONAL, NOW - timedelta(hours=overdue_h),
                              None, 1, 1), 1.0, POLICY, NOW)
    assert s(0) < s(3) < s(12) < s(60) == s(600)


def test_candidates_follow_demand_and_look_ahead_only_for_live_pages():
    today = NOW.date()
    fetched = {today: NOW - timedelta(minutes=10)}
    views = [view(fetched, account="live"), view(fetched, account="read")]
    demand = {"live": AccountDemand("live", subscribers=2), "read": AccountDemand("read", reads_last_hour=3,
                                                                                   last_read_at=NOW)}
    cands = candidates(views, demand, POLICY, NOW, 600)
    assert [(c.item.account_id, c.tier) for c in cands] == [("live", TIER_SUBSCRIBED)]


# -- plans -----------------------------------------------------------------------------------------

def cand(account: str, cost: int, tier: int, score_: float, weight: float = 1.0, days: int = 1) -> Candidate:
    until = NOW.date() - timedelta(days=1)
    return Candidate(WorkItem(account, DateRange(until - timedelta(days=days - 1), until), FreshnessClass.PROVISIONAL,
                              NOW, None, cost, days, calls_per_day=cost / days if days > 1 else 0.0),
                     score_, tier, weight)


cands_strategy = st.lists(st.builds(cand, st.text("abc", min_size=1, max_size=3), st.integers(1, 40),
                                    st.sampled_from([TIER_SUBSCRIBED, TIER_RECENT, TIER_BACKGROUND]),
                                    st.floats(0, 100), st.sampled_from([0.0, 0.1, 1.0, 12.0]),
                                    st.sampled_from([1, 1, 7, 28])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(cs=cands_strategy, hard=st.integers(0, 200), pace=st.integers(0, 50), burst=st.integers(0, 150),
       cycles=st.sampled_from([1.0, 6.0]))
def test_a_plan_never_spends_more_than_allowed_and_never_refreshes_idle_accounts(cs, hard, pace, burst, cycles):
    allowance = Allowance(hard=hard, burst=min(hard, burst), paced=min(hard, pace), cycles_per_window=cycles)
    plan = plan_cycle(cs, allowance)
    spent = sum(c.item.estimated_calls for c in plan.chosen)
    assert spent == plan.estimated_calls <= hard
    assert all(c.demand_weight > 0 for c in plan.chosen)
    days = lambda items: sorted((c.item.account_id, d) for c in items for d in c.item.days.days())
    assert days(plan.chosen + plan.deferred + plan.idle) == days(cs)  # every due day is planned or waits, once
    for c in plan.chosen + plan.deferred:
        assert c.item.estimated_calls >= 1 and c.item.day_count == len(c.item.days)
    live = sum(c.item.estimated_calls for c in plan.chosen if c.tier == TIER_SUBSCRIBED)
    room = max(0, hard - math.ceil(live * cycles))
    assert sum(c.item.estimated_calls for c in plan.chosen if c.tier == TIER_RECENT) <= min(room, burst)
    assert sum(c.item.estimated_calls for c in plan.chosen if c.tier != TIER_SUBSCRIBED) <= min(room, max(burst, pace))
    assert plan_cycle(list(reversed(cs)), allowance).chosen == plan.chosen  # deterministic


def test_live_pages_come_first_and_smaller_items_still_fit():
    cs = [cand("big-read", 30, TIER_RECENT, 50), cand("live", 5, TIER_SUBSCRIBED, 10),
          cand("huge-live", 100, TIER_SUBSCRIBED, 9), cand("small-read", 2, TIER_RECENT, 1)]
    plan = plan_cycle(cs, Allowance(hard=40, burst=40, paced=10, cycles_per_window=1))
    assert [c.item.account_id for c in plan.chosen] == ["live", "big-read", "small-read"]
    assert [c.item.account_id for c in plan.deferred] == ["huge-live"]


def test_live_pages_keep_a_whole_window_of_their_calls_from_other_work():
    allowance = Allowance(hard=40, burst=40, paced=10, cycles_per_window=6)  # 40 - 6 x 5 = 10 left for the rest
    plan = plan_cycle([cand("live", 5, TIER_SUBSCRIBED, 10), cand("read", 11, TIER_RECENT, 50)], allowance)
    assert [c.item.account_id for c in plan.chosen] == ["live"]
    plan = plan_cycle([cand("live", 5, TIER_SUBSCRIBED, 10), cand("read", 10, TIER_RECENT, 50)], allowance)
    assert [c.item.account_id for c in plan.chosen] == ["live", "read"]


def test_a_range_larger_than_the_budget_left_goes_in_parts_most_recent_days_first():
    big = cand("whale", 112, TIER_SUBSCRIBED, 10, days=28)  # 400 ads: 4 calls a day
    plan = plan_cycle([cand("live", 5, TIER_SUBSCRIBED, 20), big], Allowance(hard=45, burst=0, paced=0))
    head, rest = plan.chosen[1].item, plan.deferred[0].item
    assert (head.day_count, head.estimated_calls, rest.day_count) == (10, 40, 18)
    assert head.days.until == big.item.days.until and rest.days.since == big.item.days.since
    assert rest.days.until + timedelta(days=1) == head.days.since
    assert plan.estimated_calls == 45
    assert big.item.split(3) is None and cand("x", 4, 0, 1).item.split(100) is None

"""The differential planner: never a fresh day, never a due day left out (property-tested)."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from services.common.freshness import FreshnessClass, FreshnessPolicy
from services.cache_gateway.planner import due_days, merge_ranges, plan
from services.common.dates import DateRange

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
POLICY = FreshnessPolicy()


def test_classes_follow_the_restatement_window():
    assert POLICY.classify(TODAY, TODAY) is FreshnessClass.PARTIAL
    assert POLICY.classify(TODAY - timedelta(days=1), TODAY) is FreshnessClass.PROVISIONAL
    assert POLICY.classify(TODAY - timedelta(days=28), TODAY) is FreshnessClass.PROVISIONAL
    assert POLICY.classify(TODAY - timedelta(days=29), TODAY) is FreshnessClass.FINAL


def test_final_day_fetched_after_it_became_final_is_never_due():
    day = TODAY - timedelta(days=200)
    assert not POLICY.is_due(day, NOW - timedelta(days=100), NOW, UTC)


def test_final_day_fetched_while_provisional_is_due_once():
    day = TODAY - timedelta(days=40)
    assert POLICY.is_due(day, datetime.combine(day + timedelta(days=5), datetime.min.time(), UTC), NOW, UTC)


def test_account_timezone_decides_today():
    # 23:30 UTC on the 29th is already the 30th in Kuala Lumpur (UTC+8): the 29th is no longer partial there.
    late = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)
    kl = ZoneInfo("Asia/Kuala_Lumpur")
    fetched = late - timedelta(minutes=30)
    assert POLICY.is_due(date(2026, 11, 29), fetched, late, UTC) is True       # partial in UTC: 15-min interval
    assert POLICY.is_due(date(2026, 11, 29), fetched, late, kl) is False       # provisional in KL: 6 h interval


def test_merge_into_fewest_contiguous_ranges_with_a_maximum_length():
    days = [date(2026, 1, d) for d in (1, 2, 3, 5, 6, 9)]
    assert merge_ranges(days) == [DateRange(date(2026, 1, 1), date(2026, 1, 3)),
                                  DateRange(date(2026, 1, 5), date(2026, 1, 6)),
                                  DateRange(date(2026, 1, 9), date(2026, 1, 9))]
    assert [len(r) for r in merge_ranges([date(2026, 1, 1) + timedelta(days=i) for i in range(10)], 4)] == [4, 4, 2]


def test_cached_days_plus_new_days_fetch_only_the_new_days():
    fetched = {date(2026, 1, d): NOW for d in range(1, 11)}
    requested = DateRange(date(2025, 12, 25), date(2026, 1, 15))
    # Jan 1-10 were fetched long after they became final.
    assert plan(requested, fetched, POLICY, NOW, UTC) == [
        DateRange(date(2025, 12, 25), date(2025, 12, 31)), DateRange(date(2026, 1, 11), date(2026, 1, 15))]


_offsets = st.integers(min_value=0, max_value=120)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=100), length=st.integers(min_value=1, max_value=60),
    fetched=st.dictionaries(st.integers(min_value=0, max_value=160), st.integers(min_value=0, max_value=400 * 24)),
    max_len=st.integers(min_value=1, max_value=30),
)
def test_plan_never_fetches_a_fresh_day_and_never_leaves_a_due_day(start, length, fetched, max_len):
    base = TODAY - timedelta(days=160)
    requested = DateRange(base + timedelta(days=start), min(TODAY, base + timedelta(days=start + length - 1)))
    fetched_at = {base + timedelta(days=d): NOW - timedelta(hours=h) for d, h in fetched.items()}
    ranges = plan(requested, fetched_at, POLICY, NOW, UTC, max_len)
    planned = [d for r in ranges for d in r.days()]
    due = set(due_days(requested, fetched_at, POLICY, NOW, UTC))
    assert len(planned) == len(set(planned))            # no day twice
    assert set(planned) == due                           # exactly the due days
    assert all(len(r) <= max_len for r in ranges)
    assert all(requested.since <= r.since <= r.until <= requested.until for r in ranges)
    # fewest ranges: two consecutive ranges touch only when the first is full
    for a, b in zip(ranges, ranges[1:]):
        assert b.since > a.until + timedelta(days=1) or len(a) == max_len


def test_due_at_agrees_with_is_due():
    for days_back, fetched_hours_ago in [(0, 0.1), (0, 1), (3, 1), (3, 7), (40, 24 * 30), (200, 24)]:
        day = TODAY - timedelta(days=days_back)
        fetched = NOW - timedelta(hours=fetched_hours_ago)
        due_at = POLICY.due_at(day, fetched, NOW, UTC)
        assert POLICY.is_due(day, fetched, NOW, UTC) == (due_at is not None and due_at <= NOW)

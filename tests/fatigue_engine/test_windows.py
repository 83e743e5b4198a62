"""FATIGUE_SPEC.md "Windows": delivery days, ramp-up, extension, non-overlap."""

from __future__ import annotations

import pytest

from services.fatigue_engine.config import DEFAULT_CONFIG
from services.fatigue_engine.windows import InvalidSeries, delivery_days, find_windows, ramp_up_start
from tests.fatigue_engine.example import AD, make_rows, worked_example


def windows_of(impressions, **kw):
    days = delivery_days(make_rows(impressions, **kw), "lead")
    return days, find_windows(days, DEFAULT_CONFIG)


def test_zero_impression_rows_are_not_delivery_days() -> None:
    days = delivery_days(make_rows([1000, 0, 2000, 0, 3000]), "lead")
    assert days.impressions == [1000, 2000, 3000]
    assert days.zero_rows == 2
    assert days.cum_impressions == [1000, 3000, 6000]


def test_ramp_up_trickle_is_skipped() -> None:
    # A real-account start: 1, 3, 13 impressions before delivery ramps up (spec "Windows").
    imps = [1, 3, 13] + [5000] * 10
    assert ramp_up_start(imps, 0.20) == 3
    _, w = windows_of(imps)
    assert w.ramp_up_days_skipped == 3
    assert (w.baseline.start, w.baseline.stop) == (3, 6)


def test_ramp_up_threshold_is_inclusive_20_percent_of_median() -> None:
    # median 1000 -> threshold 200: the day with exactly 200 is the first baseline day.
    assert ramp_up_start([199, 200, 1000, 1000, 1000], 0.20) == 1


def test_windows_extend_one_delivery_day_until_3000_impressions() -> None:
    imps = [800] * 20
    _, w = windows_of(imps)
    assert w.ok
    assert (w.baseline.start, w.baseline.stop, w.baseline.impressions) == (0, 4, 3200)
    assert (w.recent.start, w.recent.stop, w.recent.impressions) == (16, 20, 3200)


def test_windows_stop_at_14_delivery_days() -> None:
    imps = [100] * 40
    _, w = windows_of(imps)
    assert w.ok
    assert w.baseline.delivery_days == 14 and w.baseline.impressions == 1400
    assert w.recent.delivery_days == 14


def test_thin_last_days_extend_the_recent_window_back() -> None:
    imps = [5000] * 10 + [400, 300, 200, 100]
    _, w = windows_of(imps)
    # 100 + 200 + 300 = 600 -> + 400 -> + 5000 = 6000 >= 3000
    assert (w.recent.start, w.recent.stop) == (9, 14)


def test_overlapping_windows_are_not_formed() -> None:
    imps = [500] * 10
    _, w = windows_of(imps)
    assert not w.ok
    assert "overlap" in w.reason


def test_fewer_than_three_days_after_ramp_up() -> None:
    _, w = windows_of([10, 5000])
    assert w.baseline is None and "delivery days" in w.reason


def test_a_pause_does_not_reset_or_split_windows() -> None:
    imps = [4000] * 12
    _, plain = windows_of(imps)
    _, paused = windows_of(imps, gap_after={1: 5, 7: 20})
    assert (plain.baseline.start, plain.baseline.stop) == (paused.baseline.start, paused.baseline.stop)
    assert (plain.recent.start, plain.recent.stop) == (paused.recent.start, paused.recent.stop)
    assert (paused.baseline.until - paused.baseline.since).days == 2 + 5


def test_rows_may_come_in_any_order() -> None:
    rows = worked_example()
    assert delivery_days(list(reversed(rows)), "lead") == delivery_days(rows, "lead")


def test_rows_of_two_ads_are_rejected() -> None:
    rows = worked_example() + worked_example(ad_id="999")[:1]
    with pytest.raises(InvalidSeries, match="belongs to ad '999'"):
        delivery_days(rows, "lead")


def test_duplicate_dates_are_rejected() -> None:
    rows = worked_example()
    with pytest.raises(InvalidSeries, match="occurs twice"):
        delivery_days(rows + rows[:1], "lead")
    assert rows[0].ad_id == AD

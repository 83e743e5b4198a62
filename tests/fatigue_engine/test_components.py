"""FATIGUE_SPEC.md "Components" and DATA_PITFALLS.md, one small input each."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from services.fatigue_engine.components import (
    cpa_inflation, ctr_decay_from_counts, lin, two_proportion_z, window_totals,
)
from services.fatigue_engine.config import (
    CPA_INFLATION, CPM_INFLATION, CTR_DECAY, DEFAULT_CONFIG, FREQUENCY, RANKING_DROP, REACH_SATURATION,
)
from services.fatigue_engine.scoring import score_ad
from services.fatigue_engine.windows import Window, delivery_days
from tests.fatigue_engine.example import make_rows, worked_example


def test_lin_clamps() -> None:
    assert lin(0.05, 0.10, 0.40) == 0.0
    assert lin(0.25, 0.10, 0.40) == pytest.approx(50.0)
    assert lin(0.90, 0.10, 0.40) == 100.0


def test_two_proportion_z_matches_the_spec_formula() -> None:
    assert two_proportion_z(600, 30_000, 420, 30_000) == pytest.approx(5.6845, abs=1e-3)
    assert two_proportion_z(0, 1000, 0, 1000) is None


def test_ctr_gate_needs_1000_impressions_and_10_expected_clicks() -> None:
    thin = ctr_decay_from_counts(30, 999, 10, 5000, DEFAULT_CONFIG)
    assert not thin.available and "1000 impressions" in thin.unavailable_reason
    rare = ctr_decay_from_counts(5, 5000, 4, 5000, DEFAULT_CONFIG)  # p̄·n = 4.5 expected clicks
    assert not rare.available and "expected link clicks" in rare.unavailable_reason


def test_ctr_is_pooled_not_the_mean_of_daily_ratios() -> None:
    # Baseline days: CTR 10 % on 1,000 and 1 % on 9,000 (pooled 1.9 %, daily mean 5.5 %).
    rows = make_rows([1000, 9000, 4000, 4000, 4000, 4000, 4000, 4000],
                     clicks=[100, 90, 40, 40, 40, 40, 40, 40])
    r = score_ad(rows)
    assert r.baseline.delivery_days == 3
    ctr = r.component(CTR_DECAY).details
    n_b = r.baseline.impressions
    assert ctr["ctr_baseline"] == pytest.approx(ctr["clicks_baseline"] / n_b)
    assert ctr["ctr_baseline"] == pytest.approx((100 + 90 + 40) / 14_000)


def test_ctr_uses_link_clicks_not_all_clicks() -> None:
    rows = [dataclasses.replace(r, clicks=r.inline_link_clicks * 7) for r in worked_example()]
    assert score_ad(rows).component(CTR_DECAY).details["ctr_baseline"] == pytest.approx(0.02)


def test_frequency_never_comes_from_daily_reach() -> None:
    rows = [dataclasses.replace(r, reach=5000, reach_cum=None) for r in worked_example()]
    r = score_ad(rows)
    for name in (FREQUENCY, REACH_SATURATION):
        c = r.component(name)
        assert not c.available and "reach_cum" in c.unavailable_reason
    assert r.forecast.days_to_critical is None and r.forecast.slope_b is None


def test_negative_reach_delta_is_clamped_and_flagged() -> None:
    rows = worked_example()
    rows[9] = dataclasses.replace(rows[9], reach_cum=28_000)  # restated below day 7's 28,400
    c = score_ad(rows).component(REACH_SATURATION)
    assert c.available and c.details["negative_delta_clamped"] == 1.0
    assert c.details["new_reach_recent"] == 0.0 and c.score == 100.0


def test_missing_spend_is_unknown_not_zero() -> None:
    rows = worked_example()
    rows[8] = dataclasses.replace(rows[8], spend=None)
    r = score_ad(rows)
    for name in (CPM_INFLATION, CPA_INFLATION):
        c = r.component(name)
        assert not c.available and "spend unknown" in c.unavailable_reason


def test_missing_link_clicks_make_ctr_unavailable() -> None:
    rows = worked_example()
    rows[0] = dataclasses.replace(rows[0], inline_link_clicks=None)
    r = score_ad(rows)
    assert not r.component(CTR_DECAY).available
    assert r.score is None and "CTR decay unavailable" in r.insufficient_reason


# --- CPA and absent actions -------------------------------------------------------------------

def _cpa_of(rows):
    days = delivery_days(rows, "lead")
    b, r = Window(0, 3, days.dates[0], days.dates[2], sum(days.impressions[:3])), \
        Window(len(days) - 3, len(days), days.dates[-3], days.dates[-1], sum(days.impressions[-3:]))
    return cpa_inflation(window_totals(days, b), window_totals(days, r), DEFAULT_CONFIG)


def test_absent_actions_with_link_clicks_make_cpa_unknown() -> None:
    rows = worked_example()
    rows[9] = dataclasses.replace(rows[9], actions=None)  # 135 link clicks but no actions
    c = _cpa_of(rows)
    assert not c.available and "conversions unknown" in c.unavailable_reason


def test_absent_actions_without_link_clicks_count_zero_conversions() -> None:
    rows = worked_example()
    rows[9] = dataclasses.replace(rows[9], actions=None, inline_link_clicks=0)
    c = _cpa_of(rows)
    assert c.available
    assert c.details["conversions_recent"] == 16 and c.details["conversions_inferred_zero_days"] == 1


def test_no_inference_when_the_ad_never_has_actions() -> None:
    rows = [dataclasses.replace(r, actions=None, inline_link_clicks=0 if i == 9 else r.inline_link_clicks)
            for i, r in enumerate(worked_example())]
    c = _cpa_of(rows)
    assert not c.available and "conversions unknown" in c.unavailable_reason


def test_present_actions_without_the_type_mean_zero() -> None:
    rows = worked_example()
    rows[7:] = [dataclasses.replace(r, actions={"link_click": Decimal(5)}) for r in rows[7:]]
    c = _cpa_of(rows)
    assert c.available and c.score == 100.0 and c.raw_value is None
    assert c.details["meta_fatigue_line_crossed"] == 1.0


def test_cpa_needs_10_baseline_conversions_and_3_cpas_of_recent_spend() -> None:
    few = make_rows([5000] * 8, leads=[3] * 8)  # 9 baseline conversions
    assert "baseline conversions" in _cpa_of(few).unavailable_reason
    cheap = make_rows([5000] * 8, leads=[10] * 8, spend=[100] * 5 + [5] * 3)  # CPA_B 10, spend_R 15 < 30
    assert "recent spend" in _cpa_of(cheap).unavailable_reason


def test_meta_parity_floor_lifts_to_50() -> None:
    # Flat CTR and CPM, CPA doubles: every other component scores 0.
    rows = make_rows([10_000] * 8, leads=[10, 10, 10, 10, 10, 5, 5, 5])
    r = score_ad(rows)
    assert r.component(CPA_INFLATION).details["cpa_ratio"] == pytest.approx(2.0)
    assert r.score == 50.0 and r.meta_parity_floor_applied
    assert r.level.value == "warning"


# --- Ranking drop -----------------------------------------------------------------------------

def test_ranking_steps_lost_only_gains_do_not_offset() -> None:
    ranks = [("ABOVE_AVERAGE", "AVERAGE", "BELOW_AVERAGE_10")] * 3 + [None] * 4 + \
            [("BELOW_AVERAGE_20", "AVERAGE", "ABOVE_AVERAGE")]
    r = score_ad(make_rows([10_000] * 8, rankings=ranks))
    c = r.component(RANKING_DROP)
    assert c.raw_value == 3 and c.score == 75.0  # quality 4 -> 1; conversion's +4 gain ignored
    assert c.details["rankings_compared"] == 3


def test_ranking_uses_first_known_in_b_and_latest_known_in_r() -> None:
    ranks = [None, ("AVERAGE",) * 3, ("BELOW_AVERAGE_10",) * 3, None, None,
             ("BELOW_AVERAGE_35",) * 3, ("ABOVE_AVERAGE",) * 3, None]
    c = score_ad(make_rows([10_000] * 8, rankings=ranks)).component(RANKING_DROP)
    assert c.raw_value == 0  # AVERAGE (3) -> ABOVE_AVERAGE (4)

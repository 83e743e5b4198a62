"""FATIGUE_SPEC.md "Worked example": the reference numbers, to 1e-3."""

from __future__ import annotations

import pytest

from services.fatigue_engine.config import (
    COMPONENT_NAMES, CPA_INFLATION, CTR_DECAY, FREQUENCY, RANKING_DROP, REACH_SATURATION, FatigueConfig,
)
from services.fatigue_engine.result import FatigueLevel
from services.fatigue_engine.scoring import score_ad
from tests.fatigue_engine.example import worked_example

TOL = 1e-3


def approx(x: float) -> object:
    return pytest.approx(x, abs=TOL)


def test_windows_and_pooled_ratios() -> None:
    r = score_ad(worked_example())
    assert (r.baseline.delivery_days, r.baseline.impressions) == (3, 30_000)
    assert (r.recent.delivery_days, r.recent.impressions) == (3, 30_000)
    assert r.recent.since.day == 8 and r.recent.until.day == 10
    ctr = r.component(CTR_DECAY).details
    assert ctr["ctr_baseline"] == approx(0.02) and ctr["ctr_recent"] == approx(0.014)
    cpm = r.component("cpm_inflation").details
    assert cpm["cpm_baseline"] == approx(10.0) and cpm["cpm_recent"] == approx(12.0)
    cpa = r.component(CPA_INFLATION).details
    assert cpa["cpa_baseline"] == approx(10.0) and cpa["cpa_recent"] == approx(15.0)


def test_components_score_and_level() -> None:
    r = score_ad(worked_example())
    assert [c.name for c in r.components] == list(COMPONENT_NAMES)
    assert r.component(CTR_DECAY).details["z"] == approx(5.685)
    expected = (66.667, 56.250, 83.333, 25.000, 44.444, 50.000)
    assert [c.score for c in r.components] == [approx(x) for x in expected]
    assert all(c.available for c in r.components)
    assert [c.weight for c in r.components] == [0.30, 0.20, 0.15, 0.10, 0.15, 0.10]
    assert r.component(CTR_DECAY).raw_value == approx(0.30)
    assert r.component(FREQUENCY).raw_value == approx(3.125)
    assert r.component(REACH_SATURATION).raw_value == approx(0.80)
    assert r.component(RANKING_DROP).raw_value == 2
    assert r.score == approx(57.92)
    assert r.level is FatigueLevel.WARNING
    assert not r.meta_parity_floor_applied
    assert r.delivery_days == 10 and r.impressions == 100_000


def test_forecast() -> None:
    f = score_ad(worked_example()).forecast
    assert f.slope_b == approx(-0.2571)
    assert f.slope_t_stat is not None and f.slope_t_stat <= -2
    assert f.frequency_growth_per_day == approx(0.2201)
    assert f.fit_points == 10
    assert list(f.projected_scores) == [approx(x) for x in (63.97, 69.81, 74.52, 76.67)]
    assert f.days_to_critical == 4
    assert f.reason == ""


def test_edge_all_counts_divided_by_100_is_insufficient() -> None:
    r = score_ad(worked_example(divisor=100))
    assert r.level is FatigueLevel.INSUFFICIENT_DATA
    assert r.score is None
    assert "overlap" in r.insufficient_reason and "3000" in r.insufficient_reason
    assert len(r.components) == 6 and not any(c.available for c in r.components)
    assert r.forecast.days_to_critical is None and r.forecast.reason


def test_edge_divided_by_10_with_48_recent_clicks() -> None:
    r = score_ad(worked_example(divisor=10, recent_clicks=(16, 16, 16)))
    ctr = r.component(CTR_DECAY)
    assert ctr.available
    assert ctr.raw_value == approx(0.20)
    assert ctr.details["z"] == approx(1.165)
    assert ctr.details["z_gate_passed"] == 0.0
    assert ctr.score == 0.0
    cpa = r.component(CPA_INFLATION)
    assert not cpa.available and "3 baseline conversions" in cpa.unavailable_reason
    assert r.score == approx(36.76)
    assert r.level is FatigueLevel.CAUTION


def test_edge_all_rankings_unknown_renormalises() -> None:
    r = score_ad(worked_example(rankings=False))
    rank = r.component(RANKING_DROP)
    assert not rank.available and rank.score is None and rank.unavailable_reason
    assert sum(c.weight for c in r.components if c.available) == approx(0.90)
    assert r.score == approx(58.80)
    assert r.level is FatigueLevel.WARNING


def test_retargeting_uses_the_retargeting_frequency_band() -> None:
    from services.fatigue_engine.config import AudienceType

    r = score_ad(worked_example(), FatigueConfig(audience_type=AudienceType.RETARGETING))
    f = r.component(FREQUENCY)
    assert (f.band_lo, f.band_hi) == (4.0, 8.0)
    assert f.score == 0.0  # F = 3.125 < 4

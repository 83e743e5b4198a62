"""Property tests (hypothesis) of the score's invariants."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.common.insight_row import RANKINGS, InsightRow
from services.fatigue_engine.components import two_proportion_z
from services.fatigue_engine.config import CTR_DECAY
from services.fatigue_engine.result import FatigueLevel
from services.fatigue_engine.scoring import score_ad
from tests.fatigue_engine.example import ACCOUNT, AD, DAY0

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def ad_series(draw, min_days: int = 0, max_days: int = 30, min_impressions: int = 0,
              max_impressions: int = 40_000, with_reach_cum: bool | None = None) -> list[InsightRow]:
    """One ad's rows on distinct dates (gaps allowed): random counts, spend,
    actions (sometimes absent), rankings and (sometimes) a monotone reach_cum."""
    n = draw(st.integers(min_days, max_days))
    reach_mode = draw(st.sampled_from(["none", "monotone", "holes"])) if with_reach_cum is None else \
        ("monotone" if with_reach_cum else "none")
    rows = []
    day = DAY0
    cum = reach = 0
    for _ in range(n):
        imps = draw(st.integers(min_impressions, max_impressions))
        ctr = draw(st.floats(0, 0.08))
        clicks = int(imps * ctr)
        cents = draw(st.integers(0, 50_000))
        leads = draw(st.one_of(st.none(), st.integers(0, 30)))
        cum += imps
        reach = min(cum, reach + int(imps * draw(st.floats(0, 1))))
        rc = None
        if reach_mode == "monotone" or (reach_mode == "holes" and draw(st.booleans())):
            rc = reach
        ranks = [draw(st.sampled_from(RANKINGS + (None,))) for _ in range(3)]
        rows.append(InsightRow(
            account_id=ACCOUNT, ad_id=AD, date_start=day, date_stop=day, impressions=imps,
            inline_link_clicks=clicks, clicks=clicks, spend=Decimal(cents) / 100,
            actions=None if leads is None else {"lead": Decimal(leads)},
            quality_ranking=ranks[0], engagement_rate_ranking=ranks[1], conversion_rate_ranking=ranks[2],
            reach_cum=rc,
        ))
        day += timedelta(days=1 + draw(st.integers(0, 2)))
    return rows


def scale(rows: list[InsightRow], k: int) -> list[InsightRow]:
    """Every count x k (impressions, link clicks, conversions, reach_cum); spend x k too."""
    out = []
    for r in rows:
        out.append(dataclasses.replace(
            r, impressions=r.impressions * k, inline_link_clicks=r.inline_link_clicks * k, clicks=r.clicks * k,
            spend=r.spend * k, reach_cum=None if r.reach_cum is None else r.reach_cum * k,
            actions=None if r.actions is None else {t: v * k for t, v in r.actions.items()},
        ))
    return out


# --- scaling counts by k >= 1 never lowers the CTR-decay z -------------------------------------

@SETTINGS
@given(x_b=st.integers(0, 5000), n_b=st.integers(1000, 100_000), x_r=st.integers(0, 5000),
       n_r=st.integers(1000, 100_000), k=st.integers(1, 1000))
def test_scaling_counts_never_lowers_z(x_b, n_b, x_r, n_r, k) -> None:
    assume(x_b <= n_b and x_r <= n_r)
    z1 = two_proportion_z(x_b, n_b, x_r, n_r)
    assume(z1 is not None and z1 >= 0)  # a decay: the direction of the one-sided test
    zk = two_proportion_z(k * x_b, k * n_b, k * x_r, k * n_r)
    assert zk is not None and zk >= z1


@SETTINGS
@given(rows=ad_series(min_days=6, max_days=25, min_impressions=3000), k=st.integers(1, 50))
def test_scaling_a_series_never_lowers_z_or_the_ctr_score(rows, k) -> None:
    # Every day >= 3,000 impressions: both windows are 3 delivery days whatever k is,
    # so the same days are compared before and after scaling.
    before = score_ad(rows).component(CTR_DECAY)
    after = score_ad(scale(rows, k)).component(CTR_DECAY)
    if before.available:
        assert after.available
        if before.details["z"] >= 0:
            assert after.details["z"] >= before.details["z"]
        assert after.score >= before.score
        assert after.raw_value == before.raw_value


# --- zero-delivery days change nothing ---------------------------------------------------------

@SETTINGS
@given(rows=ad_series(min_days=1), data=st.data())
def test_adding_a_zero_impression_row_changes_nothing(rows, data) -> None:
    used = {r.date_start for r in rows}
    offset = data.draw(st.integers(-3, 90))
    day = DAY0 + timedelta(days=offset)
    assume(day not in used)
    zero = InsightRow(
        account_id=ACCOUNT, ad_id=AD, date_start=day, date_stop=day, impressions=0,
        inline_link_clicks=0, clicks=0, spend=Decimal(data.draw(st.integers(0, 500))),
        actions=data.draw(st.sampled_from([None, {}, {"lead": Decimal(3)}])),
        quality_ranking=data.draw(st.sampled_from(RANKINGS)), reach_cum=data.draw(st.one_of(st.none(), st.integers(0, 10**6))),
    )
    position = data.draw(st.integers(0, len(rows)))
    assert score_ad(rows[:position] + [zero] + rows[position:]) == score_ad(rows)


@SETTINGS
@given(rows=ad_series(min_days=1), data=st.data())
def test_a_day_without_a_row_changes_nothing_but_dates(rows, data) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    gapped = rows[:cut] + [dataclasses.replace(r, date_start=r.date_start + timedelta(days=1),
                                               date_stop=r.date_stop + timedelta(days=1)) for r in rows[cut:]]
    a, b = score_ad(rows), score_ad(gapped)
    strip = dict(baseline=None, recent=None)
    assert dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)
    for wa, wb in ((a.baseline, b.baseline), (a.recent, b.recent)):
        assert (wa is None) == (wb is None)
        if wa is not None:
            assert (wa.delivery_days, wa.impressions) == (wb.delivery_days, wb.impressions)


# --- bounds ------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ad_series())
def test_scores_stay_in_0_100(rows) -> None:
    r = score_ad(rows)
    assert len(r.components) == 6
    for c in r.components:
        if c.score is not None:
            assert 0.0 <= c.score <= 100.0
        assert c.available == (c.score is not None)
        assert c.available or c.unavailable_reason
    if r.score is None:
        assert r.level is FatigueLevel.INSUFFICIENT_DATA and r.insufficient_reason
    else:
        assert 0.0 <= r.score <= 100.0 and r.level is not FatigueLevel.INSUFFICIENT_DATA
        assert round(r.score, 2) == r.score
    for s in r.forecast.projected_scores:
        assert 0.0 <= s <= 100.0


@SETTINGS
@given(rows=st.one_of(ad_series(min_days=6, with_reach_cum=True, min_impressions=500), st.deferred(lambda: fatiguing_ad())))
def test_forecast_is_consistent(rows) -> None:
    r = score_ad(rows)
    f = r.forecast
    if r.score is None:
        assert f.days_to_critical is None
    elif r.score >= 75:
        assert f.days_to_critical == 0
    elif f.days_to_critical is not None:
        assert f.slope_t_stat <= -2 and f.frequency_growth_per_day > 0 and f.fit_points >= 7
        assert len(f.projected_scores) == f.days_to_critical and f.projected_scores[-1] >= 75
        assert all(s < 75 for s in f.projected_scores[:-1])
    else:
        assert f.reason


# --- the forecast's projection equals a full recomputation of components 1 and 2 ---------------

@st.composite
def fatiguing_ad(draw) -> list[InsightRow]:
    """A wearing-out ad with reach_cum: CTR = c0·e^(-λF) with noise, saturating reach."""
    n = draw(st.integers(8, 40))
    c0 = draw(st.floats(0.01, 0.04))
    lam = draw(st.floats(0.0, 0.6))
    audience = draw(st.integers(20_000, 400_000))
    rows, cum, day = [], 0, DAY0
    for _ in range(n):
        imps = draw(st.integers(1000, 30_000))
        cum += imps
        reach = max(1, int(audience * (1 - 2.718281828 ** (-cum / audience))))
        f = cum / reach
        clicks = max(0, int(imps * c0 * 2.718281828 ** (-lam * f) * draw(st.floats(0.85, 1.15))))
        leads = draw(st.integers(0, 12))
        rows.append(InsightRow(
            account_id=ACCOUNT, ad_id=AD, date_start=day, date_stop=day, impressions=imps,
            inline_link_clicks=clicks, clicks=clicks, spend=Decimal(imps) * Decimal(draw(st.integers(800, 1600))) / 100_000,
            actions={"lead": Decimal(leads)}, reach_cum=reach,
        ))
        day += timedelta(days=1)
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=fatiguing_ad())
def test_projection_matches_full_recomputation(rows) -> None:
    import math

    from services.fatigue_engine.aggregate import combine
    from services.fatigue_engine.components import ctr_decay_from_counts, frequency_from_value
    from services.fatigue_engine.config import DEFAULT_CONFIG

    r = score_ad(rows)
    f = r.forecast
    assume(f.projected_scores)
    comps = list(r.components)
    ctr = comps[0].details
    x_b, n_b, n_r = ctr["clicks_baseline"], int(ctr["impressions_baseline"]), int(ctr["impressions_recent"])
    ctr_r = ctr["clicks_recent"] / n_r
    b, g, f_t = f.slope_b, f.frequency_growth_per_day, comps[1].raw_value
    for h, projected in enumerate(f.projected_scores, start=1):
        comps[1] = frequency_from_value(f_t + g * h, DEFAULT_CONFIG)
        comps[0] = ctr_decay_from_counts(x_b, n_b, ctr_r * math.exp(b * g * h) * n_r, n_r, DEFAULT_CONFIG)
        assert combine(comps, DEFAULT_CONFIG).score == pytest.approx(projected, abs=0.0100001)
    if f.days_to_critical:
        assert f.projected_scores[-1] >= 75 > max(f.projected_scores[:-1], default=0)

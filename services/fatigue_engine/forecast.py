"""Days until critical (FATIGUE_SPEC.md "Forecast: days until critical").

Prediction is pluggable (DESIGN.md R14): ``score_ad`` takes any object with
a ``forecast(ForecastInput) -> ForecastResult`` method. The default,
``WlsFrequencyForecaster``, is the spec's wear-out model
CTR(F) = CTR₀·e^(b·F) fitted by weighted least squares in cumulative
frequency F.
"""

from __future__ import annotations

import math
from operator import mul
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from services.fatigue_engine.aggregate import finish, meta_parity_line_crossed
from services.fatigue_engine.components import WindowTotals, ctr_decay_score, cumulative_frequency, lin
from services.fatigue_engine.config import CPA_INFLATION, CTR_DECAY, FREQUENCY, FatigueConfig
from services.fatigue_engine.result import ComponentResult, ForecastResult
from services.fatigue_engine.windows import DeliveryDays


@dataclass(frozen=True, slots=True)
class ForecastInput:
    """What a forecaster may use: the ad's delivery days, the pooled window
    totals, the current components (spec order) and current score (0-100)."""

    days: DeliveryDays
    baseline: WindowTotals
    recent: WindowTotals
    components: tuple[ComponentResult, ...]
    score: float
    config: FatigueConfig


@runtime_checkable
class Forecaster(Protocol):
    """A days-to-critical predictor (DESIGN.md R14: fatigue prediction pluggable)."""

    def forecast(self, data: ForecastInput) -> ForecastResult:
        """Return the forecast; never raise for thin data (set ``reason`` instead)."""
        ...


@dataclass(frozen=True, slots=True)
class Fit:
    """WLS fit of ln(CTR_t) = a + b·F_t: slope ``b`` (ln CTR per unit frequency), its t-statistic."""

    a: float
    b: float
    t_stat: float
    points: int


def wls_fit(x: Sequence[float], y: Sequence[float], w: Sequence[float]) -> Fit | None:
    """Weighted least squares of y on x with weights w (all same length >= 3).

    t-statistic: b / SE(b), SE(b)² = [Σwᵢrᵢ² / (n - 2)] / Σwᵢ(xᵢ - x̄_w)²
    (weights as relative precisions, as in statsmodels WLS), computed on
    centred values. Returns None when x does not vary. A perfect fit gives
    t = ±inf (0 for b = 0). Plain Python: for ~90 points numpy was measured
    at 17 µs vs 26 µs per fit here, too small a gain for a second code path.
    """
    n = len(x)
    sw = sum(w)
    xbar = sum(map(mul, w, x)) / sw
    ybar = sum(map(mul, w, y)) / sw
    dx = [xi - xbar for xi in x]
    dy = [yi - ybar for yi in y]
    wdx = list(map(mul, w, dx))
    sxx = sum(map(mul, wdx, dx))
    if not sxx > 0.0:
        return None
    b = sum(map(mul, wdx, dy)) / sxx
    a = ybar - b * xbar
    r = [dyi - b * dxi for dyi, dxi in zip(dy, dx)]
    rss = sum(map(mul, w, map(mul, r, r)))
    se = math.sqrt(rss / (n - 2) / sxx) if n > 2 else math.inf
    if se > 0.0:
        t = b / se
    else:
        t = 0.0 if b == 0 else math.copysign(math.inf, b)
    return Fit(a, b, t, n)


class WlsFrequencyForecaster:
    """The spec's default forecast.

    1. Fit ln(CTR_t) = a + b·F_t by WLS over delivery days with impressions
       >= 500, F_t = cumulative impressions / reach_cum(t), weight = link
       clicks_t. Days with 0 link clicks (ln 0 undefined, weight 0) or
       without reach_cum are not points. Valid with >= 7 points and
       t(b) <= -2.
    2. g = (F_T - F_{T-3}) / 3 over delivery days; requires g > 0.
    3. For h = 1..30: F(h) = F_T + g·h, CTR(h) = CTR_R·e^(b·g·h); components 1
       (z gate included, recent impressions held) and 2 are recomputed, 3-6
       held, and the score recombined (renormalisation and parity floor as
       now). ``days_to_critical`` = first h with score >= 75; 0 when the
       current score is already >= 75.
    """

    def forecast(self, data: ForecastInput) -> ForecastResult:
        cfg = data.config
        days = data.days
        fit = self._fit(days, cfg)
        g = self._growth(days, cfg)
        stats = dict(
            slope_b=fit.b if fit else None,
            slope_t_stat=fit.t_stat if fit else None,
            frequency_growth_per_day=g,
            fit_points=fit.points if fit else self._count_points(days, cfg),
        )
        if data.score >= cfg.critical_from:
            return ForecastResult(days_to_critical=0, reason="already critical", **stats)
        if fit is None or fit.points < cfg.forecast_min_points:
            return ForecastResult(reason=f"no valid fit: {stats['fit_points']} usable days (impressions >= "
                                         f"{cfg.forecast_min_impressions}, link clicks > 0, reach_cum known); "
                                         f"needs {cfg.forecast_min_points}", **stats)
        if fit.t_stat > cfg.forecast_max_t_stat:
            return ForecastResult(reason=f"no valid fit: t-statistic of b is {fit.t_stat:.2f} "
                                         f"(needs <= {cfg.forecast_max_t_stat:g})", **stats)
        if g is None:
            return ForecastResult(reason="frequency growth unknown: reach_cum missing on the last "
                                         f"{cfg.forecast_growth_days + 1} delivery days", **stats)
        if not g > 0:
            return ForecastResult(reason=f"frequency is not growing (g = {g:.4f} per delivery day)", **stats)
        projected = self._project(data, fit.b, g)
        for h, s in enumerate(projected, start=1):
            if s >= cfg.critical_from:
                return ForecastResult(days_to_critical=h, projected_scores=tuple(projected[:h]), **stats)
        return ForecastResult(reason=f"no crossing of {cfg.critical_from:g} within {cfg.forecast_horizon_days} days",
                              projected_scores=tuple(projected), **stats)

    @staticmethod
    def _points(days: DeliveryDays, cfg: FatigueConfig) -> tuple[list[float], list[float], list[float]]:
        xs: list[float] = []
        ys: list[float] = []
        ws: list[float] = []
        for i, n in enumerate(days.impressions):
            k = days.clicks[i]
            if n < cfg.forecast_min_impressions or not k:
                continue
            f = cumulative_frequency(days, i)
            if f is None:
                continue
            xs.append(f)
            ys.append(math.log(k / n))
            ws.append(float(k))
        return xs, ys, ws

    def _count_points(self, days: DeliveryDays, cfg: FatigueConfig) -> int:
        return len(self._points(days, cfg)[0])

    def _fit(self, days: DeliveryDays, cfg: FatigueConfig) -> Fit | None:
        xs, ys, ws = self._points(days, cfg)
        if len(xs) < max(cfg.forecast_min_points, 3):
            return None
        return wls_fit(xs, ys, ws)

    @staticmethod
    def _growth(days: DeliveryDays, cfg: FatigueConfig) -> float | None:
        k = cfg.forecast_growth_days
        t = len(days) - 1
        if t - k < 0:
            return None
        f_t = cumulative_frequency(days, t)
        f_0 = cumulative_frequency(days, t - k)
        if f_t is None or f_0 is None:
            return None
        return (f_t - f_0) / k

    @staticmethod
    def _project(data: ForecastInput, b: float, g: float) -> list[float]:
        """Projected scores for h = 1..horizon. Only components 1 and 2 change, so the
        held components' Σwᵢsᵢ is computed once; ``aggregate.finish`` does the rest."""
        cfg = data.config
        held_num = held_den = 0.0
        f_t: float | None = None
        cpa: ComponentResult | None = None
        for c in data.components:
            if c.name == FREQUENCY:
                f_t = c.raw_value if c.available else None
            elif c.name != CTR_DECAY and c.available and c.score is not None:
                held_num += c.weight * c.score
                held_den += c.weight
            if c.name == CPA_INFLATION:
                cpa = c
        if f_t is None or data.baseline.clicks is None or data.recent.clicks is None:
            return []
        parity = meta_parity_line_crossed(cpa)
        w_ctr, w_f = cfg.weights.ctr_decay, cfg.weights.frequency
        band = cfg.frequency_band()
        x_b, n_b, n_r = data.baseline.clicks, data.baseline.impressions, data.recent.impressions
        ctr_r = data.recent.clicks / n_r
        out: list[float] = []
        for h in range(1, cfg.forecast_horizon_days + 1):
            num = held_num + w_f * lin(f_t + g * h, band.lo, band.hi)
            den = held_den + w_f
            s1 = ctr_decay_score(x_b, n_b, ctr_r * math.exp(b * g * h) * n_r, n_r, cfg)
            if s1 is not None:
                num += w_ctr * s1
                den += w_ctr
            out.append(finish(num, den, parity, cfg)[0])
        return out


DEFAULT_FORECASTER: Forecaster = WlsFrequencyForecaster()

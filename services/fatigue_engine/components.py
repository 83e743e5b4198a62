"""The six fatigue components (FATIGUE_SPEC.md "Components").

Every ratio is recomputed from counts pooled over a window (Σclicks /
Σimpressions), never averaged from daily ratios (DATA_PITFALLS.md 3). CTR is
link CTR = inline_link_clicks / impressions, a fraction (DATA_PITFALLS.md 10,
11). Frequency comes only from ``reach_cum``; daily reach is never summed
(DATA_PITFALLS.md 1). Each function returns a ``ComponentResult`` that is
either available with a raw value and a 0-100 score, or unavailable with the
reason; none of them raises on thin or missing data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from services.fatigue_engine.config import (
    CPA_INFLATION, CPM_INFLATION, CTR_DECAY, FREQUENCY, RANKING_DROP, RANKING_FIELDS, RANKING_POINTS,
    REACH_SATURATION, FatigueConfig,
)
from services.fatigue_engine.result import ComponentResult
from services.fatigue_engine.windows import DeliveryDays, Window


#: How a person gets ``reach_cum`` (the gateway's setting; the cost as in
#: services/meta_fetcher/graph_client.py ``fetch_reach_cum``).
REACH_CUM_HINT = ("; to get it, run the gateway with GATEWAY_WITH_REACH_CUM=1 (costs one more Meta call per "
                  "30 days fetched, more when the account has over 500 ad-ranges per page)")


def lin(x: float, lo: float, hi: float) -> float:
    """Spec "Components": clamp((x - lo) / (hi - lo) x 100, 0, 100). Requires hi > lo."""
    v = (x - lo) / (hi - lo) * 100.0
    return 0.0 if v < 0.0 else 100.0 if v > 100.0 else v


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Counts pooled over one window's delivery days.

    ``clicks`` (link clicks), ``spend`` (account currency) and
    ``conversions`` are ``None`` when they are unknown on some day of the
    window (see ``window_totals`` for conversions); ``*_unknown_days`` say on
    how many days.
    """

    impressions: int
    clicks: int | None
    spend: Decimal | None
    conversions: Decimal | None
    clicks_unknown_days: int = 0
    spend_unknown_days: int = 0
    conversions_unknown_days: int = 0
    conversions_inferred_zero_days: int = 0


def window_totals(days: DeliveryDays, w: Window) -> WindowTotals:
    """Pool impressions, link clicks, spend and conversions over window ``w``.

    Rule for unknown conversions (a delivery day whose row has no
    ``actions``; DATA_PITFALLS.md 8 says "absent -> unknown"):

    - *with* link clicks (or unknown link clicks): conversions are unknown,
      the window's ``conversions`` is ``None`` and CPA is unavailable. Unknown
      is never turned into 0 (DATA_PITFALLS.md 2).
    - with link clicks known to be 0, *and* ``actions`` present on some
      other delivery day of the ad: the day counts 0 conversions
      (``conversions_inferred_zero_days``). Why: the provider evidently
      requests ``actions`` for this ad, and Meta omits the key only when it
      has no action of any type for the day; a lead (with impression-time
      reporting, the default) would itself have produced ``actions``. So
      here the row *states* "nothing happened" rather than leaving the
      count unknown. If no day of the ad has ``actions``, none is inferred.

    Why not the alternatives: treating every absent ``actions`` as unknown
    makes CPA unavailable for wound-down ads whose last days are thin (a
    single clickless day kills the component): on the reference dataset 13
    ads score instead of the spec's 15. Dropping unknown days from both
    spend and conversions also gives 15 there, but removes exactly the
    spend-without-leads days that signal fatigue, biasing CPA_R down.
    """
    s, e = w.start, w.stop
    clicks = days.clicks[s:e]
    spend = days.spend[s:e]
    conv = days.conversions[s:e]
    c_unknown = sum(1 for c in clicks if c is None)
    s_unknown = sum(1 for x in spend if x is None)
    total_conv = Decimal(0)
    v_unknown = inferred = 0
    for c, k in zip(conv, clicks):
        if c is not None:
            total_conv += c
        elif k == 0 and days.actions_seen:
            inferred += 1
        else:
            v_unknown += 1
    return WindowTotals(
        impressions=w.impressions,
        clicks=None if c_unknown else sum(clicks),  # type: ignore[arg-type]
        spend=None if s_unknown else sum(spend, Decimal(0)),  # type: ignore[arg-type]
        conversions=None if v_unknown else total_conv,
        clicks_unknown_days=c_unknown,
        spend_unknown_days=s_unknown,
        conversions_unknown_days=v_unknown,
        conversions_inferred_zero_days=inferred,
    )


def _unavailable(name: str, config: FatigueConfig, lo: float, hi: float, reason: str,
                 details: dict[str, float] | None = None, raw: float | None = None) -> ComponentResult:
    return ComponentResult(name, False, config.weights.of(name), lo, hi, raw_value=raw,
                           unavailable_reason=reason, details=details or {})


# --- 1. CTR decay -----------------------------------------------------------------------------

def two_proportion_z(x_b: float, n_b: float, x_r: float, n_r: float) -> float | None:
    """One-sided two-proportion z for "CTR fell from B to R" (spec "Components", z formula).

    z = (p_B - p_R) / sqrt(p̄(1 - p̄)(1/n_B + 1/n_R)), p̄ = (x_B + x_R)/(n_B + n_R).
    ``x`` are clicks, ``n`` impressions (n > 0). Returns ``None`` when the
    variance is 0 (no clicks at all, or clicks on every impression).
    Positive z = decay. Scaling all counts by k multiplies z by √k.
    """
    p_b = x_b / n_b
    p_r = x_r / n_r
    p = (x_b + x_r) / (n_b + n_r)
    var = p * (1.0 - p) * (1.0 / n_b + 1.0 / n_r)
    if not var > 0.0:
        return None
    return (p_b - p_r) / math.sqrt(var)


def _ctr_gate(x_b: float, n_b: int, x_r: float, n_r: int, config: FatigueConfig) -> tuple[str, float, float]:
    """The availability gates of component 1; returns (reason or "", d, z)."""
    if n_b < config.ctr_min_impressions or n_r < config.ctr_min_impressions:
        return (f"a window has fewer than {config.ctr_min_impressions} impressions "
                f"(baseline {n_b}, recent {n_r})"), 0.0, 0.0
    p = (x_b + x_r) / (n_b + n_r)
    if p * n_b < config.ctr_min_expected_clicks or p * n_r < config.ctr_min_expected_clicks:
        return (f"a window has fewer than {config.ctr_min_expected_clicks:g} expected link clicks "
                f"(baseline {p * n_b:.1f}, recent {p * n_r:.1f})"), 0.0, 0.0
    if x_b <= 0:
        return "baseline link CTR is 0: decay undefined", 0.0, 0.0
    z = two_proportion_z(x_b, n_b, x_r, n_r)
    if z is None:
        return "link clicks equal impressions: the z test is undefined", 0.0, 0.0
    return "", 1.0 - (x_r / n_r) / (x_b / n_b), z


def ctr_decay_score(x_b: float, n_b: int, x_r: float, n_r: int, config: FatigueConfig) -> float | None:
    """Just the 0-100 score of component 1 (``None`` when unavailable); same rules as
    ``ctr_decay_from_counts``, without building a result (used by the forecast's projection)."""
    reason, d, z = _ctr_gate(x_b, n_b, x_r, n_r, config)
    if reason:
        return None
    band = config.ctr_decay_band
    return lin(d, band.lo, band.hi) if z >= config.ctr_z_min else 0.0


def ctr_decay_from_counts(x_b: float, n_b: int, x_r: float, n_r: int, config: FatigueConfig) -> ComponentResult:
    """Component 1 from pooled link clicks ``x`` and impressions ``n`` of B and R.

    Raw value d = 1 - CTR_R/CTR_B (fraction), band 0.10 -> 0.40, weight 0.30.
    Available only if each window has >= 1,000 impressions and >= 10
    expected clicks, where expected clicks = p̄ x n (the pooled CTR times the
    window's impressions: the count each window should show under "no
    change", the usual validity condition of the two-proportion z test).
    Score 0 unless z >= 1.645 (one-sided, alpha 0.05). ``x_r`` may be
    fractional (the forecast projects CTR_R).
    """
    band = config.ctr_decay_band
    p = (x_b + x_r) / (n_b + n_r) if n_b + n_r else 0.0
    details = {
        "impressions_baseline": float(n_b), "impressions_recent": float(n_r),
        "clicks_baseline": float(x_b), "clicks_recent": float(x_r),
        "expected_clicks_baseline": p * n_b, "expected_clicks_recent": p * n_r,
    }
    if n_b and n_r:
        details["ctr_baseline"] = x_b / n_b
        details["ctr_recent"] = x_r / n_r
    reason, d, z = _ctr_gate(x_b, n_b, x_r, n_r, config)
    if reason:
        return _unavailable(CTR_DECAY, config, band.lo, band.hi, reason, details)
    passed = z >= config.ctr_z_min
    details["z"] = z
    details["z_gate_passed"] = 1.0 if passed else 0.0
    score = lin(d, band.lo, band.hi) if passed else 0.0
    return ComponentResult(CTR_DECAY, True, config.weights.of(CTR_DECAY), band.lo, band.hi,
                           raw_value=d, score=score, details=details)


def ctr_decay(b: WindowTotals, r: WindowTotals, config: FatigueConfig) -> ComponentResult:
    """Component 1 (spec "Components" #1) from window totals; unavailable if link clicks are unknown."""
    if b.clicks is None or r.clicks is None:
        band = config.ctr_decay_band
        return _unavailable(CTR_DECAY, config, band.lo, band.hi,
                            f"link clicks unknown on {b.clicks_unknown_days + r.clicks_unknown_days} window day(s)")
    return ctr_decay_from_counts(b.clicks, b.impressions, r.clicks, r.impressions, config)


# --- 2. Frequency -----------------------------------------------------------------------------

def frequency_from_value(f: float, config: FatigueConfig, details: dict[str, float] | None = None) -> ComponentResult:
    """Component 2 from a cumulative frequency F (impressions per person reached).

    Band prospecting 2.0 -> 4.0, retargeting 4.0 -> 8.0; weight 0.20.
    """
    band = config.frequency_band()
    return ComponentResult(FREQUENCY, True, config.weights.of(FREQUENCY), band.lo, band.hi,
                           raw_value=f, score=lin(f, band.lo, band.hi), details=details or {})


def cumulative_frequency(days: DeliveryDays, i: int) -> float | None:
    """F_i = Σ impressions(delivery days 0..i) / reach_cum(i); ``None`` without a positive reach_cum."""
    rc = days.reach_cum[i]
    if rc is None or rc <= 0:
        return None
    return days.cum_impressions[i] / rc


def frequency(days: DeliveryDays, config: FatigueConfig) -> ComponentResult:
    """Component 2 (spec "Components" #2): F = Σimpressions(1..T) / reach_cum(T), T = last delivery day.

    Unavailable without ``reach_cum`` on day T: never estimated from daily
    reach (DATA_PITFALLS.md 1).
    """
    band = config.frequency_band()
    if not len(days):
        return _unavailable(FREQUENCY, config, band.lo, band.hi, "no delivery days")
    last = len(days) - 1
    f = cumulative_frequency(days, last)
    if f is None:
        return _unavailable(FREQUENCY, config, band.lo, band.hi,
                            "reach_cum (cumulative deduplicated reach) not supplied on the last delivery day"
                            + REACH_CUM_HINT)
    return frequency_from_value(f, config, {"impressions": float(days.cum_impressions[last]),
                                            "reach_cum": float(days.reach_cum[last])})  # type: ignore[arg-type]


# --- 3. Reach saturation ----------------------------------------------------------------------

def _reach_before(days: DeliveryDays, w: Window) -> int | None:
    """reach_cum at the delivery day before ``w`` (0 if ``w`` starts at the first delivery day)."""
    return 0 if w.start == 0 else days.reach_cum[w.start - 1]


def reach_saturation(days: DeliveryDays, b: Window, r: Window, config: FatigueConfig) -> ComponentResult:
    """Component 3 (spec "Components" #3): drop = 1 - NRR_R / NRR_B.

    NRR = new reach per impression over a window = (reach_cum at the
    window's last delivery day - reach_cum at the delivery day before it) /
    window impressions. A negative Δ (restated reach) is clamped to 0 and
    flagged in ``details['negative_delta_clamped']``. Band 0.30 -> 0.90,
    weight 0.15. Unavailable without reach_cum at the four window edges, or
    when the baseline gained no new reach.
    """
    band = config.reach_saturation_band
    edges = (_reach_before(days, b), days.reach_cum[b.stop - 1], _reach_before(days, r), days.reach_cum[r.stop - 1])
    if any(e is None for e in edges):
        return _unavailable(REACH_SATURATION, config, band.lo, band.hi,
                            "reach_cum (cumulative deduplicated reach) not supplied at the window edges")
    b0, b1, r0, r1 = edges  # type: ignore[misc]
    d_b, d_r = b1 - b0, r1 - r0
    clamped = d_b < 0 or d_r < 0
    d_b, d_r = max(d_b, 0), max(d_r, 0)
    nrr_b, nrr_r = d_b / b.impressions, d_r / r.impressions
    details = {"new_reach_baseline": float(d_b), "new_reach_recent": float(d_r),
               "nrr_baseline": nrr_b, "nrr_recent": nrr_r, "negative_delta_clamped": 1.0 if clamped else 0.0}
    if nrr_b <= 0:
        return _unavailable(REACH_SATURATION, config, band.lo, band.hi,
                            "baseline window gained no new reach: saturation undefined", details)
    drop = 1.0 - nrr_r / nrr_b
    return ComponentResult(REACH_SATURATION, True, config.weights.of(REACH_SATURATION), band.lo, band.hi,
                           raw_value=drop, score=lin(drop, band.lo, band.hi), details=details)


# --- 4. CPM inflation -------------------------------------------------------------------------

def cpm_inflation(b: WindowTotals, r: WindowTotals, config: FatigueConfig) -> ComponentResult:
    """Component 4 (spec "Components" #4): CPM_R / CPM_B - 1, CPM = 1000 x Σspend / Σimpressions.

    Band 0.10 -> 0.50, weight 0.10. Unavailable unless spend is known and > 0
    in both windows.
    """
    band = config.cpm_inflation_band
    if b.spend is None or r.spend is None:
        return _unavailable(CPM_INFLATION, config, band.lo, band.hi,
                            f"spend unknown on {b.spend_unknown_days + r.spend_unknown_days} window day(s)")
    if b.spend <= 0 or r.spend <= 0:
        return _unavailable(CPM_INFLATION, config, band.lo, band.hi,
                            f"no spend in a window (baseline {b.spend}, recent {r.spend})")
    cpm_b = 1000.0 * float(b.spend) / b.impressions
    cpm_r = 1000.0 * float(r.spend) / r.impressions
    x = cpm_r / cpm_b - 1.0
    return ComponentResult(CPM_INFLATION, True, config.weights.of(CPM_INFLATION), band.lo, band.hi,
                           raw_value=x, score=lin(x, band.lo, band.hi),
                           details={"cpm_baseline": cpm_b, "cpm_recent": cpm_r})


# --- 5. CPA inflation -------------------------------------------------------------------------

def cpa_inflation(b: WindowTotals, r: WindowTotals, config: FatigueConfig) -> ComponentResult:
    """Component 5 (spec "Components" #5): CPA_R / CPA_B - 1, CPA = Σspend / Σconversions.

    Band 0.10 -> 1.00, weight 0.15. Available only if conversions_B >= 10
    and spend_R >= 3 x CPA_B (enough recent spend to expect 3 conversions at
    the old cost); conversions_R = 0 then scores 100 with ``raw_value`` None
    (CPA_R is unbounded). Unavailable when spend or conversions are unknown
    in a window (see ``window_totals`` for the rule on absent ``actions``).
    ``details['cpa_ratio']`` = CPA_R / CPA_B (absent when conversions_R = 0);
    ``details['meta_fatigue_line_crossed']`` = 1 when CPA_R >= 2 x CPA_B
    (or conversions_R = 0): Meta's "creative fatigue" line, which feeds the
    parity floor (spec "Score, level, minimum data").
    """
    band = config.cpa_inflation_band
    name = CPA_INFLATION
    if b.spend is None or r.spend is None:
        return _unavailable(name, config, band.lo, band.hi,
                            f"spend unknown on {b.spend_unknown_days + r.spend_unknown_days} window day(s)")
    if b.conversions is None or r.conversions is None:
        return _unavailable(name, config, band.lo, band.hi,
                            f"conversions unknown (no actions reported although there were link clicks) on "
                            f"{b.conversions_unknown_days + r.conversions_unknown_days} window day(s)")
    details = {"conversions_baseline": float(b.conversions), "conversions_recent": float(r.conversions),
               "spend_baseline": float(b.spend), "spend_recent": float(r.spend),
               "conversions_inferred_zero_days": float(b.conversions_inferred_zero_days
                                                       + r.conversions_inferred_zero_days)}
    if b.conversions < config.cpa_min_baseline_conversions:
        return _unavailable(name, config, band.lo, band.hi,
                            f"{b.conversions:g} baseline conversions "
                            f"(needs {config.cpa_min_baseline_conversions:g})", details)
    if b.spend <= 0:
        return _unavailable(name, config, band.lo, band.hi, "no baseline spend", details)
    cpa_b = float(b.spend) / float(b.conversions)
    details["cpa_baseline"] = cpa_b
    if float(r.spend) < config.cpa_min_recent_spend_in_cpas * cpa_b:
        return _unavailable(name, config, band.lo, band.hi,
                            f"recent spend {float(r.spend):.2f} is below {config.cpa_min_recent_spend_in_cpas:g} "
                            f"x baseline CPA {cpa_b:.2f}", details)
    if r.conversions == 0:
        details["meta_fatigue_line_crossed"] = 1.0
        return ComponentResult(name, True, config.weights.of(name), band.lo, band.hi,
                               raw_value=None, score=100.0, details=details)
    cpa_r = float(r.spend) / float(r.conversions)
    details["cpa_recent"] = cpa_r
    details["cpa_ratio"] = cpa_r / cpa_b
    details["meta_fatigue_line_crossed"] = 1.0 if cpa_r >= config.parity_cpa_ratio * cpa_b else 0.0
    x = cpa_r / cpa_b - 1.0
    return ComponentResult(name, True, config.weights.of(name), band.lo, band.hi,
                           raw_value=x, score=lin(x, band.lo, band.hi), details=details)


# --- 6. Ranking drop --------------------------------------------------------------------------

def ranking_drop(days: DeliveryDays, b: Window, r: Window, config: FatigueConfig) -> ComponentResult:
    """Component 6 (spec "Components" #6): ranking steps lost, 25 points per step, cap 100.

    For each of the three rankings, the first non-UNKNOWN value in B is
    compared with the latest non-UNKNOWN value in R (points ABOVE_AVERAGE=4
    ... BELOW_AVERAGE_10=0); steps lost = max(0, points_B - points_R), so a
    gain on one ranking never offsets a loss on another. Rankings without a
    known value at both ends are left out (``details['rankings_compared']``);
    the component is unavailable when none can be compared. Weight 0.10.
    """
    band_hi = config.ranking_cap / config.ranking_points_per_step
    lost = 0
    compared = 0
    details: dict[str, float] = {}
    for field_name, values in zip(RANKING_FIELDS, days.rankings):
        first = next((RANKING_POINTS[v] for v in values[b.start:b.stop] if v in RANKING_POINTS), None)
        last = next((RANKING_POINTS[v] for v in reversed(values[r.start:r.stop]) if v in RANKING_POINTS), None)
        if first is None or last is None:
            continue
        compared += 1
        details[f"{field_name}_baseline"] = float(first)
        details[f"{field_name}_recent"] = float(last)
        lost += max(0, first - last)
    details["rankings_compared"] = float(compared)
    if not compared:
        return _unavailable(RANKING_DROP, config, 0.0, band_hi,
                            "no ranking known in both the baseline and the recent window", details)
    score = min(config.ranking_cap, lost * config.ranking_points_per_step)
    return ComponentResult(RANKING_DROP, True, config.weights.of(RANKING_DROP), 0.0, band_hi,
                           raw_value=float(lost), score=score, details=details)

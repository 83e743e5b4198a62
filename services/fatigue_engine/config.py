"""Scoring configuration with the defaults of FATIGUE_SPEC.md v1.1.

Every constant cites the spec section it comes from. The spec calls them
"starting values ... meant to be calibrated later", so they are fields of a
frozen dataclass rather than module constants: a caller can calibrate one
with ``dataclasses.replace(config, ctr_z_min=2.0)``.

Units: ratios are fractions (0.10 = 10 %), impressions and clicks are counts,
money is the ad account's currency, scores are 0-100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# Names of the six components, in the order of the spec's "Components" table.
CTR_DECAY = "ctr_decay"
FREQUENCY = "frequency"
REACH_SATURATION = "reach_saturation"
CPM_INFLATION = "cpm_inflation"
CPA_INFLATION = "cpa_inflation"
RANKING_DROP = "ranking_drop"
COMPONENT_NAMES = (CTR_DECAY, FREQUENCY, REACH_SATURATION, CPM_INFLATION, CPA_INFLATION, RANKING_DROP)


class AudienceType(str, Enum):
    """Spec "Inputs per ad": ``audience_type`` in {prospecting, retargeting}."""

    PROSPECTING = "prospecting"
    RETARGETING = "retargeting"


@dataclass(frozen=True, slots=True)
class Band:
    """A ``lin(x, lo, hi)`` band: raw value ``lo`` scores 0, ``hi`` scores 100."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ValueError(f"band hi ({self.hi}) must be greater than lo ({self.lo})")


@dataclass(frozen=True, slots=True)
class Weights:
    """Component weights (spec "Components" table, column "weight"); they sum to 1.00."""

    ctr_decay: float = 0.30          # spec "Components" #1
    frequency: float = 0.20          # spec "Components" #2
    reach_saturation: float = 0.15   # spec "Components" #3
    cpm_inflation: float = 0.10      # spec "Components" #4
    cpa_inflation: float = 0.15      # spec "Components" #5
    ranking_drop: float = 0.10       # spec "Components" #6

    def of(self, name: str) -> float:
        """The weight of component ``name`` (one of ``COMPONENT_NAMES``)."""
        return float(getattr(self, name))


#: Graph API ranking enums -> points (spec "Components" #6). UNKNOWN has no points.
RANKING_POINTS = {
    "ABOVE_AVERAGE": 4,
    "AVERAGE": 3,
    "BELOW_AVERAGE_35": 2,
    "BELOW_AVERAGE_20": 1,
    "BELOW_AVERAGE_10": 0,
}
RANKING_FIELDS = ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")


@dataclass(frozen=True, slots=True)
class FatigueConfig:
    """All thresholds, bands and weights of the score (FATIGUE_SPEC.md v1.1).

    ``audience_type`` picks the frequency band; ``conversion_action_type`` is
    the Graph API ``action_type`` counted as a conversion for CPA.
    """

    audience_type: AudienceType = AudienceType.PROSPECTING  # spec "Inputs per ad"
    conversion_action_type: str = "lead"                    # issue: default "lead"

    # --- Windows (spec "Windows") ---
    ramp_up_fraction: float = 0.20          # baseline starts at first day >= 20 % of median delivery-day impressions
    window_min_days: int = 3                # B and R start with 3 delivery days
    window_max_days: int = 14               # ... extended one delivery day at a time, at most 14
    window_min_impressions: int = 3_000     # ... until impressions >= 3,000

    # --- Component 1: CTR decay (spec "Components" #1) ---
    ctr_decay_band: Band = Band(0.10, 0.40)
    ctr_min_impressions: int = 1_000        # each window >= 1,000 impressions
    ctr_min_expected_clicks: float = 10.0   # each window >= 10 expected clicks
    ctr_z_min: float = 1.645                # one-sided two-proportion z gate (alpha = 0.05)

    # --- Component 2: frequency (spec "Components" #2) ---
    frequency_band_prospecting: Band = Band(2.0, 4.0)
    frequency_band_retargeting: Band = Band(4.0, 8.0)

    # --- Component 3: reach saturation (spec "Components" #3) ---
    reach_saturation_band: Band = Band(0.30, 0.90)

    # --- Component 4: CPM inflation (spec "Components" #4) ---
    cpm_inflation_band: Band = Band(0.10, 0.50)

    # --- Component 5: CPA inflation (spec "Components" #5) ---
    cpa_inflation_band: Band = Band(0.10, 1.00)
    cpa_min_baseline_conversions: float = 10.0   # conversions_B >= 10
    cpa_min_recent_spend_in_cpas: float = 3.0    # spend_R >= 3 x CPA_B

    # --- Component 6: ranking drop (spec "Components" #6) ---
    ranking_points_per_step: float = 25.0   # 25 per step
    ranking_cap: float = 100.0              # cap 100

    weights: Weights = field(default_factory=Weights)

    # --- Score, level, minimum data (spec "Score, level, minimum data") ---
    min_delivery_days: int = 6              # >= 6 delivery days
    min_available_components: int = 3       # >= 3 components available (component 1 among them)
    parity_cpa_ratio: float = 2.0           # Meta parity floor: CPA_R >= 2 x CPA_B ...
    parity_floor_score: float = 50.0        # ... lifts the score to at least 50.00
    caution_from: float = 25.0              # healthy < 25 <= caution
    warning_from: float = 50.0              # caution < 50 <= warning
    critical_from: float = 75.0             # warning < 75 <= critical
    score_decimals: int = 2                 # "rounded to 2 decimals"

    # --- Forecast (spec "Forecast: days until critical") ---
    forecast_min_impressions: int = 500     # fit over delivery days with impressions >= 500
    forecast_min_points: int = 7            # requires >= 7 points
    forecast_max_t_stat: float = -2.0       # ... and t-statistic of b <= -2
    forecast_growth_days: int = 3           # g = (F_T - F_{T-3}) / 3 (delivery days)
    forecast_horizon_days: int = 30         # h = 1 ... 30

    def frequency_band(self) -> Band:
        """The frequency band for ``audience_type`` (spec "Components" #2)."""
        if self.audience_type is AudienceType.RETARGETING:
            return self.frequency_band_retargeting
        return self.frequency_band_prospecting


DEFAULT_CONFIG = FatigueConfig()

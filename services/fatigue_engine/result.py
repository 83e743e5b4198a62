"""Plain result types of the fatigue score (no protobuf here).

Scores are 0-100; ratios are fractions; ``None`` means "not computed"
(never 0). The shapes mirror ``adfatigue.v1.FatigueResult`` so that
``proto_convert`` is a field-by-field copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum


class FatigueLevel(str, Enum):
    """Spec "Score, level, minimum data": healthy < 25 <= caution < 50 <= warning < 75 <= critical."""

    INSUFFICIENT_DATA = "insufficient_data"
    HEALTHY = "healthy"
    CAUTION = "caution"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class ComponentResult:
    """One of the six components (spec "Components" table).

    ``raw_value``: the table's raw value (e.g. d = 1 - CTR_R/CTR_B), ``None``
    when it could not be computed or is unbounded (CPA with 0 recent
    conversions). ``score``: 0-100, ``None`` when unavailable. ``weight``:
    the spec weight before renormalisation. ``details``: supporting numbers
    (z, window CTRs, counts ...), all floats.
    """

    name: str
    available: bool
    weight: float
    band_lo: float
    band_hi: float
    raw_value: float | None = None
    score: float | None = None
    unavailable_reason: str = ""
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """A formed window: dates (inclusive), delivery days, pooled impressions."""

    since: date
    until: date
    delivery_days: int
    impressions: int


@dataclass(frozen=True, slots=True)
class ForecastResult:
    """Days until critical (spec "Forecast: days until critical").

    ``days_to_critical``: 0 if already critical, the first h in 1..30 whose
    projected score is >= 75, else ``None`` with ``reason``. ``slope_b``: ln(CTR)
    per unit of cumulative frequency; ``slope_t_stat``: its WLS t-statistic;
    ``frequency_growth_per_day``: g, frequency per delivery day;
    ``projected_scores``: h = 1, 2, ... up to the crossing (or 30).
    """

    days_to_critical: int | None = None
    reason: str = ""
    slope_b: float | None = None
    slope_t_stat: float | None = None
    frequency_growth_per_day: float | None = None
    fit_points: int = 0
    projected_scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class FatigueResult:
    """The fatigue result of one ad (spec "Score, level, minimum data").

    ``score`` is rounded to 2 decimals, ``None`` exactly when ``level`` is
    INSUFFICIENT_DATA (then ``insufficient_reason`` says why). ``components``
    always lists all six, in spec order. ``delivery_days`` / ``impressions``
    cover the whole series, and so does ``spend``.
    """

    account_id: str
    ad_id: str
    ad_name: str
    adset_name: str
    campaign_name: str
    score: float | None
    level: FatigueLevel
    insufficient_reason: str
    components: tuple[ComponentResult, ...]
    meta_parity_floor_applied: bool
    forecast: ForecastResult
    baseline: WindowInfo | None
    recent: WindowInfo | None
    delivery_days: int
    impressions: int
    spend: Decimal | None = None  # Σ spend of the delivery days (account currency); None when none has spend

    def component(self, name: str) -> ComponentResult:
        """The component called ``name``; raises KeyError for an unknown name."""
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

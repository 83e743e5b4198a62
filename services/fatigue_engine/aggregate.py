"""From components to one score and a level (FATIGUE_SPEC.md "Score, level, minimum data")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from services.fatigue_engine.config import CPA_INFLATION, FatigueConfig
from services.fatigue_engine.result import ComponentResult, FatigueLevel


@dataclass(frozen=True, slots=True)
class Combined:
    """``score`` 0-100 rounded to ``config.score_decimals``; ``floor_applied`` when the
    Meta parity floor lifted it; ``weight_sum`` = Σ weights of available components."""

    score: float
    floor_applied: bool
    weight_sum: float


def meta_parity_line_crossed(cpa: ComponentResult | None) -> bool:
    """True when component 5 is available and CPA_R >= 2 x CPA_B (Meta's "creative fatigue" line;
    ``components.cpa_inflation`` applies ``config.parity_cpa_ratio``)."""
    return bool(cpa is not None and cpa.available and cpa.details.get("meta_fatigue_line_crossed", 0.0) > 0.0)


def combine(components: Iterable[ComponentResult], config: FatigueConfig) -> Combined:
    """score = Σ wᵢsᵢ / Σ wᵢ over available components, rounded to 2 decimals.

    Meta parity floor: if CPA_R >= 2 x CPA_B (component 5 available) the
    score is at least 50.00 and ``floor_applied`` is True when that lifted
    it. Raises ValueError when no component is available (callers check the
    minimum-data rule first).
    """
    num = den = 0.0
    cpa: ComponentResult | None = None
    for c in components:
        if c.name == CPA_INFLATION:
            cpa = c
        if c.available and c.score is not None:
            num += c.weight * c.score
            den += c.weight
    score, floor_applied = finish(num, den, meta_parity_line_crossed(cpa), config)
    return Combined(score, floor_applied, den)


def finish(weighted_sum: float, weight_sum: float, parity_line_crossed: bool,
           config: FatigueConfig) -> tuple[float, bool]:
    """Σwᵢsᵢ and Σwᵢ -> (score rounded to 2 decimals, floor applied); see ``combine``."""
    if weight_sum <= 0.0:
        raise ValueError("no available component to score")
    score = round(weighted_sum / weight_sum, config.score_decimals)
    if parity_line_crossed and score < config.parity_floor_score:
        return round(config.parity_floor_score, config.score_decimals), True
    return score, False


def level_for(score: float, config: FatigueConfig) -> FatigueLevel:
    """healthy < 25 <= caution < 50 <= warning < 75 <= critical (spec "Score, level, minimum data")."""
    if score >= config.critical_from:
        return FatigueLevel.CRITICAL
    if score >= config.warning_from:
        return FatigueLevel.WARNING
    if score >= config.caution_from:
        return FatigueLevel.CAUTION
    return FatigueLevel.HEALTHY

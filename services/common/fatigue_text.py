"""Fatigue results in a person's words: each component's raw values before -> after, in human units.

Used by ``adfatigue report`` and by the notifications. The component names,
their ``details`` keys and units are those of ``services/fatigue_engine``
(docs/fatigue-score.md): CTRs are fractions (shown as %), CPM and CPA are in
the account currency, frequency is impressions per person, ranking points
are 4 (above average) ... 0 (below average, bottom 10 %).
"""

from __future__ import annotations

from services.common.pb.adfatigue.v1 import fatigue_pb2

LEVEL_NAMES = {v.number: v.name.lower() for v in fatigue_pb2.FatigueLevel.DESCRIPTOR.values}
LEVEL_ORDER = {"critical": 0, "warning": 1, "caution": 2, "healthy": 3, "insufficient_data": 4, "fatigue_level_unspecified": 5}
RANKING_LABELS = {4: "above average", 3: "average", 2: "below average (bottom 35 %)", 1: "below average (bottom 20 %)",
                  0: "below average (bottom 10 %)"}
ARROW = "→"


def level_name(level: int) -> str:
    """``FatigueLevel`` number -> lower-case name (``warning``, ``insufficient_data``, ...)."""
    return LEVEL_NAMES.get(level, "fatigue_level_unspecified")


def money(value: float, currency: str = "") -> str:
    """``12.6 -> "12.60"`` (2 decimals, thousands separated) with the currency code after it when known."""
    text = f"{value:,.2f}"
    return f"{text} {currency}" if currency else text


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


def component_text(c: fatigue_pb2.FatigueComponent, currency: str = "") -> str:
    """One component as a person reads it, e.g. ``link CTR 3.71 % → 1.86 % (−50 %)``.

    An unavailable component reads ``<name>: unavailable (<reason>)``.
    """
    d = c.details
    if not c.available:
        return f"{c.name}: unavailable ({c.unavailable_reason})"
    if c.name == "ctr_decay" and "ctr_baseline" in d:
        text = f"link CTR {_pct(d['ctr_baseline'])} {ARROW} {_pct(d['ctr_recent'])}"
        if c.HasField("raw_value"):
            text += f" ({-c.raw_value * 100:+.0f} %)"
        if d.get("z_gate_passed", 1.0) == 0.0:
            text += f", not significant (z {d.get('z', 0.0):.2f} < 1.645)"
        return text
    if c.name == "frequency" and c.HasField("raw_value"):
        return f"frequency {c.raw_value:.1f}"
    if c.name == "reach_saturation" and "nrr_baseline" in d:
        return (f"new people per 1,000 impressions {d['nrr_baseline'] * 1000:.0f} {ARROW} "
                f"{d['nrr_recent'] * 1000:.0f}")
    if c.name == "cpm_inflation" and "cpm_baseline" in d:
        return f"CPM {money(d['cpm_baseline'])} {ARROW} {money(d['cpm_recent'], currency)}"
    if c.name == "cpa_inflation":
        if "cpa_ratio" in d:
            return (f"CPA {money(d['cpa_baseline'])} {ARROW} {money(d['cpa_recent'], currency)} "
                    f"(× {d['cpa_ratio']:.1f})")
        if "cpa_baseline" in d:
            return (f"CPA {money(d['cpa_baseline'], currency)} {ARROW} no result for "
                    f"{money(d.get('spend_recent', 0.0), currency)} spent")
    if c.name == "ranking_drop" and c.HasField("raw_value"):
        parts = []
        for field in ("quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking"):
            b, r = d.get(f"{field}_baseline"), d.get(f"{field}_recent")
            if b is not None and r is not None and r < b:
                parts.append(f"{field.split('_')[0]} {RANKING_LABELS.get(int(b), b)} {ARROW} "
                             f"{RANKING_LABELS.get(int(r), r)}")
        steps = int(c.raw_value)
        if not steps:
            return "rankings unchanged"
        return f"rankings −{steps} step{'s' if steps != 1 else ''}" + (f" ({'; '.join(parts)})" if parts else "")
    raw = f"{c.raw_value:.3f}" if c.HasField("raw_value") else "-"
    return f"{c.name} {raw}"


def main_reasons(result: fatigue_pb2.FatigueResult, currency: str = "", n: int = 2) -> list[str]:
    """The ``n`` available components contributing most to the score (score × weight), in words.

    An insufficient result has no score: its one reason is ``insufficient_reason``.
    """
    if not result.HasField("score"):
        return [result.insufficient_reason] if result.insufficient_reason else []
    scored = [c for c in result.components if c.available and c.HasField("score") and c.score > 0]
    scored.sort(key=lambda c: c.score * c.weight, reverse=True)
    reasons = [component_text(c, currency) for c in scored[:n]]
    if result.meta_parity_floor_applied:
        reasons.append("cost per result at least doubled (Meta's creative-fatigue line): score held at ≥ 50")
    return reasons

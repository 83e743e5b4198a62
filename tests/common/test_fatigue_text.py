"""Components in a person's units: before -> after, currency, multiples (pure unit test of fatigue_text)."""

from services.common.fatigue_text import component_text, main_reasons
from services.common.pb.adfatigue.v1 import fatigue_pb2


def component(name, raw=None, score=None, weight=0.1, available=True, unavailable_reason="", **details):
    c = fatigue_pb2.FatigueComponent(name=name, available=available, weight=weight, details=details,
                                     unavailable_reason=unavailable_reason)
    if raw is not None:
        c.raw_value = raw
    if score is not None:
        c.score = score
    return c


def test_each_component_reads_in_human_units():
    ctr = component("ctr_decay", raw=0.4986, score=100, ctr_baseline=0.0371, ctr_recent=0.0186, z=9.1, z_gate_passed=1)
    assert component_text(ctr) == "link CTR 3.71 % → 1.86 % (-50 %)"
    assert component_text(component("cpm_inflation", raw=0.34, cpm_baseline=12.6, cpm_recent=16.9), "MYR") == \
        "CPM 12.60 → 16.90 MYR"
    assert component_text(component("cpa_inflation", raw=1.1, cpa_baseline=4.1, cpa_recent=8.61, cpa_ratio=2.1),
                          "MYR") == "CPA 4.10 → 8.61 MYR (× 2.1)"
    assert component_text(component("cpa_inflation", score=100, cpa_baseline=4.1, spend_recent=60.0), "MYR") == \
        "CPA 4.10 MYR → no result for 60.00 MYR spent"
    assert component_text(component("frequency", raw=3.2)) == "frequency 3.2"
    assert component_text(component("ranking_drop", raw=2, quality_ranking_baseline=3, quality_ranking_recent=1)) \
        == "rankings −2 steps (quality average → below average (bottom 20 %))"
    weak = component("ctr_decay", raw=0.2, score=0, ctr_baseline=0.02, ctr_recent=0.016, z=1.165, z_gate_passed=0)
    assert component_text(weak).endswith("not significant (z 1.17 < 1.645)")
    off = component("frequency", available=False, unavailable_reason="reach_cum not supplied")
    assert component_text(off) == "frequency: unavailable (reach_cum not supplied)"


def test_main_reasons_are_the_largest_contributions_or_the_insufficient_reason():
    r = fatigue_pb2.FatigueResult(score=60.0, components=[
        component("cpm_inflation", raw=0.5, score=100, weight=0.10, cpm_baseline=10, cpm_recent=15),
        component("ctr_decay", raw=0.3, score=66.7, weight=0.30, ctr_baseline=0.02, ctr_recent=0.014, z_gate_passed=1),
        component("ranking_drop", raw=0, score=0, weight=0.10),
    ])
    assert main_reasons(r, "EUR") == ["link CTR 2.00 % → 1.40 % (-30 %)", "CPM 10.00 → 15.00 EUR"]
    thin = fatigue_pb2.FatigueResult(insufficient_reason="5 delivery day(s); at least 6 are needed")
    assert main_reasons(thin) == ["5 delivery day(s); at least 6 are needed"]

"""The telemetry-overhead benchmark keeps working: every variant served L1 hits only (not a timing test)."""

from __future__ import annotations

import pytest

from bench.telemetry_overhead import VARIANTS, measure, report

pytestmark = pytest.mark.e2e


def test_every_variant_serves_l1_hits_and_the_report_names_the_ratios():
    result = measure(seconds=0.3, rounds=1, clients=4, log=lambda *a: None)
    assert set(result["median_rps"]) == set(VARIANTS) and all(v > 0 for v in result["median_rps"].values())
    for name in ("on", "traced", "off"):
        run = result["rounds"][name][0]
        assert run["errors"] == 0 and run["l1_hits"] == run["requests"] > 0
    assert result["rounds"]["none"][0]["l1_hits"] == 0   # every instrument a no-op: GetStats reads zeros
    text = report(result)
    assert "CPU cost per L1 hit" in text and "ratio to off" in text


def test_the_instruction_verdict_is_the_whole_gateway_ratio_with_garbage_collection_apart():
    """The report's verdict reads the whole-gateway instruction counts (collection counted apart) and names what
    the difference is; an over-budget ratio says so (pure: a made-up result, no processes)."""
    from bench.telemetry_overhead import _instructions_report

    def result(on: float) -> dict:
        return {"instructions": {"calls": 10, "rounds": 1, "per_l1_hit": {"on": on, "off": 800_000.0, "none": 810_000.0},
                                 "runs": {"on": [on], "off": [800_000.0], "none": [810_000.0]},
                                 "gc_per_l1_hit": {"on": 5_000.0, "off": 5_000.0, "none": 5_000.0},
                                 "overhead_vs_off": on / 800_000 - 1, "overhead_vs_none": on / 810_000 - 1},
                "calls_added": {"calls": 10, "added": [{"function": "services/common/telemetry.py:1(record)",
                                                         "on": 1.0, "off": 0.0}]},
                "wrapper_instructions": {"calls": 10, "rounds": 1, "added": 9_000.0,
                                         "per_call": {"timed": 509_000.0, "untimed": 500_000.0}}}

    within = "\n".join(_instructions_report(result(820_000.0)))
    assert "+2.5% instructions per L1 hit" in within and "within the 5 % budget" in within
    assert "`services/common/telemetry.py:1(record)`" in within and "9,000 added" in within and "+1.12%" in within
    over = "\n".join(_instructions_report(result(860_000.0)))
    assert "+7.5% instructions per L1 hit" in over and "over the 5 % budget" in over

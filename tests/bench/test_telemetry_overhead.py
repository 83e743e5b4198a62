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

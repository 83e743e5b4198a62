"""A simulated day of 1,000 accounts (bench/scheduler_simulation.py, the production planner on a virtual clock):
Meta's budget is never exceeded, and live pages are never staler than their class interval while it allows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "scheduler_simulation.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("scheduler_simulation", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def day(sim):
    return sim.simulate(sim.SimConfig(accounts=1000, hours=24, warmup_hours=2, measure_all=False))


def test_the_budget_is_never_exceeded_over_a_day_of_1000_accounts(day):
    calls = day["calls"]
    assert calls["max_in_any_hour_total"] <= day["settings"]["app_budget_calls"] == 200
    assert calls["max_in_any_hour_scheduler"] <= day["settings"]["scheduler_share"] == 150
    assert "scheduler" not in calls["refused"]  # it never planned a call the budget did not have
    assert calls["scheduler"] > 0 and day["cycles"] == 26 * 6


def test_live_pages_are_never_staler_than_their_class_interval_while_the_budget_allows(day):
    g = day["guarantee"]
    assert g["checked"] > 1000  # the property was exercised
    assert g["violations"] == 0, g["first_violations"]


def test_without_the_scheduler_live_pages_do_go_stale(sim):
    """The check above can fail: with reads alone, live pages outlive their interval."""
    report = sim.simulate(sim.SimConfig(accounts=300, hours=6, warmup_hours=1, views_per_day=600, scheduler=False,
                                        measure_all=False))
    assert report["guarantee"]["violations"] > 0


def test_bad_simulation_configs_are_refused(sim):
    with pytest.raises(ValueError):
        sim.simulate(sim.SimConfig(accounts=0))
    with pytest.raises(ValueError):
        sim.simulate(sim.SimConfig(subscribe_probability=2))

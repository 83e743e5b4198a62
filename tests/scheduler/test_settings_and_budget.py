"""Settings give clear errors; the budget the scheduler may spend, local and shared through Redis."""

from __future__ import annotations

import pytest

from services.meta_fetcher.pacing import build_pacer
from services.meta_fetcher.settings import FetcherSettings
from services.scheduler.budget import SOURCE_LOCAL, SOURCE_REDIS, BudgetSnapshot, LocalBudget, RedisBudget, allowance
from services.scheduler.server import parse_args
from services.scheduler.settings import SchedulerSettings, SettingsError

from tests.scheduler.conftest import REDIS_URL


def test_defaults_leave_a_quarter_of_metas_budget_for_on_demand_reads():
    s = SchedulerSettings.from_env({})
    assert (s.budget_calls, s.share_calls, s.reserve, s.interval_s) == (200, 150, 50, 600)
    assert s.pace_calls == 25  # 150 calls/h spread over six 10-minute cycles
    assert s.lease_key == "adfatigue:scheduler:leader"
    assert SchedulerSettings.from_env({"REDIS_KEY_PREFIX": "t1:"}).lease_key == "t1:scheduler:leader"
    assert SchedulerSettings.from_env({"REDIS_KEY_PREFIX": "t1:", "SCHEDULER_LEASE_KEY": "k"}).lease_key == "k"
    assert SchedulerSettings.from_env({"META_BUDGET_CALLS": "300"}).reserve == 150


@pytest.mark.parametrize("env, words", [
    ({"SCHEDULER_BUDGET_CALLS_PER_HOUR": "lots"},
     "SCHEDULER_BUDGET_CALLS_PER_HOUR='lots' is invalid: expected an integer >= 1 (default 150)"),
    ({"SCHEDULER_BUDGET_CALLS_PER_HOUR": "250"}, "must be between 1 and META_BUDGET_CALLS=200"),
    ({"SCHEDULER_BUDGET_CALLS_PER_HOUR": "0"}, "SCHEDULER_BUDGET_CALLS_PER_HOUR='0' is invalid: expected an integer >= 1"),
    ({"SCHEDULER_INTERVAL_SECONDS": "-5"}, "SCHEDULER_INTERVAL_SECONDS='-5' is invalid: expected a number > 0"),
    ({"SCHEDULER_INTERVAL_SECONDS": "nan"}, "SCHEDULER_INTERVAL_SECONDS='nan' is invalid: expected a number > 0"),
    ({"SCHEDULER_LEASE_TTL_SECONDS": "0.2"}, "SCHEDULER_LEASE_TTL_SECONDS='0.2' is invalid: expected a number >= 1"),
    ({"SCHEDULER_ONDEMAND_RESERVE_CALLS": "200"}, "SCHEDULER_ONDEMAND_RESERVE_CALLS=200 must be between 0"),
    ({"SCHEDULER_WEBHOOK_URL": "hooks.slack.com/x"},
     "SCHEDULER_WEBHOOK_URL=(hidden) is invalid: not an http(s) URL; expected an http(s) URL"),
    ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL='127.0.0.1:6379' is invalid: not a redis://"),
    ({"META_PAGE_LIMIT": "0"}, "META_PAGE_LIMIT='0' is invalid: expected an integer >= 1"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL='CHATTY' is invalid: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
])
def test_bad_settings_name_the_variable(env, words):
    with pytest.raises(SettingsError) as err:
        SchedulerSettings.from_env(env)
    assert words in str(err.value)


def test_the_server_exits_with_the_message_on_bad_settings(capsys):
    base = {"MONGODB_URI": "mongodb://127.0.0.1:1", "JWT_HS256_SECRET": "x" * 40}
    with pytest.raises(SystemExit) as exc:
        parse_args(["--port", "0"], {**base, "SCHEDULER_BUDGET_CALLS_PER_HOUR": "500"})
    assert exc.value.code == 2
    assert "SCHEDULER_BUDGET_CALLS_PER_HOUR=500 must be between 1 and META_BUDGET_CALLS=200" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--port", "0", "--interval-seconds", "-1"], base)
    assert "SCHEDULER_INTERVAL_SECONDS=-1.0 is invalid: expected a number > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--port", "0"], {"JWT_HS256_SECRET": "x" * 40})
    assert "MONGODB_URI" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--port", "0"], {"MONGODB_URI": "mongodb://127.0.0.1:1"})
    assert "JWT_HS256_SECRET" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--port", "70000"], base)
    assert "ADFATIGUE_SCHEDULER_PORT=70000 is invalid: expected an integer >= 0 and <= 65535" in capsys.readouterr().err
    args = parse_args(["--port", "0", "--interval-seconds", "30", "--lease-key", "k"], base)
    assert (args.settings.interval_s, args.settings.lease_key, args.settings.redis_url) == (30, "k", None)


def test_the_scheduler_leaves_the_reserve_and_stops_at_its_share():
    snap = lambda app_used, mine: BudgetSnapshot(SOURCE_REDIS, 200, 3600, app_used, mine, 150, 50)
    assert snap(0, 0).scheduler_left == 150
    assert snap(100, 0).scheduler_left == 50          # on-demand used 100: 200 - 100 - 50
    assert snap(140, 140).scheduler_left == 10        # its own 140 of 150
    assert snap(190, 20).scheduler_left == 0          # never below the reserve
    local = BudgetSnapshot(SOURCE_LOCAL, 200, 3600, None, 30, 150, 50)
    assert (local.scheduler_left, local.app_left, local.ondemand_used) == (120, None, None)
    a = allowance(snap(0, 0), pace_calls=25, burst_cycles=3, interval_s=600)
    assert (a.hard, a.burst, a.paced, a.cycles_per_window) == (150, 75, 25, 6)
    with pytest.raises(ValueError):
        allowance(snap(0, 0), pace_calls=25, burst_cycles=0.5, interval_s=600)


async def test_local_budget_counts_its_own_calls_over_a_sliding_hour():
    t = [0.0]
    budget = LocalBudget(SchedulerSettings(), clock=lambda: t[0])
    await budget.record(100)
    t[0] = 1800
    await budget.record(40)
    assert (await budget.snapshot()).scheduler_left == 10
    t[0] = 3600.5  # the first 100 left the window
    snap = await budget.snapshot()
    assert (snap.source, snap.scheduler_used, snap.scheduler_left, snap.app_used) == (SOURCE_LOCAL, 40, 110, None)


async def test_redis_budget_reads_the_fetchers_window_and_remembers_its_own_spending(redis_client, prefix):
    settings = SchedulerSettings(budget_key_prefix=prefix + "budget", lease_key=prefix + "leader")
    # what meta_fetcher spends before each Meta call, through the one budget module
    fetcher = build_pacer(FetcherSettings(redis_url=REDIS_URL, budget_key_prefix=prefix + "budget"))
    try:
        for _ in range(30):
            await fetcher.before_call("1")
    finally:
        await fetcher.aclose()
    budget = RedisBudget(redis_client, settings)
    await budget.record(12)
    await budget.record(0)
    snap = await budget.snapshot()
    assert (snap.source, snap.app_used, snap.scheduler_used, snap.app_left) == (SOURCE_REDIS, 30, 12, 170)
    assert snap.scheduler_left == min(150 - 12, 200 - 30 - 50)
    other_leader = RedisBudget(redis_client, settings)  # a new leader sees what the old one spent
    assert (await other_leader.snapshot()).scheduler_used == 12

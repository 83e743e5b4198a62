"""The one settings layer: every variable declared once, bad values named at start-up, flags win."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from services.bff.settings import BffSettings
from services.cache_gateway.settings import GatewaySettings
from services.cli.settings import CliSettings
from services.common.settings import (
    AuthSettings,
    MetaBudgetSettings,
    SettingsError,
    SettingsModel,
    env_name,
)
from services.fatigue_engine.settings import EngineSettings
from services.meta_fetcher.settings import FetcherSettings
from services.meta_sandbox.settings import SandboxSettings
from services.scheduler.settings import SchedulerSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICE_MODELS = [GatewaySettings, FetcherSettings, SchedulerSettings, EngineSettings, BffSettings, CliSettings,
                  SandboxSettings]


def declaring_class(model: type[SettingsModel], field: str) -> type:
    """The class of ``model``'s MRO whose own annotations declare ``field``."""
    return next(c for c in reversed(model.__mro__) if field in c.__dict__.get("__annotations__", {}))


def test_every_variable_is_declared_once_and_shared_parts_are_shared():
    owners: dict[str, set[type]] = {}
    for model in SERVICE_MODELS:
        for name, field in model.model_fields.items():
            var = env_name(field)
            assert var, f"{model.__name__}.{name} has no environment variable"
            owners.setdefault(var, set()).add(declaring_class(model, name))
    assert {v: o for v, o in owners.items() if len(o) > 1} == {}
    # the variables read by several services come from one shared part, not from each service
    for var in ("MONGODB_URI", "REDIS_URL", "META_BUDGET_CALLS", "FRESHNESS_PARTIAL_SECONDS",
                "RESTATEMENT_WINDOW_DAYS", "JWT_HS256_SECRET", "LOG_LEVEL", "META_PAGE_LIMIT",
                "ADFATIGUE_GATEWAY_ADDR", "META_GRAPH_URL", "META_ACCESS_TOKEN", "JWT_AUDIENCE"):
        (owner,) = owners[var]
        assert owner.__module__ == "services.common.settings.parts", var
    assert issubclass(FetcherSettings, MetaBudgetSettings) and issubclass(SchedulerSettings, MetaBudgetSettings)


def test_both_sides_of_the_budget_and_freshness_read_the_same_values():
    env = {"META_BUDGET_CALLS": "220", "META_BUDGET_WINDOW_S": "1800", "RESTATEMENT_WINDOW_DAYS": "7",
           "FRESHNESS_PARTIAL_SECONDS": "60"}
    fetcher, scheduler = FetcherSettings.from_env(env), SchedulerSettings.from_env(env)
    gateway = GatewaySettings.from_env(env)
    assert (fetcher.budget_calls, fetcher.budget_window_s) == (scheduler.budget_calls, scheduler.budget_window_s) \
        == (220, 1800)
    assert gateway.policy == scheduler.policy and gateway.policy.restatement_days == 7


@pytest.mark.parametrize("model, env, words", [
    # each kind of value: integer, number, finite number, bound, boolean, choice, URL, pattern
    (FetcherSettings, {"META_RETRIES": "many"}, "META_RETRIES='many' is invalid: expected an integer >= 0 (default 3)"),
    (FetcherSettings, {"META_TIMEOUT_S": "soon"}, "META_TIMEOUT_S='soon' is invalid: expected a number > 0"),
    (FetcherSettings, {"META_BUDGET_WINDOW_S": "inf"}, "META_BUDGET_WINDOW_S='inf' is invalid: expected a number > 0"),
    (FetcherSettings, {"META_USAGE_PAUSE_PCT": "120"},
     "META_USAGE_PAUSE_PCT='120' is invalid: expected a number > 0 and <= 100 (default 85.0)"),
    (FetcherSettings, {"META_ASYNC_FALLBACK": "maybe"},
     "META_ASYNC_FALLBACK='maybe' is invalid: expected true or false (1/0, yes/no, on/off) (default True)"),
    (GatewaySettings, {"GATEWAY_WITH_REACH_CUM": "sometimes"}, "GATEWAY_WITH_REACH_CUM='sometimes' is invalid"),
    (GatewaySettings, {"L1_MAX_BYTES": "-1"}, "L1_MAX_BYTES='-1' is invalid: expected an integer >= 0"),
    (GatewaySettings, {"ADFATIGUE_GATEWAY_PORT": "99999"},
     "ADFATIGUE_GATEWAY_PORT='99999' is invalid: expected an integer >= 0 and <= 65535 (default 50051)"),
    (EngineSettings, {"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD' is invalid: expected one of DEBUG, INFO, WARNING"),
    (GatewaySettings, {"REDIS_URL": "localhost:6379"},
     "REDIS_URL='localhost:6379' is invalid: not a redis://, rediss:// or unix:// URL; expected a URL such as"),
    (FetcherSettings, {"META_API_VERSION": "23"}, "META_API_VERSION='23' is invalid: expected a version such as v23.0"),
    # the CLI's and the shared address / URL / token kinds
    (CliSettings, {"ADFATIGUE_GATEWAY_ADDR": "cache-gateway"},
     "ADFATIGUE_GATEWAY_ADDR='cache-gateway' is invalid: not host:port; expected host:port (default 127.0.0.1:50051)"),
    (SchedulerSettings, {"ADFATIGUE_GATEWAY_ADDR": "cache-gateway:99999"},
     "ADFATIGUE_GATEWAY_ADDR='cache-gateway:99999' is invalid: not host:port; expected host:port"),
    (CliSettings, {"PROMETHEUS_URL": "prometheus:9090"},
     "PROMETHEUS_URL='prometheus:9090' is invalid: not an http(s) URL; expected an http(s) URL"),
    (CliSettings, {"ADFATIGUE_TOKEN": "Bearer eyJabc"},
     "ADFATIGUE_TOKEN=(hidden) is invalid: contains spaces (give the token alone, without 'Bearer '); "
     "expected a bearer token (no spaces)"),
    (FetcherSettings, {"META_GRAPH_URL": "graph.facebook.com"},
     "META_GRAPH_URL='graph.facebook.com' is invalid: not an http(s) URL; expected an http(s) URL "
     "(default https://graph.facebook.com)"),
    (CliSettings, {"META_GRAPH_URL": "ftp://graph.example"}, "META_GRAPH_URL='ftp://graph.example' is invalid"),
])
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(model, env, words):
    with pytest.raises(SettingsError) as err:
        model.from_env(env)
    assert words in str(err.value)


def test_secrets_are_never_shown_and_all_problems_are_listed_at_once():
    with pytest.raises(SettingsError) as err:
        SchedulerSettings.from_env({"SCHEDULER_WEBHOOK_URL": "ftp://hooks.example/s3cret-path", "META_RETRIES": "x",
                                    "SCHEDULER_INTERVAL_SECONDS": "0", "RESTATEMENT_WINDOW_DAYS": "-1"})
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and "s3cret" not in str(err.value)  # META_RETRIES is not the scheduler's: ignored
    assert any(line.startswith("SCHEDULER_WEBHOOK_URL=(hidden) is invalid") for line in lines)
    assert "s3cret" not in repr(SchedulerSettings(webhook_url="https://hooks.example/s3cret-path"))
    assert "hunter2" not in repr(AuthSettings(jwt_hs256_secret="hunter2"))


def test_keywords_win_over_the_environment_and_unknown_keywords_are_refused():
    env = {"SCHEDULER_INTERVAL_SECONDS": "30", "REDIS_KEY_PREFIX": "t9:"}
    assert SchedulerSettings.from_env(env).interval_s == 30
    assert SchedulerSettings.from_env(env, interval_s=5, host="ignored: not a setting").interval_s == 5
    assert SchedulerSettings.from_env(env).lease_key == "t9:scheduler:leader"
    with pytest.raises(SettingsError, match="unknown setting 'intervl_s'"):
        SchedulerSettings(intervl_s=5)
    # constructing directly never reads the process environment
    assert SchedulerSettings().interval_s == 600


def test_empty_variables_count_as_unset_and_replace_checks_again():
    assert FetcherSettings.from_env({"META_RETRIES": "", "META_PAGE_LIMIT": "  "}).retries == 3
    settings = FetcherSettings(retries=1)
    assert settings.replace(retries=2).retries == 2 and settings.retries == 1
    with pytest.raises(SettingsError, match="META_RETRIES=-1 is invalid"):
        settings.replace(retries=-1)
    with pytest.raises(ValueError):  # frozen
        settings.retries = 5


def test_required_settings_say_what_to_set():
    with pytest.raises(SettingsError, match="set JWT_HS256_SECRET .* or JWT_PUBLIC_KEY"):
        AuthSettings().require_verifier_key()
    with pytest.raises(SettingsError, match="MONGODB_URI is not set: set it"):
        GatewaySettings().require("mongodb_uri", "set it")


@pytest.mark.parametrize("module, args, env, words", [
    ("services.cache_gateway", ["--port", "0"], {"MONGODB_URI": "mongodb://127.0.0.1:1", "JWT_HS256_SECRET": "x" * 40,
                                                 "L1_TTL_SECONDS": "a minute"},
     "L1_TTL_SECONDS='a minute' is invalid: expected a number >= 0 (default 300.0)"),
    ("services.meta_fetcher", ["--port", "0", "--graph-url", "http://127.0.0.1:9"], {"META_MAX_PAGES": "0"},
     "META_MAX_PAGES='0' is invalid: expected an integer >= 1 (default 1000)"),
    ("services.scheduler", ["--port", "0"], {"MONGODB_URI": "mongodb://127.0.0.1:1", "JWT_HS256_SECRET": "x" * 40,
                                             "SCHEDULER_IDLE_AFTER_SECONDS": "forever"},
     "SCHEDULER_IDLE_AFTER_SECONDS='forever' is invalid: expected a number > 0"),
    ("services.fatigue_engine", ["--port", "0"], {"LOG_LEVEL": "verbose"}, "LOG_LEVEL='VERBOSE' is invalid"),
    ("services.cli.main", ["token", "--account", "act_1"], {"ADFATIGUE_GATEWAY_ADDR": "here"},
     "ADFATIGUE_GATEWAY_ADDR='here' is invalid: not host:port"),
    ("services.cli.main", ["status", "--prometheus", "localhost:9090"], {},
     "PROMETHEUS_URL='localhost:9090' is invalid: not an http(s) URL"),
])
def test_each_service_refuses_to_start_with_a_bad_value(module, args, env, words):
    proc = subprocess.run([sys.executable, "-m", module, *args], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr


def test_services_common_and_providers_import_no_service():
    """Imports flow downward: nothing under services/common or services/providers imports a service package."""
    services = {p.name for p in (ROOT / "services").iterdir()
                if p.is_dir() and p.name not in ("common", "providers", "__pycache__")}
    offenders = []
    for path in [*(ROOT / "services" / "common").rglob("*.py"), *(ROOT / "services" / "providers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.startswith("services.") and n.split(".")[1] in services]
    assert offenders == []

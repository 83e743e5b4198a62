"""The CLI reads its environment through one model (services/cli/settings.py); flags win over variables."""

from __future__ import annotations

import json

import jwt
import pytest

from services.cli.gateway_calls import NoToken, cli_token
from services.cli.local_system import gateway_address, running_endpoints
from services.cli.main import build_parser
from services.cli.operator_commands import development_token
from services.cli.settings import CliSettings
from services.cli.up_command import real_graph_url
from services.common.settings import parse_service_args

SECRET = "cli-settings-test-secret-" + "x" * 24


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def parsed(argv: list[str], env: dict[str, str]):
    parser, _ = build_parser()
    return parse_service_args(parser, CliSettings, argv, env).settings


def test_flags_override_the_variables_of_the_same_fields(tmp_path):
    env = {"ADFATIGUE_HOME": str(tmp_path / "home"), "ADFATIGUE_GATEWAY_ADDR": "gw.env:50051",
           "PROMETHEUS_URL": "http://prom.env:9090", "MONGODB_DB": "from_env"}
    from_env = parsed(["status"], env)
    assert (from_env.data_dir, from_env.gateway_addr, from_env.prometheus_url) == (
        str(tmp_path / "home"), "gw.env:50051", "http://prom.env:9090")
    flags = parsed(["--data-dir", str(tmp_path / "flag"), "report", "--account", "act_1", "--gateway",
                    "gw.flag:1"], env)
    assert (flags.data_dir, flags.gateway_addr) == (str(tmp_path / "flag"), "gw.flag:1")
    assert parsed(["status", "--prometheus", "https://prom.flag"], env).prometheus_url == "https://prom.flag"
    assert parsed(["backup", "--out", "x", "--db", "from_flag"], env).mongodb_db == "from_flag"
    assert parsed(["backup", "--out", "x"], env).mongodb_db == "from_env"


def test_a_bad_variable_stops_the_command_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        parsed(["status"], {"ADFATIGUE_GATEWAY_ADDR": "no port here"})
    assert exit_.value.code == 2
    assert "ADFATIGUE_GATEWAY_ADDR='no port here' is invalid: not host:port" in capsys.readouterr().err


def test_the_gateway_is_the_flag_or_variable_then_the_running_up_then_the_default(tmp_path):
    assert gateway_address(tmp_path, CliSettings()) == "127.0.0.1:50051"
    (tmp_path / "endpoints.json").write_text(json.dumps({"cache_gateway": "127.0.0.1:41001"}))
    assert gateway_address(tmp_path, CliSettings()) == "127.0.0.1:41001"
    assert gateway_address(tmp_path, CliSettings.from_env({"ADFATIGUE_GATEWAY_ADDR": "gw:7"})) == "gw:7"
    # the default value given explicitly still wins over endpoints.json
    assert gateway_address(tmp_path, CliSettings(gateway_addr="127.0.0.1:50051")) == "127.0.0.1:50051"
    # an endpoints.json cut short (up killed while writing) or not an object: as if none runs, no traceback
    for damaged in ('{"cache_gateway": "127.0', "[1, 2]"):
        (tmp_path / "endpoints.json").write_text(damaged)
        assert running_endpoints(tmp_path) == {}
        assert gateway_address(tmp_path, CliSettings()) == "127.0.0.1:50051"


def test_up_calls_real_meta_only_with_both_the_token_and_the_url():
    assert real_graph_url(CliSettings()) is None
    assert real_graph_url(CliSettings.from_env({"META_ACCESS_TOKEN": "EAAtoken"})) is None
    assert real_graph_url(CliSettings.from_env({"META_GRAPH_URL": "https://graph.facebook.com"})) is None
    both = CliSettings.from_env({"META_ACCESS_TOKEN": "EAAtoken", "META_GRAPH_URL": "https://graph.facebook.com"})
    assert real_graph_url(both) == "https://graph.facebook.com"


def test_tokens_come_from_adfatigue_token_or_the_local_secret(tmp_path):
    assert cli_token(tmp_path, CliSettings.from_env({"ADFATIGUE_TOKEN": "given.token.value"})) == "given.token.value"
    with pytest.raises(NoToken, match="set ADFATIGUE_TOKEN"):
        cli_token(tmp_path, CliSettings())
    minted = cli_token(tmp_path, CliSettings.from_env({"JWT_HS256_SECRET": SECRET}))
    assert claims(minted)["sub"] == "adfatigue-cli"
    (tmp_path / "dev-jwt-secret").write_text(SECRET)
    token = development_token(tmp_path, CliSettings.from_env({"JWT_AUDIENCE": "adfatigue-test"}), ["act_1"],
                              False, 60)
    assert claims(token)["aud"] == "adfatigue-test"

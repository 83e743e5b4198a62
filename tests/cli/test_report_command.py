"""`adfatigue report` as a person runs it (a process), against the whole system serving the sample account."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from google.protobuf.json_format import ParseDict

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw
from tests.shared_data import require_real_csv
from tests.terminal import run_on_terminal

pytestmark = pytest.mark.e2e

RANGE = ["--since", "2025-10-29", "--until", "2026-04-29"]


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    config = SystemConfig(data_dir=tmp_path_factory.mktemp("report"), csv_accounts=[(require_real_csv(), "1001")],
                          gateway_port=0, scheduler_interval_s=3600, synthetic=False,
                          mongodb_uri=os.environ.get("MONGODB_URI") or None,
                          extra_env={"MONGODB_DB": f"report_{os.getpid()}"})
    with LocalSystem(config) as running:
        yield running


def cli(system, *args: str, env: dict | None = None, data_dir_first: bool = False) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "ADFATIGUE_TOKEN")}
    where = ["--data-dir", str(system.config.data_dir)]
    argv = [*where, *args] if data_dir_first else [*args, *where]
    return subprocess.run([sys.executable, "-m", "services.cli.main", *argv], capture_output=True, text=True,
                          timeout=300, env={**base, **(env or {})})


def on_terminal(system, *args: str, env: dict | None = None) -> str:
    """The CLI with a pseudo-terminal as stdout (a real tty: rich decides colour by itself)."""
    base = {"NO_COLOR": None, "FORCE_COLOR": None} | (env or {})
    status, text = run_on_terminal([sys.executable, "-m", "services.cli.main", *args, "--data-dir",
                                    str(system.config.data_dir)], env=base)
    assert status == 0, text
    return text


def test_table_names_campaign_ad_set_and_ad_with_values_before_and_after_and_spend(system):
    out = cli(system, "report", "--account", "act_1001", *RANGE)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Campaign 01 LEADS / Ad set 01 / Ad 001 Video 003" in text
    assert "link CTR" in text and "→" in text and "MYR" in text and "CPA" in text and "× " in text
    assert "spend MYR" in text and "on warning + critical ads" in text
    assert "55 ads, 15 scored, 40 insufficient_data" in text
    assert "..." not in text  # reasons wrap, never cut
    assert "GATEWAY_WITH_REACH_CUM=1" in text  # the missing-reach reason says how to get it
    assert "\x1b[" not in text  # not a terminal: no colour


def test_colour_on_a_terminal_and_none_with_no_color(system):
    coloured = on_terminal(system, "report", "--account", "act_1001", *RANGE)
    assert "\x1b[" in coloured and "Ad 001 Video 003" in coloured
    plain = on_terminal(system, "report", "--account", "act_1001", *RANGE, env={"NO_COLOR": "1"})
    assert "Ad 001 Video 003" in plain
    assert "\x1b[31m" not in plain and "\x1b[1;31m" not in plain and "\x1b[33m" not in plain


def test_json_is_the_protobuf_mapping_with_proto_field_names_and_full_ids(system):
    out = cli(system, "report", "--account", "1001", *RANGE, "--format", "json", data_dir_first=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["account_id"] == "act_1001" and data["account_currency"] == "MYR"
    assert all(r["account_id"] == "act_1001" for r in data["results"])
    first = next(r for r in data["results"] if r["ad_name"] == "Ad 001 Video 003")
    assert first["campaign_name"] == "Campaign 01 LEADS" and first["level"] in ("WARNING", "CRITICAL")
    assert isinstance(first["score"], float) and float(first["spend"]) > 0
    ctr = next(c for c in first["components"] if c["name"] == "ctr_decay")
    assert isinstance(ctr["raw_value"], float) and isinstance(ctr["details"]["ctr_baseline"], float)
    assert "insufficient_reason" in first and "insufficientReason" not in json.dumps(data)
    for r in data["results"]:  # the mapping round-trips once ids are the proto's again
        r["account_id"] = r["account_id"].removeprefix("act_")
    data["account_id"] = "1001"
    parsed = ParseDict(data, gw.GetFatigueResponse())
    assert len(parsed.results) == 55 and parsed.version > 0


def test_csv_for_spreadsheets_and_markdown(system):
    out = cli(system, "report", "--account", "act_1001", *RANGE, "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 55
    big = next(r for r in rows if r["ad_name"] == "Ad 001 Video 003")
    assert big["account_id"] == "act_1001" and big["account_currency"] == "MYR"
    assert float(big["link_ctr_baseline_pct"]) > float(big["link_ctr_recent_pct"]) > 0
    assert float(big["spend"]) > 0 and float(big["score"]) >= 50
    md = cli(system, "report", "--account", "act_1001", *RANGE, "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("**act_1001") and "| level | score | campaign | ad set | ad |" in md.stdout
    assert "| Campaign 01 LEADS | Campaign 01 LEADS / Ad set 01 | Ad 001 Video 003 |" in md.stdout


def test_level_filter_and_sort(system):
    out = cli(system, "report", "--account", "act_1001", *RANGE, "--format", "csv", "--level", "warning,critical",
              "--sort", "spend")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows and {r["level"] for r in rows} <= {"warning", "critical"}
    spends = [float(r["spend"]) for r in rows]
    assert spends == sorted(spends, reverse=True)
    bad = cli(system, "report", "--account", "act_1001", "--level", "fatigued")
    assert bad.returncode == 2 and "not a level" in bad.stderr


def test_an_empty_answer_says_why_and_where_the_data_lies(system):
    # default range: the last 90 days, long after the data; an 80-column terminal
    out = cli(system, "report", "--account", "act_1001", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    flat = " ".join(out.stdout.split())
    assert "no ad of act_1001 has a row in" in flat
    assert "the platform holds act_1001's days 2025-10-29 … 2026-04-29" in flat
    # the suggested command is on one line, whatever the terminal's width (it was broken at 80 columns)
    assert any(line.rstrip().endswith("report --account act_1001 --since 2025-10-29 --until 2026-04-29")
               for line in out.stdout.splitlines()), out.stdout
    js = cli(system, "report", "--account", "act_1001", "--format", "json")
    assert json.loads(js.stdout)["stored_days"] == {"since": "2025-10-29", "until": "2026-04-29"}


def test_errors_in_json_mode_are_json_objects_with_the_grpc_code(system):
    bad = cli(system, "report", "--account", "act_x", "--format", "json")
    assert bad.returncode == 2 and bad.stdout == ""
    error = json.loads(bad.stderr)["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 3 and "act_<digits>" in error["message"]
    other = mint_token(system.jwt_secret, "someone", ["2002"])
    denied = cli(system, "report", "--account", "act_1001", *RANGE, "--format", "json",
                 env={"ADFATIGUE_TOKEN": other})
    error = json.loads(denied.stderr)["error"]
    assert denied.returncode == 2 and error["status"] == "PERMISSION_DENIED" and error["code"] == 7
    nowhere = cli(system, "report", "--account", "act_1001", "--gateway", "127.0.0.1:1", "--format", "json")
    error = json.loads(nowhere.stderr)["error"]
    assert error["status"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED") and "adfatigue up" in error["message"]
    plain = cli(system, "report", "--account", "act_1001", *RANGE, env={"ADFATIGUE_TOKEN": other})
    assert plain.returncode == 2 and plain.stderr.startswith("PERMISSION_DENIED")

"""The Prometheus rules in k8s/monitoring/, checked and unit-tested by the real promtool.

``promtool test rules`` runs adfatigue.rules.test.yml: every alert fires at its threshold and
stays quiet below it. The tests below also show the check can fail (a broken threshold or
expression is reported) and that the prometheus-operator PrometheusRule holds the same groups
as the plain rules file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.prometheus import PROMTOOL, require_prometheus

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
RULES = MONITORING / "adfatigue.rules.yml"
RULE_TESTS = MONITORING / "adfatigue.rules.test.yml"
ALERTS = {"MetaCallFailureRatioHigh": "critical", "CacheHitRatioLow": "warning", "RefreshCycleCompleted": "info",
          "MetaBudgetNearlyExhausted": "warning", "SubscriberDeliverySlow": "warning",
          "AuditEntriesDropped": "critical", "BffErrorRatioHigh": "warning", "ServiceDown": "critical"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    require_prometheus()
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules(groups: list[dict]) -> dict[str, dict]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_check_rules_accepts_the_rules_file():
    result = promtool("check", "rules", RULES.name, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 16 rules found" in result.stdout


def test_every_alert_fires_at_its_threshold_and_not_below(tmp_path):
    result = promtool("test", "rules", RULE_TESTS.name, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load(RULE_TESTS.read_text())
    names = {case["alertname"] for test in tested["tests"] for case in test.get("alert_rule_test", [])}
    assert names == set(ALERTS)


@pytest.mark.parametrize("old, new", [
    ("/ sum(rate(adfatigue_meta_requests_total[5m])) > 0.05", "/ sum(rate(adfatigue_meta_requests_total[5m])) > 0.07"),
    ("/ sum(rate(adfatigue_cache_reads_total{tier=\"l1\"}[5m])) < 0.90",
     "/ sum(rate(adfatigue_cache_reads_total{tier=\"l1\"}[5m])) <= 0.90"),
    ("expr: up{job=~\"adfatigue-.+\"} == 0\n        for: 2m", "expr: up{job=~\"adfatigue-.+\"} == 0\n        for: 5m"),
    ("        ) > 0.01\n", "        ) > 0.05\n"),
    ('+ (sum(rate(adfatigue_bff_live_requests_total{http_response_status_code=~"5.."}[5m])) or vector(0))', "+ 0"),
])
def test_the_rule_tests_catch_a_moved_threshold(tmp_path, old, new):
    text = RULES.read_text()
    assert old in text
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_promtool_check_rules_rejects_a_broken_expression(tmp_path):
    (tmp_path / "broken.yml").write_text(RULES.read_text().replace("[10m])) > 0", "[10m]) > 0", 1))
    result = promtool("check", "rules", "broken.yml", cwd=tmp_path)
    assert result.returncode != 0


def test_every_alert_has_severity_summary_description_and_a_runbook_entry():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    runbook = (MONITORING.parent / "README.md").read_text()
    for name, severity in ALERTS.items():
        rule = alert_rules(groups)[name]
        assert rule["labels"]["severity"] == severity, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        anchor = annotations["runbook"].split("#", 1)[1]
        assert annotations["runbook"] == f"k8s/README.md#{anchor}" and anchor == name.lower()
        section = runbook.split(f"#### {name}\n", 1)
        assert len(section) == 2, f"k8s/README.md has no '#### {name}' runbook entry"
        entry = section[1].split("\n####", 1)[0]
        for part in ("Means", "Check", "Do"):
            assert f"**{part}**" in entry, f"runbook entry {name} lacks **{part}**"


def test_the_prometheus_rule_resource_holds_the_same_groups_as_the_rules_file():
    plain = yaml.safe_load(RULES.read_text())["groups"]
    resource = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert resource["apiVersion"] == "monitoring.coreos.com/v1" and resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["namespace"] == "adfatigue"
    assert resource["spec"]["groups"] == plain


def test_the_service_monitor_scrapes_the_metrics_port_of_the_four_services_and_the_bff():
    monitor = yaml.safe_load((MONITORING / "service-monitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert sorted(selected) == ["bff", "cache-gateway", "fatigue-engine", "meta-fetcher", "scheduler"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    for name in selected:
        docs = list(yaml.safe_load_all((MONITORING.parent / f"{name}.yaml").read_text()))
        service = next(d for d in docs if d and d["kind"] == "Service")
        assert {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"} in service["spec"]["ports"]
        deployment = next(d for d in docs if d and d["kind"] == "Deployment")
        ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in ports

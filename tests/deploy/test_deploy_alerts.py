"""deploy/prometheus/hub-alerts.yml: Prometheus' own checker and unit tests of its rules
(promtool, from Debian's prometheus package: scripts/test.sh installs it), and the metric
names it uses against the ones the hub really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import t
from support.deploy import DEPLOY

from hub.metrics import Figures, WorkerMetrics

RULES = DEPLOY / "prometheus" / "hub-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "hub-alerts.test.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

#: What the brief of the rules is: each of these metrics has an alert.
ALERTED = {
    "hub_broker_ready": "HubWorkerNotReady",
    "hub_broker_probe_failures_total": "HubBrokerDeaf",
    "hub_ws_slow_consumer_disconnects_total": "HubSlowConsumerCloses",
    "hub_messages_dropped_total": "HubPublishesDropped",
    "hub_broker_reconnects_total": "HubRedisReconnects",
    "hub_history_gaps_total": "HubHistoryGaps",
}


def promtool(*args: str) -> str:
    assert Path(PROMTOOL).exists(), "promtool is missing (scripts/test.sh installs prometheus)"
    result = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=t(60), check=False
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    """Every sample name a worker exports, histograms' _bucket, _sum and _count included."""
    metrics = WorkerMetrics(worker=0, read=Figures)
    body, _ = metrics.exposition()
    return {
        sample.name
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_promtool_checks_the_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out, out


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    """The alerts fire, and stay quiet, as hub-alerts.test.yml says (at least four alerts)."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert {"HubWorkerNotReady", "HubPublishesDropped", "HubHistoryGaps"} <= tested, tested
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_the_rules_use_the_metrics_the_hub_exports() -> None:
    """Every hub_* and process_* name in an expression is a real sample name, and each
    metric of the brief has its alert."""
    exported = exported_names()
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in re.findall(r"\b((?:hub|process)_\w+)", rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    assert set(used) <= exported, f"not exported by the hub: {set(used) - exported}"
    for metric, alert in ALERTED.items():
        assert alert in used.get(metric, set()), (metric, alert)


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        # Grouped by instance: one misbehaving hub fires once, not once per worker.
        assert "by (instance" in rule["expr"] or " on (instance" in rule["expr"], rule["alert"]

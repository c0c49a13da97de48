"""deploy/systemd/hub.service (systemd-analyze verify where available, and its
keys) and deploy/grafana/hub-dashboard.json (valid JSON on the hub's metrics)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import t
from support.deploy import DEPLOY

UNIT = DEPLOY / "systemd" / "hub.service"
DASHBOARD = DEPLOY / "grafana" / "hub-dashboard.json"


def unit_keys() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, line
        key, _, value = line.partition("=")
        current[key] = value
    return sections


def test_unit_settings() -> None:
    service = unit_keys()["Service"]
    exe, *args = service["ExecStart"].split()
    assert exe.endswith("/hub") and args == ["serve"]
    assert service["EnvironmentFile"].startswith("/etc/")
    assert int(service["LimitNOFILE"]) >= 20000
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert 10 <= int(service["TimeoutStopSec"]) <= 60
    assert service["User"] not in ("", "root")
    assert unit_keys()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this interpreter.
    text = re.sub(
        r"^ExecStart=.*$", f"ExecStart={sys.executable} -m hub serve", UNIT.read_text(), flags=re.M
    )
    unit = tmp_path / "hub.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=t(60),
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert not re.search(r"unknown|invalid|ignoring|failed", out, re.I), out


METRICS = {
    "hub_ws_connections",
    "hub_ws_connections_opened_total",
    "hub_ws_subscriptions",
    "hub_channels_active",
    "hub_messages_received_total",
    "hub_messages_published_total",
    "hub_messages_delivered_total",
    "hub_messages_dropped_total",
    "hub_ws_slow_consumer_disconnects_total",
    "hub_broker_reconnects_total",
    "hub_broker_publish_errors_total",
    "hub_fanout_duration_seconds_bucket",
    "hub_broker_roundtrip_seconds_bucket",
    "hub_sse_streams",
    "hub_sse_streams_opened_total",
    "hub_history_gaps_total",
    "hub_history_repaired_total",
    "hub_history_forged_total",
    "hub_broker_gaps_total",
    "hub_broker_ready",
    "hub_broker_probe_failures_total",
    "hub_probe_latency_seconds_bucket",
}


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(dash: dict[str, Any]) -> list[str]:
    return [tg["expr"] for p in panels(dash) for tg in p.get("targets", [])]


def test_dashboard_is_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"]["uid"] == "${datasource}"
    names = [v["name"] for v in dash["templating"]["list"]]
    assert "datasource" in names


def test_dashboard_queries_use_the_hub_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    queries = exprs(dash)
    used = {m for q in queries for m in re.findall(r"\b(hub_\w+)", q)}
    assert METRICS <= used, METRICS - used
    assert used <= METRICS, f"unknown metric names: {used - METRICS}"
    for q in queries:
        assert q.count("(") == q.count(")"), q
        assert q.count("{") == q.count("}"), q
        if "histogram_quantile" in q:
            assert re.search(r"histogram_quantile\(0\.\d+, sum by \([^)]*\ble\b", q), q
    joined = "\n".join(queries)
    assert re.search(r"histogram_quantile\(0\.99,.*hub_fanout_duration_seconds_bucket", joined)
    assert re.search(r"histogram_quantile\(0\.99,.*hub_broker_roundtrip_seconds_bucket", joined)
    assert "sum by (reason)" in joined
    assert "worker" in joined, "per-worker panels"


def test_dashboard_has_sse_and_history_gap_panels() -> None:
    """SSE streams and history gaps each have a panel of their own."""
    dash = json.loads(DASHBOARD.read_text())
    by_title = {p["title"]: [tg["expr"] for tg in p.get("targets", [])] for p in panels(dash)}
    sse = [q for title, qs in by_title.items() if "SSE" in title for q in qs]
    assert any("hub_sse_streams{" in q for q in sse), sse
    assert any("hub_sse_streams_opened_total" in q for q in sse), sse
    gaps = [q for title, qs in by_title.items() if "History gaps" in title for q in qs]
    assert any("increase(hub_history_gaps_total" in q for q in gaps), gaps
    assert any("hub_history_repaired_total" in q for q in gaps), gaps
    probe = "\n".join(q for qs in by_title.values() for q in qs)
    assert re.search(r"histogram_quantile\(0\.99,.*hub_probe_latency_seconds_bucket", probe)

"""docker-compose.yml: valid for Compose's own parser, and the topology it promises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deploy import (
    COMPOSE_FILE,
    DEPLOY,
    command_list,
    compose_config,
    env_dict,
    hub_services,
    load_compose,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def test_compose_parser_accepts_the_file() -> None:
    for profiles in ((), ("nginx",), ("sentinel",)):
        result = compose_config(COMPOSE_FILE, *profiles, quiet=True)
        assert result.returncode == 0, result.stderr


def test_compose_parser_rejects_a_broken_copy(tmp_path: Path) -> None:
    # The check above is only worth something if the parser validates the schema.
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    data["services"]["hub1"]["healthcheck"]["interval"] = {"not": "a duration"}
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    result = compose_config(broken, quiet=True)
    assert result.returncode != 0
    assert "healthcheck.interval" in result.stderr, result.stderr


def test_redis_is_official_image_without_persistence(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7"
    argv = command_list(redis["command"])
    assert argv[0] == "redis-server"
    assert argv[argv.index("--save") + 1] == ""
    assert argv[argv.index("--appendonly") + 1] == "no"
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])


def test_three_hub_replicas_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    hubs = hub_services(compose)
    assert sorted(hubs) == ["hub1", "hub2", "hub3"]
    for name, svc in hubs.items():
        env = env_dict(svc["environment"])
        assert env["HUB_HOST"] == "0.0.0.0", name
        assert env["HUB_REDIS_URL"].startswith("redis://redis:"), name
        # One worker per replica: a replica is then one process the LB checks.
        assert env["HUB_WORKERS"] == "1", name
        assert all(k.startswith("HUB_") for k in env), name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        check = " ".join(svc["healthcheck"]["test"])
        assert "urllib" in check and "/readyz" in check, name
        assert svc["stop_signal"] == "SIGTERM"
        # A rolling restart loses no client to a draining replica: the drain outlasts
        # haproxy's two failed checks (inter 2s, fastinter 500ms), and the grace period
        # outlasts the drain plus the close.
        drain_s = float(env["HUB_DRAIN_S"])
        assert 2.5 < drain_s, name
        assert drain_s + 5 <= float(svc["stop_grace_period"].rstrip("s")), name
        assert "ports" not in svc, "hubs are reached through the load balancer only"
    assert len({str(svc["environment"]) for svc in hubs.values()}) == 1, "replicas differ"


def test_haproxy_lb_exposes_8765_and_waits_for_ready_hubs(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    assert lb["image"] == "haproxy:2.8"
    assert any(
        str(v).endswith("deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro")
        or (isinstance(v, dict) and str(v.get("source", "")).endswith("deploy/haproxy.cfg"))
        for v in lb["volumes"]
    ), lb["volumes"]
    published = [str(p.get("published", p) if isinstance(p, dict) else p) for p in lb["ports"]]
    assert any(p.startswith("8765") for p in published), published
    for hub in hub_services(compose):
        assert lb["depends_on"][hub]["condition"] == "service_healthy"
    # Every variable the cfg reads is set by the service, and nothing else.
    cfg_vars = set(re.findall(r'"\$\{(\w+)\}"', (DEPLOY / "haproxy.cfg").read_text()))
    assert cfg_vars == set(env_dict(lb["environment"])), cfg_vars


def test_nginx_alternative_is_an_opt_in_profile(compose: dict[str, Any]) -> None:
    svc = compose["services"]["lb-nginx"]
    assert svc["profiles"] == ["nginx"]
    assert any("deploy/nginx.conf" in str(v) for v in svc["volumes"])

"""deploy/k8s: every document passes kubernetes-validate's schema check (strict, so
unknown fields fail), and the objects fit together (selectors, names, probes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from support.deploy import DEPLOY

K8S = DEPLOY / "k8s"
#: The oldest Kubernetes minor these manifests promise to fit (HPA v2, PDB v1 and
#: the fields used here are all GA there).
K8S_VERSION = "1.27"


def documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def by_kind() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _, doc in documents():
        assert doc["kind"] not in out, f"two {doc['kind']} objects"
        out[doc["kind"]] = doc
    return out


@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.latest_version()])
@pytest.mark.parametrize(
    "path,doc", documents(), ids=[f"{p.name}:{d['kind']}" for p, d in documents()]
)
def test_schema(path: Path, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_schema_check_rejects_unknown_fields() -> None:
    doc = by_kind()["Deployment"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_all_kinds_present() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for _, d in documents()}
    assert kinds == {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
    }


def test_deployment_probes_drain_and_settings() -> None:
    objs = by_kind()
    dep = objs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = pod["containers"]
    port = container["ports"][0]
    assert port["containerPort"] == int(objs["ConfigMap"]["data"]["HUB_PORT"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep_s = int(pre_stop[1])
    assert 2 <= sleep_s <= 15
    # preStop, then the hub's own shutdown (a few seconds), before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= sleep_s + 10
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    sources = {
        next(iter(k for k in s if k.endswith("Ref"))): s[next(k for k in s if k.endswith("Ref"))]
        for s in container["envFrom"]
    }
    assert sources["configMapRef"]["name"] == objs["ConfigMap"]["metadata"]["name"]
    assert sources["secretRef"]["name"] == objs["Secret"]["metadata"]["name"]


def test_settings_are_hub_variables() -> None:
    objs = by_kind()
    config = objs["ConfigMap"]["data"]
    secret = objs["Secret"]["stringData"]
    assert all(k.startswith("HUB_") for k in [*config, *secret])
    assert config["HUB_HOST"] == "0.0.0.0"
    assert {"HUB_REDIS_URL", "HUB_API_KEY", "HUB_JWT_SECRET"} <= secret.keys()
    assert not {"HUB_REDIS_URL", "HUB_API_KEY", "HUB_JWT_SECRET"} & config.keys()


def test_service_hpa_pdb_target_the_deployment() -> None:
    objs = by_kind()
    dep = objs["Deployment"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = objs["Service"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "ws"
    pdb = objs["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objs["HorizontalPodAutoscaler"]
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    # With a PDB of maxUnavailable 1, at least two pods must stay up.
    assert pdb["spec"].get("maxUnavailable", 1) < hpa["spec"]["minReplicas"]

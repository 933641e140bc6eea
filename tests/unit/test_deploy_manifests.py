"""The Kubernetes manifests in deploy/ validate against the Kubernetes API schemas."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.31.0"


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid(path):
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_probes_and_gpu_request():
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_an_invalid_manifest_is_caught():
    broken = yaml.safe_load((DEPLOY / "service.yaml").read_text())
    broken["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)

"""`up`, `status` and `down` with several registries."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support.fakes import connected
from support.paths import ROOT

SPLIT = (ROOT / "examples" / "gitpod-separate-registries" / "meshreg.yaml").read_text()
SINGLE = SPLIT.split("    - name: service-images")[0]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return connected(monkeypatch)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_up_deploys_every_registry_and_prints_each_address(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SPLIT)
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    for name in ("workspace-images", "service-images"):
        assert fake.get("apps/v1", "Deployment", name, namespace="gitpod-registry") is not None
        assert f"push (in-cluster writers): {name}.gitpod-registry.svc.cluster.local:5000" in result.output
    assert "pull (pod specs):          localhost:5001" in result.output
    assert "writers:                   gitpod/airgap-loader" in result.output


def test_status_reports_each_registry_and_its_published_addresses(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SPLIT)
    run("up", "-q")
    result = run("status", "-o", "json")
    report = json.loads(result.output)
    by_name = {r["name"]: r for r in report["registries"]}
    assert by_name["service-images"]["role"] == "readonly"
    assert by_name["service-images"]["addresses"]["hostFromContainerRuntime"] == "localhost:5001"
    assert by_name["workspace-images"]["addresses"]["hostFromClusterNetwork"] == \
        "workspace-images.gitpod-registry.svc.cluster.local:5000"
    assert by_name["workspace-images"]["mtls"]["workload"] == "STRICT"
    text = run("status").output
    assert "registry service-images (readonly)" in text and "registry workspace-images (images, default)" in text


def test_dropping_a_registry_prunes_its_objects_but_keeps_its_data(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SPLIT)
    assert run("up", "-q").exit_code == 0
    (tmp_path / "meshreg.yaml").write_text(SINGLE)
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    ns = "gitpod-registry"
    assert fake.get("apps/v1", "Deployment", "service-images", namespace=ns) is None
    assert fake.get("security.istio.io/v1", "AuthorizationPolicy", "service-images-deny-writes", namespace=ns) is None
    assert fake.get("v1", "ConfigMap", "meshreg-gitpod-registries", namespace="kube-public") is None
    assert fake.get("v1", "PersistentVolumeClaim", "service-images-data", namespace=ns) is not None
    assert fake.get("apps/v1", "Deployment", "workspace-images", namespace=ns) is not None


def test_down_removes_every_registry_but_keeps_each_volume(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SPLIT)
    assert run("up", "-q").exit_code == 0
    result = run("down")
    assert result.exit_code == 0, result.output
    ns = "gitpod-registry"
    for name in ("workspace-images", "service-images"):
        assert fake.get("apps/v1", "Deployment", name, namespace=ns) is None
        assert fake.get("v1", "PersistentVolumeClaim", f"{name}-data", namespace=ns) is not None
    assert fake.get("v1", "ConfigMap", "meshreg-gitpod-registries", namespace="kube-public") is None


def test_status_explains_a_mirror_that_crash_loops_on_its_upstream(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text((ROOT / "examples" / "gitpod-mirror" / "meshreg.yaml").read_text())
    assert run("up", "-q").exit_code == 0
    ns = "gitpod-registry"
    mirror = fake.objects[("apps/v1", "Deployment", ns, "service-images")]
    mirror["status"] = {**mirror["status"], "availableReplicas": 0, "readyReplicas": 0}
    template = mirror["spec"]["template"]
    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "service-images-1", "namespace": ns,
                                                              "labels": template["metadata"]["labels"]},
              "spec": {"containers": [*template["spec"]["containers"], {"name": "istio-proxy"}]},
              "status": {"containerStatuses": [{
                  "name": "registry", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                  "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}})
    fake.logs[(ns, "service-images-1", "registry", True)] = (
        'panic: Get "http://service-images-upstream.gitpod-registry.svc.cluster.local/v2/": dial tcp '
        "10.96.0.9:80: connect: connection refused\n")
    result = run("status")
    assert result.exit_code == 1
    problems = [line.strip() for line in result.output.splitlines() if line.strip().startswith("problem:")]
    assert any("service-images-1: container registry keeps crashing" in p for p in problems)
    assert any("the mirror panicked while starting" in p and "Its sidecar was not running" in p for p in problems)
    report = json.loads(run("status", "-o", "json").output)
    assert {r["name"]: bool(r["problems"]) for r in report["registries"]} == {
        "workspace-images": False, "service-images": True}

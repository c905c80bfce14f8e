"""`up`, `status` and `down` with a push proxy: a second namespace created, waited for, pruned and kept alike."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support import fakes
from support.configs import minimal
from support.kubeforward import pod

WITH = minimal("  pushProxy: {repositories: [dev/]}\n  writers: [{serviceAccount: builds/kaniko}]\n")
WITHOUT = minimal("  writers: [{serviceAccount: builds/kaniko}]\n")
PUSH_NS = "meshreg-push"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return fakes.connected(monkeypatch)


def run(tmp_path, text: str, *args):
    (tmp_path / "meshreg.yaml").write_text(text)
    return CliRunner().invoke(main, list(args))


def test_up_creates_the_push_proxy_namespace_and_its_objects_and_says_how_to_connect(fake, tmp_path):
    result = run(tmp_path, WITH, "up", "-q")
    assert result.exit_code == 0, result.output
    assert fake.get("v1", "Namespace", PUSH_NS)["metadata"]["labels"]["istio-injection"] == "enabled"
    for kind, api, name in (("Role", "rbac.authorization.k8s.io/v1", "meshreg-connect"),
                            ("Deployment", "apps/v1", "push-proxy"), ("Gateway", "networking.istio.io/v1",
                                                                      "push-proxy")):
        assert fake.get(api, kind, name, namespace=PUSH_NS) is not None
    assert not [k for k in fake.objects if k[1] == "Role" and k[2] != PUSH_NS]
    assert "push (from a laptop):      meshreg connect, then localhost:5000 (RBAC: Role meshreg-connect in " \
           "namespace meshreg-push)" in result.output
    assert "writers:                   builds/kaniko, meshreg-push/push-proxy" in result.output


def test_up_waits_for_the_push_proxy_rollout_in_its_namespace(fake, tmp_path):
    run(tmp_path, WITH, "up", "-q")
    waited = [(*r[1], r[2]["fieldSelector"]) for r in fake.requests if r[0] == "list" and r[1][1] == "Deployment"]
    assert ("apps/v1", "Deployment", PUSH_NS, "metadata.name=push-proxy") in waited


def test_up_refuses_a_push_proxy_namespace_that_runs_other_pods_before_applying_anything(fake, tmp_path):
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PUSH_NS}})
    fake.put({"apiVersion": "v1", "kind": "Pod", **pod("debug-shell"), "metadata": {
        "name": "debug-shell", "namespace": PUSH_NS}})
    result = run(tmp_path, WITH, "up")
    assert result.exit_code == 1
    assert "meshreg: error: namespace meshreg-push runs pods meshreg does not manage (debug-shell); the push " \
           "proxy needs a namespace of its own" in result.output
    assert not [r for r in fake.requests if r[0] == "apply" and not r[2]["dry_run"]]


def test_disabling_the_push_proxy_prunes_its_objects_from_its_namespace(fake, tmp_path):
    assert run(tmp_path, WITH, "up", "-q").exit_code == 0
    fake.requests.clear()
    result = run(tmp_path, WITHOUT, "up", "-q")
    assert result.exit_code == 0, result.output
    assert not [r for r in fake.requests if r[0] == "apply" and r[1][2] == PUSH_NS]  # pruned, never applied
    assert "pruned      Deployment meshreg-push/push-proxy" in result.output
    assert "pruned      Role meshreg-push/meshreg-connect" in result.output
    assert not [k for k in fake.objects if k[2] == PUSH_NS]
    assert fake.get("v1", "Namespace", PUSH_NS) is not None  # namespaces are never pruned
    policy = fake.get("security.istio.io/v1", "AuthorizationPolicy", "registry-allow-writes", namespace="meshreg")
    assert "push-proxy" not in json.dumps(policy)


def test_down_keeps_both_namespaces_and_purge_removes_both(fake, tmp_path):
    assert run(tmp_path, WITH, "up", "-q").exit_code == 0
    result = run(tmp_path, WITH, "down")
    assert result.exit_code == 0, result.output
    assert "kept        Namespace meshreg-push" in result.output
    assert fake.get("apps/v1", "Deployment", "push-proxy", namespace=PUSH_NS) is None
    assert run(tmp_path, WITH, "down", "--purge", "--yes").exit_code == 0
    assert fake.get("v1", "Namespace", PUSH_NS) is None and fake.get("v1", "Namespace", "meshreg") is None


def test_status_reports_the_push_proxy_and_is_unhealthy_while_it_is_not_ready(fake, tmp_path):
    assert run(tmp_path, WITH, "up", "-q").exit_code == 0
    template = fake.get("apps/v1", "Deployment", "registry", namespace="meshreg")["spec"]["template"]
    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "registry-abc", "namespace": "meshreg", "labels": template["metadata"]["labels"]},
        "spec": {"containers": [{"name": "registry"}, {"name": "istio-proxy"}]}})
    report = json.loads(run(tmp_path, WITH, "status", "-o", "json").output)
    assert report["pushProxies"] == [{"registry": "registry", "namespace": PUSH_NS, "ready": True, "replicas": "1/1",
                                      "repositories": ["dev/"], "port": 5000}]
    assert report["healthy"]
    fake.objects[("apps/v1", "Deployment", PUSH_NS, "push-proxy")]["status"]["availableReplicas"] = 0
    result = run(tmp_path, WITH, "status")
    assert result.exit_code == 1
    assert "push proxy (registry): NOT ready (0/1) in namespace meshreg-push, writes dev/" in result.output
    # status cannot know whether meshreg connect runs, or on which --port: it names the default, as a default
    assert "push with meshreg connect (local port 5000 unless --port says otherwise)" in result.output
    assert "listens" not in result.output

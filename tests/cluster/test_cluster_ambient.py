"""`up`, `status` and `down` in ambient mode on the fake cluster: the preflight, istiod's waypoint objects left
alone by prune, and a status that counts ztunnel capture instead of sidecars."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.cluster import ambient
from meshreg.errors import ClusterError
from support.fakes import INJECTOR, ISTIO_GROUPS, FakeCluster, ready_controller, route

AMBIENT = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  mesh: ambient
  writers: [{serviceAccount: builds/kaniko}]
"""
GATEWAY_API = {"gateway.networking.k8s.io/v1": {"gateways", "gatewayclasses", "httproutes"}}
WAYPOINT_CLASS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                  "metadata": {"name": "istio-waypoint"}, "spec": {"controllerName": "istio.io/mesh-controller"}}
ZTUNNEL = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ztunnel", "namespace": "istio-system"},
           "spec": {"template": {"metadata": {"labels": {"app": "ztunnel"}}}}}
# istioctl's injector: the webhook that selects pods labelled sidecar.istio.io/inject=true in unlabelled namespaces.
OBJECT_INJECTOR = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": "istio-sidecar-injector"}, "webhooks": [{
                       "name": "object.sidecar-injector.istio.io",
                       "namespaceSelector": {"matchExpressions": [
                           {"key": "istio-injection", "operator": "DoesNotExist"},
                           {"key": "istio.io/rev", "operator": "DoesNotExist"}]},
                       "objectSelector": {"matchExpressions": [
                           {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                           {"key": "istio.io/rev", "operator": "DoesNotExist"}]}}]}


def istiod(cluster, obj):
    """Play istiod's waypoint controller: a Deployment, Service and ServiceAccount owned by the Gateway, carrying
    the Gateway's labels (as Istio copies them), and the Gateway's Programmed condition."""
    if obj["kind"] != "Gateway" or obj["apiVersion"] != ambient.GATEWAY_API:
        return
    owner = [{"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "Gateway", "name": obj["metadata"]["name"],
              "uid": obj["metadata"]["uid"]}]
    meta = {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "labels": copy.deepcopy(obj["metadata"]["labels"]), "ownerReferences": owner}
    ready = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    cluster.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "generation": 1},
                 "spec": {"replicas": 1}, "status": ready})
    cluster.put({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 15008}]}})
    cluster.put({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    live = cluster.objects[cluster._key_of(obj)]
    live["status"] = {"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                                      "message": "Resource programmed, assigned to service(s) waypoint.meshreg"}]}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(AMBIENT)
    cluster = FakeCluster(served={**ISTIO_GROUPS, **GATEWAY_API})
    for obj in (WAYPOINT_CLASS, ZTUNNEL, OBJECT_INJECTOR):
        cluster.put(obj)
    cluster.on_apply += [ready_controller, istiod]
    return route(monkeypatch, cluster)


def run(*args):
    return CliRunner().invoke(main, list(args))


def release_registry_pods(fake):
    """What the registry pods look like when istio-cni did not hand them to ztunnel: no redirection annotation."""
    for key, pod in fake.objects.items():
        if key[1] == "Pod" and key[2] == "meshreg" and pod["metadata"]["name"].startswith("registry-"):
            pod["metadata"].pop("annotations", None)


def writes(fake):
    return [r for r in fake.requests if r[0] in ("apply", "delete") and not r[2].get("dry_run")]


def test_up_applies_the_waypoint_and_waits_for_istiods_deployment(fake):
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert "created     Gateway meshreg/waypoint" in result.output
    assert "created     AuthorizationPolicy meshreg/registry-allow-waypoint" in result.output
    waited = [(*r[1], r[2]["fieldSelector"]) for r in fake.requests if r[0] == "list" and r[1][1] == "Deployment"]
    assert ("apps/v1", "Deployment", "meshreg", "metadata.name=waypoint") in waited


def test_a_second_up_leaves_the_objects_istiod_made_for_the_waypoint(fake):
    run("up", "-q")
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert "pruned" not in result.output
    for kind, api in (("Deployment", "apps/v1"), ("Service", "v1"), ("ServiceAccount", "v1")):
        assert fake.get(api, kind, "waypoint", namespace="meshreg") is not None, kind


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.served_groups.pop("gateway.networking.k8s.io/v1"),
     "does not serve the Gateway API (gateway.networking.k8s.io/v1 gateways), which the waypoint is made of; "
     "install the Gateway API CRDs first"),
    (lambda f: f.objects.pop(("gateway.networking.k8s.io/v1", "GatewayClass", None, "istio-waypoint")),
     "there is no GatewayClass istio-waypoint: Istio is not installed with ambient support"),
    (lambda f: f.objects.pop(("apps/v1", "DaemonSet", "istio-system", "ztunnel")),
     "no ztunnel DaemonSet (pods labelled app=ztunnel) in the cluster"),
    (lambda f: f.objects.pop(("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                              "istio-sidecar-injector")),
     "istio: no Istio sidecar injector matches namespace meshreg for DaemonSet node-proxy"),
])
def test_up_refuses_an_unmet_ambient_requirement_in_one_line_and_writes_nothing(fake, change, message):
    change(fake)
    result = run("up", "-q")
    assert result.exit_code == 1
    assert result.output.startswith("meshreg: error: preflight found 1 problem(s), nothing was applied: ")
    assert message in result.output
    assert result.output.count("\n") == 1 and writes(fake) == []


def test_a_user_who_cannot_list_daemon_sets_cluster_wide_gets_a_warning_and_up_goes_on(fake, monkeypatch):
    namespaced = fake.list

    def list_(api_version, kind, *, namespace=None, **kw):
        if kind == "DaemonSet" and namespace is None:
            raise ClusterError("forbidden: cannot list daemonsets.apps")
        return namespaced(api_version, kind, namespace=namespace, **kw)

    monkeypatch.setattr(fake, "list", list_)
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert "warning: ambient: could not check: could not look for ztunnel (forbidden: cannot list daemonsets.apps)" in \
        result.output


def test_a_sidecar_render_runs_no_ambient_check(fake, tmp_path):
    (tmp_path / "meshreg.yaml").write_text(AMBIENT.replace("  mesh: ambient\n", ""))
    fake.objects.pop(("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                      "istio-sidecar-injector"))
    fake.put(INJECTOR)
    assert run("up", "-q").exit_code == 0
    assert not [r for r in fake.requests if r[1][1] == "GatewayClass" or r[1][1:3] == ("DaemonSet", None)]


def test_status_is_healthy_when_ztunnel_captures_the_registry_pods_and_the_waypoint_is_programmed(fake):
    run("up", "-q")  # the fake's istio-cni annotates the registry's pods: ztunnel captured them
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "registry: ready (1/1), 1 of 1 pods captured by ztunnel" in result.output
    assert "waypoint waypoint: programmed (Resource programmed" in result.output
    report = json.loads(run("status", "-o", "json").output)
    assert report["waypoint"]["programmed"] and report["registry"]["inAmbient"] == 1


def test_status_is_not_healthy_when_the_registry_pods_are_not_captured(fake):
    run("up", "-q")
    release_registry_pods(fake)
    result = run("status")
    assert result.exit_code == 1 and "registry: ready (1/1), 0 of 1 pods captured by ztunnel" in result.output


def test_up_times_out_saying_istiod_did_not_program_the_waypoint(fake):
    fake.on_apply.remove(istiod)
    result = run("up", "-q", "--timeout", "1")
    assert result.exit_code == 1
    assert "Deployment meshreg/waypoint (missing)" in result.output
    assert "Gateway waypoint is not programmed by istiod: not reported yet" in result.output


def test_back_to_sidecar_mode_prunes_the_waypoint_and_the_l4_policies(fake, tmp_path):
    run("up", "-q")
    (tmp_path / "meshreg.yaml").write_text(AMBIENT.replace("  mesh: ambient\n", ""))
    fake.put({**INJECTOR, "metadata": {"name": "istio-sidecar-injector-ns"}})
    result = run("up", "-q", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "pruned      Gateway meshreg/waypoint" in result.output
    assert "pruned      AuthorizationPolicy meshreg/registry-allow-waypoint" in result.output


def test_down_deletes_the_waypoint_gateway(fake):
    run("up", "-q")
    result = run("down")
    assert result.exit_code == 0 and "deleted     Gateway meshreg/waypoint" in result.output


def test_up_fails_when_ztunnel_did_not_capture_the_registry_pods_and_says_what_to_fix(fake):
    fake.on_apply.append(lambda cluster, obj: release_registry_pods(cluster))
    result = run("up", "-q")
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert "registry pod meshreg/registry-1-0 is not captured by ztunnel" in line
    assert "Fix ambient capture (the namespace needs istio.io/dataplane-mode=ambient" in line
    assert "sidecar injection" not in line and line.endswith("(all 21 objects were applied)")


def test_doctor_judges_ambient_registry_pods_by_ztunnel_capture_as_status_does(fake):
    assert run("up", "-q").exit_code == 0
    result = run("doctor", "--check", "deployed")
    assert result.exit_code == 0, result.output
    assert "registry registry ready (1/1), every pod captured by ztunnel" in result.output
    release_registry_pods(fake)
    result = run("doctor", "--check", "deployed")
    assert result.exit_code == 1 and "registry registry not ready (1/1, 0 of 1 pods captured by ztunnel)" in \
        result.output
    assert run("status").exit_code == 1

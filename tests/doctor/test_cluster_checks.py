"""doctor's policy, node, admission, storage and deployment checks on the fake cluster."""

from __future__ import annotations

import pytest

from meshreg.cluster import apply as applying
from meshreg.config import DEFAULT
from meshreg.doctor.nodes import judge_runtime
from meshreg.errors import ClusterError
from meshreg.render import render
from support.doctor_helpers import WRITERS, check, cluster_with_istio, lines, pod
from support.fakes import ready_controller, refusal

REGISTRY_PODS = {"app.kubernetes.io/instance": "meshreg", "app.kubernetes.io/name": "registry",
                 "meshreg.dev/registry": "registry"}


def policy(ns, name, *, action="ALLOW", selector=None, kind="AuthorizationPolicy", **spec):
    body = {"action": action, **spec} if kind == "AuthorizationPolicy" else spec
    if selector is not None:
        body["selector"] = {"matchLabels": selector}
    return {"apiVersion": "security.istio.io/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": body}


def test_a_custom_policy_in_the_root_namespace_selecting_registry_pods_is_reported():
    fake = cluster_with_istio()
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshreg"}})
    # A root-namespace policy with a selector applies to matching pods in every namespace.
    fake.put(policy("istio-system", "ext-authz", action="CUSTOM", selector={"app.kubernetes.io/name": "registry"},
                    provider={"name": "opa"}))
    [finding, _] = check(fake, "policies")
    assert finding.status == "WARN"
    assert finding.message.startswith("AuthorizationPolicy istio-system/ext-authz (CUSTOM, selecting Deployment "
                                      "registry) sends every request")


def test_policies_elsewhere_or_attached_by_target_ref_or_meshregs_own_are_left_out():
    fake = cluster_with_istio()
    for obj in render(DEFAULT):
        if obj["kind"] == "Namespace" or obj["apiVersion"].startswith("security"):
            fake.put(obj)
    fake.put(policy("apps", "deny-all", action="DENY"))  # another namespace
    fake.put(policy("meshreg", "waypoint", action="DENY", targetRefs=[{"kind": "Service", "name": "registry"}]))
    fake.put(policy("meshreg", "other-app", action="DENY", selector={"app": "other"}))
    fake.put(policy("istio-system", "mesh-default", kind="PeerAuthentication", mtls={"mode": "STRICT"}))
    results = check(fake, "policies")
    assert [(r.status, r.message) for r in results] == [
        ("OK", "no other AuthorizationPolicy or PeerAuthentication in istio-system or meshreg selects the registry "
               "or the node proxy"),
        ("OK", "mesh-wide mTLS is STRICT (istio-system/mesh-default)")]


def test_a_deny_policy_for_the_whole_registry_namespace_and_a_second_peer_authentication_are_reported():
    fake = cluster_with_istio()
    fake.put(policy("meshreg", "deny-external", action="DENY"))
    fake.put(policy("meshreg", "permissive", kind="PeerAuthentication", selector=REGISTRY_PODS,
                    mtls={"mode": "PERMISSIVE"}))
    warned = lines(check(fake, "policies"), "WARN")
    assert any(m.startswith("AuthorizationPolicy meshreg/deny-external (DENY, selecting Deployment registry, "
                            "DaemonSet node-proxy) may deny writers") for m in warned)
    assert any(m.startswith("PeerAuthentication meshreg/permissive (PERMISSIVE) also selects Deployment registry")
               for m in warned)
    assert any(m.startswith("no mesh-wide PeerAuthentication (Istio's default: PERMISSIVE)") for m in warned)


@pytest.mark.parametrize("runtime, status", [
    ("containerd://1.6.8", "WARN"), ("containerd://1.6.9", "OK"), ("containerd://1.6.20", "OK"),
    ("containerd://1.6.25", "WARN"), ("containerd://1.7.0", "OK"), ("containerd://1.7.15", "WARN"),
    ("containerd://1.7.16", "OK"), ("containerd://1.7.23-k3s2", "OK"), ("containerd://2.0.0", "OK"),
    ("cri-o://1.30.4", "WARN"), ("docker://24.0.7", "OK"), ("rkt://1.0", "WARN"), ("containerd://", "WARN")])
def test_runtime_judgement_follows_meshreg_runtimes(runtime, status):
    assert judge_runtime(runtime)[0] == status


def test_a_runtime_that_needs_set_up_is_ok_where_meshregs_runtime_config_writes_its_files():
    status, why = judge_runtime("cri-o://1.30.4", configured=("crio",))
    assert status == "OK" and why.endswith("spec.nodeProxy.runtimeConfig.crio configures it")
    assert judge_runtime("cri-o://1.30.4", configured=("containerd",))[0] == "WARN"


def node(name, runtime):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"nodeInfo": {"containerRuntimeVersion": runtime}}}


def test_nodes_are_grouped_by_runtime_and_the_ones_to_configure_point_to_the_set_up():
    fake = cluster_with_istio()
    for name, runtime in (("a", "containerd://1.6.20"), ("b", "cri-o://1.30.4"), ("c", "containerd://1.6.20")):
        fake.put(node(name, runtime))
    [containerd, cri_o, ports] = check(fake, "nodes")
    assert (cri_o.status, cri_o.message.split(":")[0]) == ("WARN", "cri-o")
    assert "cri-o://1.30.4 on 1 node(s) (b)" in cri_o.message and "localhost:5000" in cri_o.fix
    assert containerd.status == "OK" and "on 2 node(s) (a, c)" in containerd.message
    assert ports.message == "hostPort 5000 is free on 127.0.0.1 on all 3 node(s)"


def test_a_host_port_taken_by_another_pod_fails_but_the_node_proxys_own_pods_and_other_ips_do_not():
    fake = cluster_with_istio()
    fake.put(node("a", "containerd://1.7.16"))
    ports = [{"containerPort": 80, "hostPort": 5000}]
    fake.put(pod("kube-system", "old-registry-proxy", spec={"nodeName": "a", "containers": [{"ports": ports}]}))
    fake.put(pod("x", "elsewhere", spec={"nodeName": "a", "containers": [
        {"ports": [{"containerPort": 5000, "hostPort": 5000, "hostIP": "10.0.0.1"}]}]}))
    fake.put(pod("x", "udp", spec={"nodeName": "a", "containers": [
        {"ports": [{"containerPort": 5000, "hostPort": 5000, "protocol": "UDP"}]}]}))
    fake.put(pod("x", "host-network", spec={"nodeName": "a", "hostNetwork": True, "containers": [
        {"ports": [{"containerPort": 5000}]}]}))
    fake.put(pod("x", "done", spec={"nodeName": "a", "containers": [{"ports": ports}]}, phase="Succeeded"))
    fake.put(pod("meshreg", "node-proxy-1", labels={"app.kubernetes.io/instance": "meshreg",
                                                    "app.kubernetes.io/name": "node-proxy",
                                                    "meshreg.dev/node-proxy": "meshreg"},
                 spec={"nodeName": "a", "containers": [{"ports": [{"containerPort": 5000, "hostPort": 5000,
                                                                   "hostIP": "127.0.0.1"}]}]}))
    [_, ports_result] = check(fake, "nodes")
    assert ports_result.status == "FAIL"
    assert ports_result.message == ("the node proxy's hostPort is taken: 5000 on a by pod "
                                    "kube-system/old-registry-proxy; 5000 on a by pod x/host-network")


def test_nodes_still_reports_runtimes_when_pods_cannot_be_listed():
    fake = cluster_with_istio()
    fake.put(node("a", "containerd://1.7.16"))
    fake.failures[("list", "Pod", "*")] = ClusterError("forbidden: cannot list pods at the cluster scope")
    assert [r.status for r in check(fake, "nodes")] == ["OK", "WARN"]


def deployed(fake, text=None):
    from meshreg.config import from_text
    cfg = from_text(text, name="m.yaml") if text else DEFAULT
    fake.on_apply.append(ready_controller)
    applying.apply(manifests=render(cfg), cluster=fake)
    return cfg


def test_admission_reports_refusals_and_warnings_against_the_object_they_name():
    fake = cluster_with_istio()
    deployed(fake)
    fake.requests.clear()
    fake.warn_on["DaemonSet"] = ['would violate PodSecurity "restricted:latest": hostPort (container '
                                  '"istio-proxy" uses hostPort 5000)']
    fake.failures[("patch", "Deployment", "registry")] = refusal(
        400, "Deployment meshreg/registry", 'admission webhook "validate.kyverno.svc" denied the request: images '
                                            "must come from corp.io", reason="BadRequest")
    results = check(fake, "admission")
    assert [(r.status, r.message) for r in results] == [
        ("FAIL", 'Deployment meshreg/registry: refused by admission webhook "validate.kyverno.svc": images must '
                 "come from corp.io"),
        ("WARN", 'DaemonSet meshreg/node-proxy: warning: would violate PodSecurity "restricted:latest": hostPort '
                 '(container "istio-proxy" uses hostPort 5000)')]
    assert all(r[2]["dry_run"] for r in fake.requests if r[0] == "apply" and r[1][1] == "DaemonSet")


def test_admission_says_what_it_could_not_dry_run_before_the_namespace_exists():
    results = check(cluster_with_istio(), "admission")
    assert [(r.status, r.message) for r in results] == [
        ("OK", "server-side dry run of 2 objects: no refusal, no warning"),
        ("WARN", "17 of 19 objects not dry-run: namespace meshreg does not exist yet, and a server-side dry run "
                 "needs it")]


def test_admission_reports_a_field_conflict_as_a_warning_and_still_dry_runs_the_object():
    fake = cluster_with_istio()
    deployed(fake)
    fake.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "meshreg"},
                "spec": {"replicas": 3}}, field_manager="kubectl-edit", force=True)
    results = check(fake, "admission")
    assert [r.status for r in results] == ["WARN"]
    assert "owned by kubectl-edit" in results[0].message


def storage_class(name, *, default=False, mode="Immediate"):
    meta = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
            "provisioner": "csi.example", "volumeBindingMode": mode}


def test_storage_uses_the_default_class_and_reports_its_binding_mode():
    [result] = check(cluster_with_istio(), "storage")
    assert (result.status, result.message) == (
        "OK", "registry-data: default StorageClass standard (rancher.io/local-path, WaitForFirstConsumer: binds "
              "when the registry pod is scheduled)")


def test_storage_fails_for_a_configured_class_that_does_not_exist():
    fake = cluster_with_istio()
    fake.put(storage_class("fast"))
    [result] = check(fake, "storage", WRITERS + "  registry: {storage: {storageClassName: premium}}\n")
    assert result.status == "FAIL"
    assert result.message == "StorageClass premium (registry registry) does not exist (classes: fast, standard)"


def volume(name, size, *, cls=None, phase="Available"):
    spec = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"]}
    if cls:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec,
            "status": {"phase": phase}}


def test_without_a_default_class_only_a_large_enough_unclaimed_volume_without_a_class_will_do():
    fake = cluster_with_istio()
    del fake.objects[("storage.k8s.io/v1", "StorageClass", None, "standard")]
    for pv in (volume("small", "1Gi"), volume("classy", "1Ti", cls="fast"), volume("taken", "1Ti", phase="Bound")):
        fake.put(pv)
    [result] = check(fake, "storage")
    assert result.status == "FAIL" and "the claim would stay Pending" in result.message
    fake.put(volume("big", "20Gi"))
    [result] = check(fake, "storage")
    assert (result.status, result.message) == (
        "OK", "registry-data: no default StorageClass; 1 unclaimed volume(s) without a class fit 10Gi")


def test_a_bound_claim_is_ok_whatever_the_classes_say_now():
    fake = cluster_with_istio()
    del fake.objects[("storage.k8s.io/v1", "StorageClass", None, "standard")]
    deployed(fake)
    claim = fake.objects[("v1", "PersistentVolumeClaim", "meshreg", "registry-data")]
    claim["spec"]["volumeName"], claim["status"] = "pv-1", {"phase": "Bound"}
    [result] = check(fake, "storage")
    assert (result.status, result.message) == ("OK", "PVC meshreg/registry-data is bound to pv-1 (no class)")


def test_deployed_warns_before_up_and_is_healthy_after_it():
    fake = cluster_with_istio()
    [before] = check(fake, "deployed")
    assert before.status == "WARN" and before.message == ("meshreg (meshreg) is not deployed on "
                                                          "https://fake.invalid:6443")
    deployed(fake)  # the fake's controllers start the pods, and its injector gives them their proxies
    assert [(r.status, r.message) for r in check(fake, "deployed")] == [
        ("OK", "all 19 objects present and as rendered"),
        ("OK", "registry registry ready (1/1), every pod with the istio-proxy sidecar"),
        ("OK", "node proxy ready (2/2 nodes)"),
        ("OK", "Gateway node-proxy serves port(s) 5000 on 2 node-proxy pod(s)")]


def test_deployed_fails_on_drift_and_on_a_registry_without_its_sidecar():
    fake = cluster_with_istio()
    deployed(fake)
    fake.objects[("networking.istio.io/v1", "Gateway", "meshreg", "node-proxy")]["spec"]["servers"][0]["port"][
        "number"] = 5001
    registry_pod = fake.objects[("v1", "Pod", "meshreg", "registry-1-0")]
    registry_pod["spec"]["containers"] = [c for c in registry_pod["spec"]["containers"] if c["name"] != "istio-proxy"]
    failed = lines(check(fake, "deployed"), "FAIL")
    assert failed[0] == "Gateway meshreg/node-proxy drifted (.spec.servers[0].port.number)"
    assert failed[1].startswith("registry registry not ready (1/1, 0 of 1 pods with the sidecar): pod registry-1-0: "
                                "no istio-proxy sidecar was injected")
    assert "Gateway node-proxy has no server reached through Service node-proxy on port(s) 5000" in failed


def test_another_instances_published_address_does_not_make_this_one_look_deployed():
    fake = cluster_with_istio()
    deployed(fake)
    text = ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: other}\n"
            "spec: {namespace: other}\n")
    [result] = check(fake, "deployed", text)
    assert (result.status, result.message) == ("WARN", "meshreg (other) is not deployed on https://fake.invalid:6443")


def test_a_pending_claim_is_judged_by_its_own_class_not_by_the_config():
    fake = cluster_with_istio()  # the default class is standard, WaitForFirstConsumer
    deployed(fake)
    claim = fake.objects[("v1", "PersistentVolumeClaim", "meshreg", "registry-data")]
    claim["status"] = {"phase": "Pending"}
    claim["spec"]["storageClassName"] = "standard"
    assert [(r.status, r.message) for r in check(fake, "storage")] == [(
        "OK", "PVC meshreg/registry-data is not bound yet: StorageClass standard (rancher.io/local-path, "
              "WaitForFirstConsumer: binds when the registry pod is scheduled)")]
    fake.put(storage_class("fast", mode="Immediate"))
    claim["spec"]["storageClassName"] = "fast"
    [result] = check(fake, "storage")
    assert (result.status, result.message) == (
        "WARN", "PVC meshreg/registry-data is not bound although StorageClass fast binds at once (csi.example, "
                "Immediate: binds at once)")
    assert result.fix.startswith("kubectl -n meshreg describe pvc registry-data")
    claim["spec"]["storageClassName"] = "gone"
    [result] = check(fake, "storage")
    assert result.status == "FAIL" and result.message == (
        "PVC meshreg/registry-data is not bound and its StorageClass gone does not exist: it stays Pending")


def test_registries_on_object_storage_have_no_volume_to_check():
    from support.configs import GC_CONFIG
    fake = cluster_with_istio()
    del fake.objects[("storage.k8s.io/v1", "StorageClass", None, "standard")]  # S3 needs no class
    [result] = check(fake, "storage", GC_CONFIG)  # three of its four registries are on S3
    assert result.status == "FAIL" and result.message.startswith("workspace-images-data: no default StorageClass")
    only_s3 = ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n"
               "  writers: [{serviceAccount: builds/kaniko}]\n  registry:\n    storage:\n"
               "      s3: {bucket: images, region: eu-central-1, credentialsSecret: images-s3}\n")
    assert [(r.status, r.message) for r in check(fake, "storage", only_s3)] == [
        ("OK", "no PersistentVolumeClaim to bind: every registry stores its images in object storage")]

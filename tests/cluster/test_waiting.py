"""Rollout waiting, the progress line and the timeout diagnosis, on the fake cluster."""

from __future__ import annotations

import io

import pytest

from meshreg.cluster import wait as waiting
from meshreg.errors import ClusterError
from support.fakes import FakeCluster

NS = "meshreg"
SELECTOR = {"app.kubernetes.io/name": "registry"}
REGISTRY = ("apps/v1", "Deployment", "registry")
PROXY = ("apps/v1", "DaemonSet", "node-proxy")


class TtyBuffer(io.StringIO):
    def isatty(self):
        return True


def cluster_with(*pods, events=(), pvc_phase="Bound"):
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": NS,
                                                                          "generation": 1},
              "spec": {"replicas": 1, "selector": {"matchLabels": SELECTOR}}, "status": {"observedGeneration": 1}})
    fake.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": "registry-data", "namespace": NS}, "status": {"phase": pvc_phase}})
    for i, (spec, status) in enumerate(pods):
        fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"registry-{i}", "namespace": NS,
                                                                  "labels": SELECTOR},
                  "spec": spec, "status": status})
    for i, event in enumerate(events):
        fake.put({"apiVersion": "v1", "kind": "Event", "type": "Warning",
                  "metadata": {"name": f"e{i}", "namespace": NS}, **event})
    return fake


WITH_SIDECAR = {"containers": [{"name": "registry"}, {"name": "istio-proxy"}]}


def causes(fake, workloads=(REGISTRY,)):
    return waiting.diagnose(cluster=fake, namespace=NS, workloads=list(workloads))


def test_a_pod_without_istio_proxy_is_diagnosed_as_not_injected():
    fake = cluster_with(({"containers": [{"name": "registry"}]}, {}))
    assert any("no istio-proxy sidecar was injected" in c for c in causes(fake))


def test_a_native_sidecar_in_init_containers_counts_as_injected():
    fake = cluster_with(({"containers": [{"name": "registry"}], "initContainers": [{"name": "istio-proxy",
                                                                                   "restartPolicy": "Always"}]}, {}))
    assert causes(fake) == []


def test_a_pending_pvc_is_diagnosed_with_its_event_message():
    fake = cluster_with(events=[{"reason": "ProvisioningFailed", "message": "storageclass \"fast\" not found",
                                 "involvedObject": {"kind": "PersistentVolumeClaim", "name": "registry-data"}}],
                        pvc_phase="Pending")
    assert causes(fake) == ['PersistentVolumeClaim registry-data is Pending: storageclass "fast" not found']


def test_a_hostport_clash_is_diagnosed_from_the_scheduling_condition():
    message = "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports."
    fake = cluster_with((WITH_SIDECAR, {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}))
    [cause] = causes(fake)
    assert message in cause and "hostPort is already taken" in cause


def test_a_crash_loop_names_the_container_and_exit_code():
    fake = cluster_with((WITH_SIDECAR, {"containerStatuses": [{
        "name": "registry", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}))
    [cause] = causes(fake)
    assert "container registry keeps crashing (last exit code 1, Error)" in cause


def test_no_pods_at_all_reports_the_controllers_failed_create_event():
    fake = cluster_with(events=[{"reason": "FailedCreate", "message": 'pods "node-proxy-x" is forbidden: '
                                 "violates PodSecurity \"baseline:latest\": hostPort",
                                 "involvedObject": {"kind": "DaemonSet", "name": "node-proxy"}}])
    fake.put({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-proxy", "namespace": NS},
              "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "node-proxy"}}}})
    assert any("violates PodSecurity" in c for c in causes(fake, [PROXY]))


def test_wait_returns_once_the_rollout_is_complete():
    fake = cluster_with()
    fake.objects[("apps/v1", "Deployment", NS, "registry")]["status"] = {
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    out = io.StringIO()
    waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=5,
                 progress=waiting.Progress(stream=out), sleep=lambda s: None)
    assert out.getvalue() == "waiting: registry 1/1 (0s)\n"


def test_wait_does_not_count_a_stale_observed_generation_as_done():
    fake = cluster_with()
    fake.objects[("apps/v1", "Deployment", NS, "registry")]["metadata"]["generation"] = 2
    fake.objects[("apps/v1", "Deployment", NS, "registry")]["status"] = {
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    ticks = iter(range(0, 100, 10))
    with pytest.raises(ClusterError, match="timed out after 15s waiting for Deployment meshreg/registry"):
        waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=15,
                     progress=waiting.Progress(quiet=True), clock=lambda: next(ticks), sleep=lambda s: None)


def test_progress_rewrites_one_line_on_a_tty():
    out = TtyBuffer()
    progress = waiting.Progress(stream=out)
    progress.update("a")
    progress.update("b")
    progress.done()
    assert out.getvalue() == "\r\x1b[Ka\r\x1b[Kb\n"


def test_progress_is_plain_on_a_tty_when_no_color_is_set(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = TtyBuffer()
    progress = waiting.Progress(stream=out)
    progress.update("a")
    assert out.getvalue() == "a\n"


def test_quiet_progress_writes_nothing():
    out = TtyBuffer()
    waiting.Progress(stream=out, quiet=True).update("a")
    assert out.getvalue() == ""


def test_an_unreplaced_gateway_image_is_diagnosed_as_missing_injection():
    fake = cluster_with(({"containers": [{"name": "istio-proxy", "image": "auto"}]}, {"containerStatuses": [{
        "name": "istio-proxy", "image": "auto", "state": {"waiting": {"reason": "InvalidImageName"}}}]}))
    assert causes(fake) == ["pod registry-0: Istio did not inject the gateway (image: auto was never replaced; "
                            "check the namespace's injection label and that istiod is running)"]


# distribution 2.8.2's last line when its upstream refuses the connection at start-up (copied from a real run; the
# e2e mirror test checks that the real registry still prints a line crashes.explain recognizes).
PANIC = ('time="2026-11-30T22:21:47Z" level=info msg="redis not configured"\n'
         'panic: Get "http://hub-upstream.meshreg.svc.cluster.local/v2/": dial tcp 10.96.4.7:80: connect: '
         'connection refused\n\ngoroutine 1 [running]:\n')


def test_a_crash_looping_mirror_is_explained_from_its_previous_log():
    fake = cluster_with((WITH_SIDECAR, {"containerStatuses": [{
        "name": "registry", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}))
    fake.logs[(NS, "registry-0", "registry", True)] = PANIC
    found = causes(fake)
    assert any("keeps crashing (last exit code 2, Error)" in c for c in found)
    [why] = [c for c in found if "panicked" in c]
    assert why.startswith("pod registry-0: container registry: the mirror panicked while starting because it could "
                          "not reach http://hub-upstream.meshreg.svc.cluster.local (dial tcp")
    assert "Its sidecar was not running when it started" in why
    assert ("log", (NS, "registry-0", "registry"), {"previous": True}) in fake.requests


def test_a_crash_without_a_known_cause_adds_nothing_and_a_log_that_cannot_be_read_is_no_error():
    fake = cluster_with((WITH_SIDECAR, {"containerStatuses": [{
        "name": "registry", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}))
    fake.logs[(NS, "registry-0", "registry", True)] = "level=fatal msg=\"open /etc/docker/registry/config.yml\"\n"
    assert [c for c in causes(fake) if "panicked" in c] == []
    fake.failures[("get", "pods/log", "*")] = ClusterError("forbidden: cannot get pods/log in namespace meshreg")
    assert len(causes(fake)) == 1  # the crash line only

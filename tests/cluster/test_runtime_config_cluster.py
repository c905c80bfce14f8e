"""The runtime config in a cluster: `up` waits for it, `status` shows it and the nodes that need it, `down` waits
for its pods to remove their files. On the fake cluster, plus the requests on the wire."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.cluster import runtimeconfig
from meshreg.errors import ClusterError
from support.fakes import FakeCluster, connected, ready_controller

ENABLED = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  nodeProxy:
    runtimeConfig:
      containerd: {enabled: true}
"""
DS = ("apps/v1", "DaemonSet", "meshreg", runtimeconfig.WORKLOAD[2])


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The fake cluster, with meshreg run from a directory whose meshreg.yaml enables the runtime config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(ENABLED)
    return connected(monkeypatch)


def run(*args):
    return CliRunner().invoke(main, list(args))


def up(fake) -> None:
    """`meshreg up`, then the registry's pod with its sidecar, so only the runtime config decides health."""
    assert run("up", "-q").exit_code == 0
    deployment = fake.get("apps/v1", "Deployment", "registry", namespace="meshreg")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "registry-0", "namespace": "meshreg",
                                                             "labels": labels},
              "spec": {"containers": [{"name": "registry"}, {"name": "istio-proxy"}]}})


def node(name: str, runtime: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"nodeInfo": {"containerRuntimeVersion": runtime}}}


def test_up_applies_the_runtime_config_and_waits_for_it_on_every_node(fake):
    fake.on_apply[:] = [lambda c, obj: None if obj["metadata"]["name"] == DS[3] else ready_controller(c, obj)]
    result = run("up", "-q", "--timeout", "1")
    assert result.exit_code == 1
    assert f"DaemonSet meshreg/{DS[3]}" in result.output and "node-proxy (" not in result.output
    assert fake.objects[DS]["spec"]["template"]["spec"]["containers"][0]["name"] == "containerd"


def test_status_shows_the_runtime_config_and_counts_it_in_health(fake):
    up(fake)
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "runtime config: ready (2/2 nodes), writing containerd /etc/containerd/certs.d" in result.output
    fake.objects[DS]["status"]["numberReady"] = 1
    result = run("status", "-o", "json")
    report = json.loads(result.output)["runtimeConfig"]
    assert result.exit_code == 1 and report["enabled"] and not report["ready"]


def test_status_names_the_nodes_whose_runtime_needs_it_and_lacks_it(fake):
    run("up", "-q")
    for n in (node("a", "cri-o://1.28.1"), node("b", "containerd://1.7.13"), node("c", "containerd://2.0.2"),
              node("d", "containerd://1.7.11-k3s2"), node("e", "remote://1.0")):
        fake.put(n)
    lines = [line for line in run("status").output.splitlines() if line.startswith("  node ")]
    assert [line.split(":")[0] for line in lines] == ["  node a", "  node e"]
    assert "needs it (spec.nodeProxy.runtimeConfig.crio)" in lines[0]


def test_status_says_so_when_nodes_cannot_be_listed(fake):
    up(fake)
    fake.failures[("list", "Node", "*")] = ClusterError('forbidden: cannot list nodes')
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "  node runtimes: unknown (forbidden: cannot list nodes)" in result.output


def test_the_default_config_shows_it_disabled(fake, tmp_path):
    (tmp_path / "meshreg.yaml").unlink()
    run("up", "-q")
    assert "runtime config: disabled" in run("status").output


def test_down_deletes_the_daemonset_and_says_the_files_are_gone(fake):
    run("up", "-q")
    result = run("down")
    assert result.exit_code == 0, result.output
    assert DS not in fake.objects
    assert "runtime config: every pod removed its files from its node" in result.output


def test_disabling_it_prunes_its_objects(fake, tmp_path):
    run("up", "-q")
    (tmp_path / "meshreg.yaml").unlink()
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    for kind in ("DaemonSet", "ConfigMap", "ServiceAccount"):
        assert f"pruned      {kind} meshreg/{DS[3]}" in result.output


def test_waiting_for_the_pods_to_go_gives_up_with_a_pointer_to_the_docs():
    cluster = FakeCluster()
    cluster.put({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": DS[3], "namespace": "meshreg"}, "spec": {}})
    now = iter(range(0, 1000, 10))
    problem = runtimeconfig.wait_removed(cluster=cluster, cfg=config.DEFAULT, timeout=30,
                                         clock=lambda: next(now), sleep=lambda s: None)
    assert "still has pods after 30s" in problem and "docs/node-runtimes.md" in problem


"""`status` gives a registry volume's usage where the kubelet measures it, and otherwise says exactly why not: no
pod, a pod not running, a stats summary the API cannot give (with the API's reason), a pod not measured yet, or a
volume type the kubelet does not measure (hostPath)."""

from __future__ import annotations

import pytest

from meshreg.cli.output import status as output
from meshreg.config import from_text
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.status import volume
from support.configs import minimal
from support.fakes import FakeCluster

CFG = from_text(minimal("  namespace: reg\n"), name="m.yaml")
REG = CFG.registry


def cluster(*, phase: str | None = "Running", node: str | None = "n1", source: dict | None = None) -> FakeCluster:
    """A registry pod (in `phase` on `node`), its claim bound to a volume of `source`."""
    fake = FakeCluster()
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "registry-1", "namespace": "reg", "labels": labels.registry_pods(CFG, REG)},
           "spec": {"nodeName": node} if node else {}, "status": {"phase": phase} if phase else {}}
    fake.put(pod)
    fake.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": "registry-data", "namespace": "reg"}, "spec": {"volumeName": "pv-1"}})
    fake.put({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
              "spec": source or {"local": {"path": "/mnt/disks/a"}}})
    return fake


def measured(used: int = 12 << 20, capacity: int = 64 << 20) -> dict:
    return {"pods": [{"podRef": {"name": "registry-1"}, "volume": [
        {"name": "data", "pvcRef": {"name": "registry-data"}, "usedBytes": used, "capacityBytes": capacity}]}]}


def test_a_measured_volume_shows_its_figures():
    fake = cluster()
    fake.summaries["n1"] = measured()
    found = volume.usage(fake, CFG, REG)
    assert (found.used_bytes, found.capacity_bytes, found.reason) == (12 << 20, 64 << 20, None)
    assert output._volume(found) == {"usedBytes": 12 << 20, "capacityBytes": 64 << 20, "reason": None}
    assert output._volume_text(found) == "12.0 MiB used of 64.0 MiB"


def test_a_hostpath_volume_is_said_to_be_unmeasured_by_the_kubelet():
    fake = cluster(source={"hostPath": {"path": "/srv/registry"}})
    fake.summaries["n1"] = {"pods": [{"podRef": {"name": "registry-1"}, "volume": [{"name": "config"}]}]}
    found = volume.usage(fake, CFG, REG)
    assert found.reason == "PersistentVolume pv-1 is a hostPath volume, which the kubelet does not measure"
    assert output._volume_text(found) == ("usage unknown: PersistentVolume pv-1 is a hostPath volume, which the "
                                          "kubelet does not measure")
    assert output._volume(found) == {"usedBytes": None, "capacityBytes": None, "reason": found.reason}


def test_another_volume_type_without_a_figure_is_named():
    fake = cluster(source={"csi": {"driver": "example.csi", "volumeHandle": "v"}})
    fake.summaries["n1"] = {"pods": [{"podRef": {"name": "registry-1"}, "volume": []}]}
    assert volume.usage(fake, CFG, REG).reason == ("the kubelet of node n1 reports no figure for PersistentVolume "
                                                   "pv-1 (type csi)")


def test_a_summary_the_api_cannot_give_says_the_apis_reason():
    fake = cluster()
    fake.failures[("get", "NodeSummary", "n1")] = ClusterError(
        "reading the kubelet's stats of node n1: not permitted (RBAC): cannot get resource \"nodes/proxy\"")
    assert volume.usage(fake, CFG, REG).reason == (
        "the kubelet's stats of node n1 cannot be read through the API: reading the kubelet's stats of node n1: not "
        "permitted (RBAC): cannot get resource \"nodes/proxy\"")


@pytest.mark.parametrize(("phase", "node", "reason"), [
    ("Pending", "n1", "pod registry-1 is Pending: its kubelet measures the volume only while it runs"),
    (None, None, "pod registry-1 is not scheduled to a node: its kubelet measures the volume only while it runs"),
    ("Failed", "n1", "pod registry-1 is Failed: its kubelet measures the volume only while it runs"),
])
def test_a_pod_that_does_not_run_is_named_with_its_phase(phase, node, reason):
    assert volume.usage(cluster(phase=phase, node=node), CFG, REG).reason == reason


def test_no_registry_pod_means_no_kubelet_measures_it():
    fake = cluster()
    fake.objects = {k: v for k, v in fake.objects.items() if k[1] != "Pod"}
    assert volume.usage(fake, CFG, REG).reason == "no registry pod, so no kubelet measures the volume"


def test_a_pod_the_kubelet_does_not_list_yet_is_said_so():
    fake = cluster()
    fake.summaries["n1"] = {"pods": []}
    assert volume.usage(fake, CFG, REG).reason == ("the kubelet of node n1 does not list pod registry-1 yet (it "
                                                   "measures about every minute)")

"""`meshreg status -o json` has the shape docs/output.md documents, key for key and in order
(meshreg.cli.output.status.data): every key always present, null where it does not apply; and the runtime config's
lines point each node at what it needs."""

from __future__ import annotations

import json

from meshreg import config
from meshreg.cli.output.status import data, runtime_config_lines
from meshreg.status import gather
from meshreg.status.report import (
    GcJob,
    GcState,
    Mtls,
    NodeProxyState,
    NodeRuntime,
    ObjectState,
    PushProxyState,
    RegistryEntry,
    RuntimeConfigState,
    StatusReport,
    VolumeUsage,
    WaypointState,
)
from support.fakes import FakeCluster

MTLS = Mtls(effective="STRICT", workload="STRICT", namespace=None, mesh="unknown")
IMAGES = RegistryEntry(name="images", role="images", default=True, ready=True, replicas="1/1", pods=1,
                       with_sidecar=0, in_ambient=1, mtls=MTLS, writers=("builds/kaniko",), endpoints=1,
                       addresses={"host": "localhost:5000"}, problems=("pod x: y",), storage="volume",
                       gc=GcState(deployed=True, schedule="0 3 * * 0", last_schedule="t0", last_success=None,
                                  last_job=GcJob(name="j", state="Complete", started="t1", completed="t2")),
                       volume=VolumeUsage(used_bytes=1, capacity_bytes=2))
CACHE = RegistryEntry(name="cache", role="mirror", default=False, ready=False, replicas="missing", pods=0,
                      with_sidecar=0, in_ambient=0, mtls=MTLS, writers=(), endpoints=-1, addresses=None, problems=(),
                      storage="s3", gc=GcState(deployed=False), volume=None)
REPORT = StatusReport(
    server="https://k:6443",
    objects=(ObjectState("Namespace", None, "ns", "present"),
             ObjectState("Deployment", "ns", "images", "drifted", (".spec.replicas",))),
    registries=(IMAGES, CACHE), node_proxy=NodeProxyState(enabled=True, ready=True, nodes="2/2 nodes"),
    runtime_config=RuntimeConfigState(enabled=True, directories={"containerd": "/etc/containerd/certs.d"},
                                      ready=True, nodes="2/2 nodes", runtimes=(NodeRuntime(
                                          node="a", container_runtime_version="cri-o://1.28.1", needed=True,
                                          setting="crio", set_up=False, k3s=False, reason="r"),)),
    push_proxies=(PushProxyState(registry="images", namespace="push", ready=True, replicas="1/1",
                                 repositories=("dev/",), port=5050),),
    waypoint=WaypointState(name="waypoint", programmed=True, message="m", ready=True, replicas="1/1"),
    healthy=False)

IMAGES_DATA = {"name": "images", "role": "images", "default": True, "ready": True, "replicas": "1/1", "pods": 1,
               "withSidecar": 0, "inAmbient": 1,
               "mtls": {"effective": "STRICT", "workload": "STRICT", "namespace": None, "mesh": "unknown"},
               "writers": ["builds/kaniko"], "endpoints": 1, "addresses": {"host": "localhost:5000"},
               "problems": ["pod x: y"], "storage": "volume",
               "gc": {"deployed": True, "schedule": "0 3 * * 0", "lastSchedule": "t0", "lastSuccess": None,
                      "lastJob": {"name": "j", "state": "Complete", "started": "t1", "completed": "t2"}},
               "volume": {"usedBytes": 1, "capacityBytes": 2, "reason": None}}
CACHE_DATA = {"name": "cache", "role": "mirror", "default": False, "ready": False, "replicas": "missing", "pods": 0,
              "withSidecar": 0, "inAmbient": 0,
              "mtls": {"effective": "STRICT", "workload": "STRICT", "namespace": None, "mesh": "unknown"},
              "writers": [], "endpoints": None, "addresses": None, "problems": [], "storage": "s3",
              "gc": {"deployed": False, "schedule": None, "lastSchedule": None, "lastSuccess": None, "lastJob": None},
              "volume": None}


def test_the_json_has_every_key_of_every_part_in_its_order():
    expected = {
        "apiVersion": "meshreg.dev/v1alpha1", "kind": "StatusReport",
        "server": "https://k:6443", "healthy": False,
        "objects": [{"kind": "Namespace", "namespace": None, "name": "ns", "state": "present", "fields": []},
                    {"kind": "Deployment", "namespace": "ns", "name": "images", "state": "drifted",
                     "fields": [".spec.replicas"]}],
        "registries": [IMAGES_DATA, CACHE_DATA], "registry": IMAGES_DATA,
        "nodeProxy": {"enabled": True, "ready": True, "nodes": "2/2 nodes", "pods": []},
        "runtimeConfig": {"enabled": True, "directories": {"containerd": "/etc/containerd/certs.d"}, "ready": True,
                          "nodes": "2/2 nodes", "runtimes": [{
                              "node": "a", "containerRuntimeVersion": "cri-o://1.28.1", "needed": True,
                              "setting": "crio", "setUp": False, "k3s": False, "reason": "r"}],
                          "runtimesUnread": None},
        "pushProxies": [{"registry": "images", "namespace": "push", "ready": True, "replicas": "1/1",
                         "repositories": ["dev/"], "port": 5050}],
        "waypoint": {"name": "waypoint", "programmed": True, "message": "m", "ready": True, "replicas": "1/1"}}
    assert json.dumps(data(REPORT), indent=2) == json.dumps(expected, indent=2)


def test_a_disabled_runtime_config_and_unlisted_nodes_keep_their_json_shape():
    disabled = RuntimeConfigState(enabled=False, directories={}, ready=None, nodes=None, runtimes=(),
                                  unread="forbidden")
    assert data(StatusReport(**{**vars(REPORT), "runtime_config": disabled, "waypoint": None}))["runtimeConfig"] == {
        "enabled": False, "directories": {}, "ready": None, "nodes": None, "runtimes": [],
        "runtimesUnread": "forbidden"}
    assert data(StatusReport(**{**vars(REPORT), "waypoint": None}))["waypoint"] is None


def test_a_k3s_node_is_pointed_at_registries_yaml():
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "k"},
              "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.7.11-k3s2"}}})
    report = gather.runtime_config(fake, config.DEFAULT)
    assert "registries.yaml (k3s/RKE2)" in "\n".join(runtime_config_lines(report))

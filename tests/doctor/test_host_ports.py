"""The hostPort check reads only the pods of nodes where the node proxy does not hold its ports yet: none once it
runs everywhere (the scheduler never places two pods with one host port on a node), one node's pods for a node
it has not reached, every pod before the first `up`."""

from __future__ import annotations

import copy

from meshreg.config import DEFAULT
from meshreg.render import render
from support.doctor_helpers import check, cluster_with_istio, pod

NODE_PROXY_PODS = {"app.kubernetes.io/instance": "meshreg", "app.kubernetes.io/name": "node-proxy",
                   "meshreg.dev/node-proxy": "meshreg"}
TAKEN = [{"containerPort": 80, "hostPort": 5000}]


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.7.16"}}}


def node_proxy(*, ready: int, nodes: int, port: int = 5000) -> dict:
    """The rendered DaemonSet as the API server holds it, ready on `ready` of `nodes` nodes."""
    daemon_set = copy.deepcopy(next(o for o in render(DEFAULT) if o["kind"] == "DaemonSet"))
    for c in daemon_set["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports") or []:
            p["hostPort"] = p["containerPort"] = port
    daemon_set["metadata"]["generation"] = 2
    daemon_set["status"] = {"observedGeneration": 2, "desiredNumberScheduled": nodes, "updatedNumberScheduled": nodes,
                            "numberReady": ready}
    return daemon_set


def proxy_pod(node_name: str, *, ready: bool = True) -> dict:
    spec = {"nodeName": node_name, "containers": [{"name": "istio-proxy", "ports": [
        {"containerPort": 5000, "hostPort": 5000, "hostIP": "127.0.0.1", "protocol": "TCP"}]}]}
    out = pod("meshreg", f"node-proxy-{node_name}", labels=NODE_PROXY_PODS, spec=spec)
    out["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return out


def pod_reads(fake) -> list[str | None]:
    """The field selector of every LIST of pods outside meshreg's namespace."""
    return [q["fieldSelector"] for verb, (_, kind, ns), q in (r for r in fake.requests if r[0] == "list")
            if kind == "Pod" and ns != "meshreg"]


def test_no_pod_is_read_where_the_node_proxy_holds_the_port_on_every_node():
    fake = cluster_with_istio()
    for name in ("a", "b", "c"):
        fake.put(node(name))
    fake.put(node_proxy(ready=3, nodes=3))
    [_, ports] = check(fake, "nodes")
    assert (ports.status, ports.message) == ("OK", "hostPort 5000 on 127.0.0.1 is the node proxy's on all 3 node(s)")
    assert pod_reads(fake) == []
    assert not [r for r in fake.requests if r[0] == "list" and r[1][1] == "Pod"]  # not even its own pods


def test_only_the_pods_of_a_node_the_node_proxy_has_not_reached_are_read():
    fake = cluster_with_istio()
    for name in ("a", "b", "c"):
        fake.put(node(name))
    fake.put(node_proxy(ready=2, nodes=3))
    fake.put(proxy_pod("a"))
    fake.put(proxy_pod("b"))
    fake.put(proxy_pod("c", ready=False))  # pending: something holds its port on c
    fake.put(pod("kube-system", "old-registry-proxy", spec={"nodeName": "c", "containers": [{"ports": TAKEN}]}))
    [_, ports] = check(fake, "nodes")
    assert ports.status == "FAIL"
    assert ports.message == "the node proxy's hostPort is taken: 5000 on c by pod kube-system/old-registry-proxy"
    assert pod_reads(fake) == ["spec.nodeName=c,status.phase!=Succeeded,status.phase!=Failed"]


def test_every_pod_is_read_when_the_node_proxy_holds_other_ports_than_the_config_says():
    fake = cluster_with_istio()
    fake.put(node("a"))
    fake.put(node_proxy(ready=1, nodes=1, port=5001))  # deployed with another port; the config now says 5000
    fake.put(pod("kube-system", "old-registry-proxy", spec={"nodeName": "a", "containers": [{"ports": TAKEN}]}))
    [_, ports] = check(fake, "nodes")
    assert ports.status == "FAIL" and "5000 on a by pod kube-system/old-registry-proxy" in ports.message
    assert pod_reads(fake) == ["status.phase!=Succeeded,status.phase!=Failed"]


def test_before_the_first_up_every_pod_is_read_once():
    fake = cluster_with_istio()
    for name in ("a", "b"):
        fake.put(node(name))
    [_, ports] = check(fake, "nodes")
    assert ports.message == "hostPort 5000 is free on 127.0.0.1 on all 2 node(s)"
    assert pod_reads(fake) == ["status.phase!=Succeeded,status.phase!=Failed"]

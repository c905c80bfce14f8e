"""The real stack is what the tier says it is: a Ready real node and a ready istiod whose injector adds sidecars."""

from __future__ import annotations


def test_the_real_node_runs_containerd_and_istiod_injects(stack):
    node = stack.kubectl("get", "node", stack.node, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}")
    assert node.stdout.startswith("containerd://")
    hooks = stack.kubectl("get", "mutatingwebhookconfiguration", "istio-sidecar-injector", "-o", "name")
    assert hooks.stdout.strip() == "mutatingwebhookconfiguration.admissionregistration.k8s.io/istio-sidecar-injector"

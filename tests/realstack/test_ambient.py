"""Ambient mode (spec.mesh: ambient) needs ztunnel on every node and Istio 1.24 or newer with the Gateway API; the
lab's istiod is 1.14 (the newest Istio fork with vendored dependencies, so buildable without the Go module proxy)
and ztunnel (Rust, its crates not vendored) cannot be built here. So the tier checks ambient only where a stack has a
ztunnel DaemonSet; ambient's data plane is shown on Envoys standing in for ztunnel and the waypoint by
tests/e2e/test_ambient.py."""

from __future__ import annotations

import pytest

from support import realstack
from support.paths import ROOT

NO_ZTUNNEL = ("ambient mode needs ztunnel, which this stack has not (it cannot be built here: Rust crates not "
              "vendored, no registry access) and Istio 1.24+ (the lab's istiod is 1.14); "
              "tests/e2e/test_ambient.py covers ambient on Envoys standing in for ztunnel and the waypoint")


def test_doctor_finds_nothing_that_fails_for_the_ambient_example(stack, workdir):
    if not stack.get("daemonsets", namespace="istio-system", selector="app=ztunnel"):
        pytest.skip(NO_ZTUNNEL)
    text = (ROOT / "examples" / "gitpod-ambient" / "meshreg.yaml").read_text()
    text = text.replace("name: gitpod\n", "name: rs-ambient\n", 1).replace("namespace: gitpod-registry",
                                                                          "namespace: rs-ambient")
    with realstack.deployed(stack, workdir, text, up=None) as instance:
        found = instance.json("doctor", check=False)
    assert [r for r in found["results"] if r["status"] == "FAIL"] == []

"""Check 2b (ambient mode only): the Gateway API, the istio-waypoint GatewayClass, ztunnel, and injection of the
gateway pods (node proxy, push proxies), as meshreg.cluster.ambient checks them before `up`."""

from __future__ import annotations

from meshreg.cluster import ambient
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, fail, ok, warn

CHECK = "ambient"
FIX = "see docs/ambient.md: ambient mode needs the Gateway API CRDs, Istio's ambient profile (ztunnel, istio-cni) " \
      "and its istio-waypoint GatewayClass"


def check(facts: Facts) -> list[Result]:
    out = []
    for found in ambient.checks(cluster=facts.cluster, manifests=facts.manifests):
        if found.ok:
            out.append(ok(CHECK, found.detail))
        elif found.ok is None:
            out.append(warn(CHECK, f"could not check: {found.detail}", FIX))
        else:
            out.append(fail(CHECK, found.detail, FIX))
    return out

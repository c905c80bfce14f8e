"""Check 2c (with spec.ingress only): the ingress gateway's namespace and pods, its server certificate Secret, and
RequestAuthentication for jwt clients, as meshreg.cluster.ingress checks them before `up`."""

from __future__ import annotations

from meshreg.cluster import ingress
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "ingress"
FIX = "see docs/ingress.md: the ingress uses an Istio ingress gateway that already runs (spec.ingress.gateway)"


def check(facts: Facts) -> list[Result]:
    if facts.cfg.ingress is None:
        return []
    try:
        warnings = ingress.preflight(cluster=facts.cluster, manifests=facts.manifests)
    except ClusterError as e:
        return [fail(CHECK, str(e), FIX)]
    if warnings:
        return [warn(CHECK, w, FIX) for w in warnings]
    return [ok(CHECK, f"the ingress gateway for {facts.cfg.ingress.host} is in place")]

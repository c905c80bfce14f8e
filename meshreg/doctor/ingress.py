"""Check 2c (with spec.ingress only): the ingress gateway's namespace and pods, its server certificate Secret, and
RequestAuthentication for jwt clients, as meshreg.cluster.ingress checks them before `up`; and a Gateway tls.mode
the cluster's istiod knows."""

from __future__ import annotations

from meshreg.cluster import ingress
from meshreg.doctor.facts import Facts, istiod_version, version_tuple
from meshreg.doctor.results import Result, fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "ingress"
FIX = "see docs/ingress.md: the ingress uses an Istio ingress gateway that already runs (spec.ingress.gateway)"
OPTIONAL_MUTUAL_SINCE = (1, 22)  # absent from Istio 1.14's API (the lab's), served by 1.22 (meshreg's oldest)


def check(facts: Facts) -> list[Result]:
    if facts.cfg.ingress is None:
        return []
    unknown_mode = _unknown_tls_mode(facts)
    if unknown_mode:
        return [unknown_mode]
    try:
        warnings = ingress.preflight(cluster=facts.cluster, manifests=facts.manifests)
    except ClusterError as e:
        return [fail(CHECK, str(e), FIX)]
    if warnings:
        return [warn(CHECK, w, FIX) for w in warnings]
    return [ok(CHECK, f"the ingress gateway for {facts.cfg.ingress.host} is in place")]


def _unknown_tls_mode(facts: Facts) -> Result | None:
    """A FAIL when the rendered Gateway is OPTIONAL_MUTUAL (certificate and token clients on one host) and istiod is
    older than the release known to serve it: istiod lists every Gateway of the cluster with one decoder, so a
    single Gateway with a tls.mode it does not know stops it from reading any (seen with Istio 1.14: 'failed to list
    *v1alpha3.Gateway: unknown value "OPTIONAL_MUTUAL"'), which takes every gateway in the cluster down with it."""
    modes = {s.get("tls", {}).get("mode") for o in facts.manifests if o["kind"] == "Gateway"
             for s in o["spec"].get("servers") or []}
    if "OPTIONAL_MUTUAL" not in modes:
        return None
    try:
        _, istiod = facts.control_plane()
    except ClusterError:
        return None
    version = istiod_version(istiod) if istiod else None
    if not version or version_tuple(version) >= OPTIONAL_MUTUAL_SINCE:
        return None
    return fail(CHECK, f"certificate and token clients on one host render a Gateway with tls.mode OPTIONAL_MUTUAL, "
                       f"which istiod {version} does not know: one such Gateway stops istiod from reading every "
                       "Gateway in the cluster",
                "upgrade istiod to 1.22 or newer, or serve certificate and token clients on separate hosts (one "
                "meshreg instance each)")

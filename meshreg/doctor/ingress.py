"""Check 2c (with spec.ingress only): the ingress gateway's namespace and pods, its server certificate Secret, and
RequestAuthentication for jwt clients, as meshreg.cluster.ingress checks them before `up`; a Gateway tls.mode the
cluster's istiod knows; and whether the istiod can take the route that refuses cross-repository mounts (a header match
on `:path`, which Istio 1.23.0 to 1.24.3 refuse: their validation allowed only `[-_A-Za-z0-9]` in header names)."""

from __future__ import annotations

from meshreg.cluster import ingress
from meshreg.doctor.facts import Facts, istiod_version, version_tuple
from meshreg.doctor.results import Result, fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "ingress"
FIX = "see docs/ingress.md: the ingress uses an Istio ingress gateway that already runs (spec.ingress.gateway)"
OPTIONAL_MUTUAL_SINCE = (1, 22)  # absent from Istio 1.14's API (the lab's), served by 1.22 (meshreg's oldest)
PATH_MATCH_REFUSED = ((1, 23), (1, 24, 4))  # Istio versions whose validation refuses a header match on :path


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
    mounts = _mounts(facts)
    if warnings:
        return [warn(CHECK, w, FIX) for w in warnings] + mounts
    return [ok(CHECK, f"the ingress gateway for {facts.cfg.ingress.host} is in place"), *mounts]


def _mounts(facts: Facts) -> list[Result]:
    """With a client that may read less than everything, the route refusing mounts must be accepted."""
    ing = facts.cfg.ingress
    if ing is None or not ing.read_restricted:
        return []
    try:
        _, istiod = facts.control_plane()
    except ClusterError:
        istiod = None
    version = istiod_version(istiod) if istiod else None
    low, high = PATH_MATCH_REFUSED
    if version and low <= version_tuple(version) < high:
        return [fail(CHECK, f"istiod {version} refuses the ingress route that refuses cross-repository mounts (a "
                            "VirtualService header match on :path; Istio 1.23.0 to 1.24.3), so `up` would be "
                            "refused, and without that route a client could read past its read prefixes",
                     "upgrade Istio to 1.24.4 or newer; or let every client read everything (readRepositories: "
                     "['*']) and keep images a client must not read in another registry")]
    return [ok(CHECK, f"cross-repository mounts are refused at the gateway for {ing.host}, so no client reads past "
                      "its read prefixes")]


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

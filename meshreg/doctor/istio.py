"""Check 2: Istio's CRDs at the versions meshreg renders, an istiod for the revision that injects the registry
(revision-aware: `istio.io/rev` labels, revision tags, spec.istioRevision), its version, and an injector webhook
that selects the namespace and pod labels meshreg renders."""

from __future__ import annotations

from meshreg.cluster.api import Object
from meshreg.cluster.client import KINDS
from meshreg.doctor.facts import DEFAULT_REVISION, Facts, Injector, istiod_version, revision_of, version_tuple
from meshreg.doctor.results import Result, fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "istio"
V1_SINCE = (1, 22)  # the release that served Istio's security and networking APIs as v1


def check(facts: Facts) -> list[Result]:
    return [crds(facts), *control_plane(facts), *injection(facts)]


def crds(facts: Facts) -> Result:
    """Every Istio kind the render holds must be served at the version rendered."""
    wanted = sorted({(o["apiVersion"], KINDS[(o["apiVersion"], o["kind"])][0]) for o in facts.manifests
                     if ".istio.io/" in o["apiVersion"]})
    missing = [f"{plural}.{gv.partition('/')[0]}" for gv, plural in wanted if plural not in facts.served(gv)]
    if not missing:
        versions = ", ".join(sorted({gv for gv, _ in wanted}))
        return ok(CHECK, f"Istio CRDs served for every kind meshreg renders ({versions})")
    older = "authorizationpolicies" in facts.served("security.istio.io/v1beta1")
    why = " (only v1beta1: Istio older than 1.22)" if older else ""
    return fail(CHECK, f"Istio is not installed on {facts.cluster.server}: missing CRDs "
                       f"{', '.join(missing)} at v1{why}",
                "install or upgrade Istio first (istioctl install, or the base Helm chart; 1.22 or newer)")


def control_plane(facts: Facts) -> list[Result]:
    try:
        _ = facts.istiods
        revision, istiod = facts.control_plane()
    except ClusterError as e:
        return [warn(CHECK, f"could not look for istiod: {e}", "check that istiod runs: kubectl get deploy -A "
                                                               "-l app=istiod")]
    if istiod is None:
        return [_no_istiod(revision, sorted({revision_of(d) for d in facts.istiods}))]
    return [_istiod(revision, istiod)]


def _no_istiod(revision: str, revisions: list[str]) -> Result:
    """No istiod for the revision that injects the registry; `revisions`: the ones there are."""
    found = f" (found revisions: {', '.join(revisions)})" if revisions else ""
    fix = ("install Istio (istioctl install" + (f" --revision {revision})" if revision != DEFAULT_REVISION
                                                else ")")
           + (f", or set spec.istioRevision to one of: {', '.join(revisions)}" if revisions else ""))
    return fail(CHECK, f"no istiod for revision {revision}{found}", fix)


def _istiod(revision: str, istiod: Object) -> Result:
    """The istiod that injects the registry: available, and recent enough for the v1 APIs meshreg renders?"""
    where = f"{istiod['metadata']['namespace']}/{istiod['metadata']['name']}"
    version = istiod_version(istiod)
    ready = (istiod.get("status") or {}).get("availableReplicas", 0)
    line = f"istiod {version or '(version unknown)'} revision {revision} ({where}, {ready} ready)"
    if not ready:
        return fail(CHECK, line, f"istiod is not available: kubectl -n {istiod['metadata']['namespace']} "
                                 f"describe deployment {istiod['metadata']['name']}")
    if version and version_tuple(version) < V1_SINCE:
        return warn(CHECK, line, "meshreg renders Istio's v1 APIs and is tested with Istio 1.22 or newer; "
                                 "upgrade istiod")
    return ok(CHECK, line)


def injection(facts: Facts) -> list[Result]:
    """Does an injector webhook select the registry's namespace and each pod template meshreg renders?"""
    try:
        _ = facts.webhooks
    except ClusterError as e:
        return [warn(CHECK, f"could not check sidecar injection: {e}",
                     "ask a cluster admin to confirm the registry namespace is injected")]
    ns_labels = facts.namespace_labels()
    picked = ", ".join(f"{k}={v}" for k, v in sorted(ns_labels.items()) if k.startswith("istio")) or "none"
    out: list[Result] = []
    unselected = []
    for workload, labels in facts.pod_templates().items():
        if labels.get("sidecar.istio.io/inject") == "false":  # kept out of the mesh on purpose (ambient, set-up)
            continue
        found = facts.injectors(ns_labels, labels)
        if found:
            out.append(_injected(workload, found))
        else:
            unselected.append(workload)
    if unselected:
        out.append(fail(CHECK, f"no Istio sidecar injector matches namespace {facts.cfg.namespace} for "
                               f"{', '.join(unselected)} (namespace labels {picked})",
                        "install Istio with that revision (istioctl install [--revision REV]) or set "
                        "spec.istioRevision to a revision or tag that exists"))
    return out


def _injected(workload: str, injectors: list[Injector]) -> Result:
    """A workload the injectors select: by one revision, as it should be, or by several."""
    revisions = sorted({i.revision for i in injectors})
    names = ", ".join(sorted({i.config for i in injectors}))
    if len(revisions) > 1:
        return warn(CHECK, f"{workload} is selected by injectors of several revisions ({', '.join(revisions)}: "
                           f"{names})",
                    "keep one revision per namespace: remove istio-injection or istio.io/rev, or the stale injector")
    return ok(CHECK, f"{workload} is injected by {names} (revision {revisions[0]})")

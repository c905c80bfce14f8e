"""Check 4: every writer (and publisher) has a namespace that exists and is injected, and its ServiceAccount exists;
without a sidecar a writer has no mesh identity and cannot push. Ones that do not exist yet are WARN, not FAIL."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.enforcement import has_sidecar
from meshreg.config import Config
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, could_not, fail, ok, warn
from meshreg.errors import ClusterError
from meshreg.render.labels import namespace_injection

CHECK = "writers"


def identities(cfg: Config) -> dict[str, list[str]]:
    """NS/SA -> the registries it may write, over every registry."""
    out: dict[str, list[str]] = {}
    for reg in cfg.registries:
        for writer in cfg.writers_of(reg):
            out.setdefault(writer.service_account, []).append(reg.name)
    return out


def check(facts: Facts) -> list[Result]:
    found = identities(facts.cfg)
    if not found:
        return [ok(CHECK, "no writers configured (nobody can push; meshreg policy grant NS/SA adds one)")]
    out = [*_reads(facts.cfg)]
    for identity, registries in sorted(found.items()):
        try:
            out.append(writer(facts, identity, registries))
        except ClusterError as e:  # e.g. no read access to the writer's namespace
            out.append(could_not(CHECK, f"{identity}: {e}"))
    return out


def _reads(cfg: Config) -> list[Result]:
    """A registry whose readers are restricted and whose writers are scoped may look as if reads were scoped too."""
    out = []
    for reg in cfg.registries:
        scoped = [w.service_account for w in cfg.writers_of(reg) if w.scoped]
        if scoped and "*" not in reg.readers:
            out.append(warn(CHECK, f"registry {reg.name}: readers are restricted and writers limited to prefixes, but "
                                   "reads are per registry: every reader and writer reads every repository of it "
                                   "(a cross-repository mount needs only a digest; AuthorizationPolicies cannot see "
                                   "it)", "keep images that some of them must not read in a separate registry "
                                          "(spec.registries, docs/security.md)"))
    return out


def writer(facts: Facts, identity: str, registries: list[str]) -> Result:
    ns, sa = identity.split("/")
    label = identity + (f" (writes {', '.join(registries)})" if len(facts.cfg.registries) > 1 else "")
    namespace = facts.namespace(ns)
    if namespace is None:
        return warn(CHECK, f"{label}: namespace {ns} does not exist yet",
                    f"create it injected: kubectl create namespace {ns} && kubectl label namespace {ns} "
                    f"{_injection_label(facts.cfg)}")
    if facts.cluster.get("v1", "ServiceAccount", sa, namespace=ns) is None:
        return warn(CHECK, f"{label}: ServiceAccount {sa} does not exist yet in namespace {ns}",
                    f"create it: kubectl -n {ns} create serviceaccount {sa}")
    pods = _pods(facts.cluster, ns, sa)
    if pods:
        return _running(facts.cfg, label, ns, pods)
    labels = (namespace["metadata"].get("labels") or {})
    try:
        injectors = facts.injectors(labels, None)
    except ClusterError:
        return ok(CHECK, f"{label}: namespace and ServiceAccount exist (injection not checked: cannot read "
                         "the injector webhooks)")
    if injectors:
        return ok(CHECK, f"{label}: namespace {ns} is injected (revision {injectors[0].revision}), "
                         "ServiceAccount exists")
    return fail(CHECK, f"{label}: namespace {ns} is not injected, so its pods get no sidecar unless they opt in",
                f"kubectl label namespace {ns} {_injection_label(facts.cfg)} (or label the writer's pods "
                "sidecar.istio.io/inject=true)")


def _running(cfg: Config, label: str, ns: str, pods: list[Object]) -> Result:
    """Pods already running as the writer tell more than the namespace labels: do they carry the sidecar?"""
    with_sidecar = [p for p in pods if has_sidecar(p)]
    if with_sidecar:
        return ok(CHECK, f"{label}: {len(with_sidecar)} of {len(pods)} running pods have the sidecar")
    return fail(CHECK, f"{label}: none of its {len(pods)} running pods has an istio-proxy sidecar, so they have no "
                       "mesh identity and cannot push",
                f"label namespace {ns} for injection ({_injection_label(cfg)}) and restart the pods")


def _injection_label(cfg: Config) -> str:
    return " ".join(f"{k}={v}" for k, v in namespace_injection(cfg).items())


def _pods(cluster: ClusterClient, ns: str, sa: str) -> list[Object]:
    try:
        pods = cluster.list("v1", "Pod", namespace=ns, field_selector=f"spec.serviceAccountName={sa}")
    except ClusterError:
        return []
    return [p for p in pods if (p.get("status") or {}).get("phase") in ("Running", "Pending")]


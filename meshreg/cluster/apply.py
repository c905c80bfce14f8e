"""Apply, prune and remove meshreg's objects: ordering, ownership checks, server-side apply and dry-run outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshreg.cluster.client import KINDS
from meshreg.errors import ClusterError

MANAGED_BY = "app.kubernetes.io/managed-by"
INSTANCE = "app.kubernetes.io/instance"

# Dependency order: what others refer to first. Deleting goes the other way.
ORDER = ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "PersistentVolumeClaim", "Service",
         "Deployment", "DaemonSet", "PeerAuthentication", "AuthorizationPolicy", "Gateway", "VirtualService",
         "ServiceEntry", "DestinationRule", "PodDisruptionBudget", "CronJob"]
# Every kind meshreg may have rendered, so a kind the config no longer renders is still pruned.
# The PVC and the Namespace are absent on purpose: pruning must never delete registry data.
PRUNABLE = [("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment"),
            ("apps/v1", "DaemonSet"), ("security.istio.io/v1", "PeerAuthentication"),
            ("security.istio.io/v1", "AuthorizationPolicy"), ("networking.istio.io/v1", "Gateway"),
            ("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "ServiceEntry"),
            ("networking.istio.io/v1", "DestinationRule"), ("gateway.networking.k8s.io/v1", "Gateway"),
            ("policy/v1", "PodDisruptionBudget"), ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("batch/v1", "CronJob")]
# CRDs a cluster may lack (the Gateway API, for ambient mode's waypoint): pruned only where the server serves them.
OPTIONAL = ("gateway.networking.k8s.io/v1",)
# The ingress (spec.ingress): its CA Secret first, its RequestAuthentication before policies. Its kinds are pruned
# only in the gateway's namespace (cluster/ingress.py), so nobody without an ingress needs to list Secrets.
ORDER.insert(ORDER.index("ConfigMap") + 1, "Secret")
ORDER.insert(ORDER.index("AuthorizationPolicy"), "RequestAuthentication")
KEEP = ("PersistentVolumeClaim", "Namespace")  # what `down` keeps unless --purge
FOREGROUND = ("Deployment", "DaemonSet")  # the workload stays visible until its pods are gone
VOLATILE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


@dataclass(frozen=True)
class Outcome:
    """What happened (or would happen) to one object: created, changed, unchanged, pruned, deleted, absent, kept."""

    kind: str
    namespace: str | None
    name: str
    action: str
    api_version: str = ""
    obj: dict = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple:
        return (self.api_version, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def key_of(obj: dict) -> tuple:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


def ordered(manifests) -> list[dict]:
    """Manifests in dependency order (stable); objects outside the rendered namespaces (the published
    kube-public ConfigMap) come last, so addresses are published once what they point to exists."""
    own = {o["metadata"]["name"] for o in manifests if o["kind"] == "Namespace"}

    def rank(o):
        ns = o["metadata"].get("namespace")
        return (bool(own) and ns is not None and ns not in own,
                ORDER.index(o["kind"]) if o["kind"] in ORDER else len(ORDER))
    return sorted(manifests, key=rank)


def owned(live: dict, instance: str | None) -> bool:
    """True when the live object carries meshreg's managed-by label and this instance's label."""
    labels = live.get("metadata", {}).get("labels") or {}
    return labels.get(MANAGED_BY) == "meshreg" and labels.get(INSTANCE) == instance


def _outcome(obj: dict, action: str) -> Outcome:
    api_version, kind, namespace, name = key_of(obj)
    return Outcome(kind=kind, namespace=namespace, name=name, action=action, api_version=api_version, obj=obj)


def foreign(objs, lives: dict) -> list[str]:
    """Objects that exist with meshreg's names but are not this instance's, described for a message."""
    out = []
    for obj in objs:
        live = lives.get(key_of(obj))
        if live is not None and not owned(live, obj["metadata"].get("labels", {}).get(INSTANCE)):
            manager = (live["metadata"].get("labels") or {}).get(MANAGED_BY)
            out.append(f"{_outcome(obj, '')}" + (f" (managed-by={manager})" if manager else ""))
    return out


def read_live(objs, cluster) -> dict:
    """The live version of each object (None where absent), keyed by key_of."""
    return {key_of(o): cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"],
                                   namespace=o["metadata"].get("namespace")) for o in objs}


def apply(*, manifests, cluster, dry_run=False, force_conflicts=False, adopt=False, on_outcome=None) -> list[Outcome]:
    """Server-side apply every manifest in order; refuses (before any write) to take over objects it does not own."""
    objs = ordered(manifests)
    lives = read_live(objs, cluster)
    strangers = foreign(objs, lives)
    if strangers and not adopt:
        raise ClusterError(f"not managed by meshreg, left alone: {', '.join(strangers)}; "
                           "nothing was applied (rerun with --adopt to take them over)")
    outcomes: list[Outcome] = []
    for obj in objs:
        live = lives[key_of(obj)]
        try:
            outcome = _apply_one(obj, live=live, cluster=cluster, dry_run=dry_run, force=force_conflicts,
                                 new_namespaces=_created_namespaces(outcomes))
        except ClusterError as e:
            raise _noted(e, _progress_note(outcomes, obj, dry_run)) from e
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes


def _noted(error: ClusterError, note: str) -> ClusterError:
    """The same error (type and attributes kept) with a note appended to its one line."""
    noted = type(error)(f"{error}; {note}")
    noted.__dict__.update(error.__dict__)
    return noted


def _created_namespaces(outcomes) -> set:
    return {o.name for o in outcomes if o.kind == "Namespace" and o.action == "created"}


def _apply_one(obj, *, live, cluster, dry_run, force, new_namespaces) -> Outcome:
    if dry_run and obj["metadata"].get("namespace") in new_namespaces:
        # The server cannot dry-run into a namespace that does not exist yet; it would be created.
        return _outcome(obj, "created")
    result = cluster.apply(obj, dry_run=dry_run, force=force)
    if live is None:
        return _outcome(obj, "created")
    # A no-op apply keeps the resourceVersion; comparing content as well keeps a controller's status write
    # (between our read and our apply) from reading as a change, and is the only test a dry run allows.
    same_version = not dry_run and result["metadata"].get("resourceVersion") == live["metadata"].get("resourceVersion")
    same = same_version or comparable(result) == comparable(live)
    return _outcome(obj, "unchanged" if same else "changed")


def comparable(obj: dict) -> dict:
    """The object without what the server changes on every write (and without status)."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in VOLATILE}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _progress_note(outcomes, failed, dry_run) -> str:
    verb = "checked" if dry_run else "applied"
    done = ", ".join(f"{o} ({o.action})" for o in outcomes) or "none"
    return f"failed at {_outcome(failed, '')}; {verb} before the failure: {done}"


def prune(*, manifests, cluster, selector: str, namespaces, dry_run=False, on_outcome=None,
          kinds=None) -> list[Outcome]:
    """Delete objects labelled for this instance that the render no longer has (never the PVC or the Namespace)."""
    keep = {key_of(o) for o in manifests}
    outcomes = []
    for api_version, kind in reversed(kinds or PRUNABLE):
        if api_version in OPTIONAL and KINDS[(api_version, kind)][0] not in cluster.served(api_version):
            continue
        for namespace in namespaces:
            for live in cluster.list(api_version, kind, namespace=namespace, label_selector=selector):
                live = {**live, "apiVersion": api_version, "kind": kind}
                # Kept: what the render has, and what a controller made from it (Istio copies the waypoint
                # Gateway's labels onto the Deployment, Service and ServiceAccount it owns).
                if key_of(live) in keep or live["metadata"].get("ownerReferences"):
                    continue
                _delete(cluster, live, dry_run=dry_run)
                outcomes.append(_outcome(live, "would prune" if dry_run else "pruned"))
                if on_outcome:
                    on_outcome(outcomes[-1])
    return outcomes


def remove(*, manifests, cluster, purge=False, on_outcome=None) -> list[Outcome]:
    """Delete meshreg's objects in reverse order; keeps the PVC and its Namespace unless purge. 404 is fine."""
    outcomes = []
    objs = list(reversed(ordered(manifests)))
    lives = read_live(objs, cluster)
    for obj in objs:
        live = lives[key_of(obj)]
        if obj["kind"] in KEEP and not purge:
            action = "kept" if live is not None else "absent"
        elif live is None:
            action = "absent"
        elif not owned(live, obj["metadata"].get("labels", {}).get(INSTANCE)):
            action = "left alone (not managed by meshreg)"
        else:
            action = "deleted" if _delete(cluster, obj) else "absent"
        outcomes.append(_outcome(obj, action))
        if on_outcome:
            on_outcome(outcomes[-1])
    return outcomes


def _delete(cluster, obj, *, dry_run=False) -> bool:
    api_version, kind, namespace, name = key_of(obj)
    policy = "Foreground" if kind in FOREGROUND else "Background"
    return cluster.delete(api_version, kind, name, namespace=namespace, propagation=policy, dry_run=dry_run)

"""Whose an object in the cluster is: this instance's, another meshreg instance's, or nobody meshreg knows.

An instance is its ApplySet (KEP-3659, see meshreg/render/labels.py): its objects carry
`applyset.kubernetes.io/part-of: <id>`, and the id hashes the parent ConfigMap's name and namespace, so two instances
named alike in different namespaces never take each other's objects for their own.

Objects applied before instances had ApplySets carry only the instance label (`app.kubernetes.io/instance`), which
two instances of one name share. Such an object is this instance's only when it is attributed to this instance's
namespace: it lies in that namespace; or in a push-proxy namespace whose route leads to a registry in it; or in the
ingress gateway's namespace its Namespace recorded; or, in kube-public, it publishes an address in it. `up` then adopts
it (the apply adds the set's label), and prune and `down` may delete it; one that is another instance's is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.live import Live
from meshreg.errors import ClusterError
from meshreg.render.hosting import NAMESPACE as PUBLISHED
from meshreg.render.ingress import NAMESPACE_ANNOTATION
from meshreg.render.labels import APPLYSET_ID, APPLYSET_PART_OF, INSTANCE, MANAGED_BY, is_parent

__all__ = ["Identity", "Owner", "Ownership", "owner_of"]

PUSH_PROXY_ROUTE = "push-proxy"  # the VirtualService of a push proxy, which routes to its registry's Service
_SERVICE = re.compile(r"\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\b")  # the namespace in a Service's DNS name


def _labels(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


@dataclass(frozen=True)
class Identity:
    """Who "this instance" is: its name (the instance label), its namespace and its ApplySet id, as rendered.
    Objects rendered without a parent (a bare list, in tests) have no namespace and no id: the instance label decides
    alone, as before ApplySets."""

    name: str | None
    namespace: str | None = None
    set_id: str | None = None

    @classmethod
    def of(cls, manifests: Iterable[Object]) -> Identity:
        objs = list(manifests)
        parent = next((o for o in objs if is_parent(o)), None)
        first = _labels(objs[0]) if objs else {}
        if parent is None:
            return cls(name=first.get(INSTANCE), set_id=first.get(APPLYSET_PART_OF))
        return cls(name=_labels(parent).get(INSTANCE), namespace=parent["metadata"].get("namespace"),
                   set_id=_labels(parent)[APPLYSET_ID])


@dataclass(frozen=True)
class Owner:
    """What an object's labels say of its owner: a meshreg instance's name and set id (None for an object labelled
    before ApplySets), or nothing when meshreg does not manage it."""

    managed: bool
    instance: str | None = None
    set_id: str | None = None


def owner_of(obj: Object) -> Owner:
    labels = _labels(obj)
    if labels.get(MANAGED_BY) != "meshreg":
        return Owner(managed=False)
    return Owner(managed=True, instance=labels.get(INSTANCE),
                 set_id=labels.get(APPLYSET_PART_OF) or labels.get(APPLYSET_ID))


class Ownership:
    """Decides, for one instance and what the cluster holds, which objects are its own."""

    def __init__(self, identity: Identity, live: Live) -> None:
        self.identity = identity
        self._namespaces = _attributed(identity, live.objects.values())

    def mine(self, obj: Object) -> bool:
        """This instance's: labelled with its set id, or labelled before ApplySets and attributed to it."""
        owner = owner_of(obj)
        if not owner.managed:
            return False
        if owner.set_id is not None:
            return owner.set_id == self.identity.set_id
        return owner.instance == self.identity.name and self._attributed(obj)

    def _attributed(self, obj: Object) -> bool:
        if self.identity.namespace is None:  # no parent rendered: the instance label alone decides
            return True
        meta = obj["metadata"]
        namespace = meta["name"] if obj.get("kind") == "Namespace" else meta.get("namespace")
        if namespace == PUBLISHED:
            return self.identity.namespace in published_namespaces(obj)
        return namespace in self._namespaces

    def whose(self, obj: Object) -> str:
        """The other owner of `obj`, as messages name it (before the namespace is looked up, see describe)."""
        owner = owner_of(obj)
        if owner.set_id is None and owner.instance == self.identity.name:
            where = sorted(published_namespaces(obj))
            return f"{owner.instance} (in namespace {where[0]})" if where else f"{owner.instance} (another namespace)"
        return owner.instance or "?"


def published_namespaces(obj: Object) -> set[str]:
    """The namespaces of the Services a published ConfigMap (in kube-public) names in its addresses."""
    return {m.group(1) for value in (obj.get("data") or {}).values() for m in _SERVICE.finditer(str(value))}


def _attributed(identity: Identity, objects: Iterable[Object]) -> set[str]:
    """The namespaces whose pre-ApplySet objects of identity's name are identity's (see the module's docstring)."""
    if identity.namespace is None:
        return set()
    return {identity.namespace} | {ns for obj in objects for ns in _claimed(identity.namespace, obj)}


def _claimed(namespace: str, obj: Object) -> set[str]:
    """The namespace `obj` attributes to the instance in `namespace`: the gateway namespace its Namespace recorded,
    or the push-proxy namespace whose route leads there."""
    meta = obj.get("metadata") or {}
    if obj.get("kind") == "Namespace" and meta.get("name") == namespace:
        recorded = (meta.get("annotations") or {}).get(NAMESPACE_ANNOTATION)
        return {recorded} if recorded else set()
    if obj.get("kind") == "VirtualService" and meta.get("name") == PUSH_PROXY_ROUTE \
            and namespace in _routed_namespaces(obj):
        return {meta["namespace"]}
    return set()


def _routed_namespaces(route: Object) -> set[str]:
    hosts = [d.get("destination", {}).get("host", "") for http in (route.get("spec") or {}).get("http") or []
             for d in http.get("route") or []]
    return {m.group(1) for host in hosts for m in _SERVICE.finditer(host)}


def describe(cluster: ClusterClient, owner: str, set_id: str | None) -> str:
    """`dev (namespace ns2)`: an owning instance with the namespace of its set's parent, found by the id label (one
    cluster-wide read, on the refusal's path only); the name alone when that read is not allowed or finds nothing."""
    if set_id is None:
        return owner
    try:
        parents = cluster.list("v1", "ConfigMap", label_selector=f"{APPLYSET_ID}={set_id}")
    except ClusterError:
        return owner
    spaces = sorted({p["metadata"].get("namespace", "") for p in parents})
    return f"{owner} (namespace {', '.join(spaces)})" if spaces else owner

"""What the cluster holds now for a render: one LIST per kind and namespace, sent at once, answering both "whose is
this object?" (the ownership check) and "what did this instance apply that it no longer renders?" (prune)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from meshreg.cluster import client as clusters
from meshreg.cluster import parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.errors import NotFound
from meshreg.errors import ClusterError
from meshreg.render.labels import INSTANCE, MANAGED_BY

Key = tuple[str, str, "str | None", str]  # (apiVersion, kind, namespace, name): key_of
Collection = tuple[str, str, "str | None"]  # (apiVersion, kind, namespace): what one LIST reads
Scope = dict[str, list[tuple[str, str]]]  # namespace -> [(apiVersion, kind)]: where prune looks, and for what
T = TypeVar("T")


def key_of(obj: Object) -> Key:
    """(apiVersion, kind, namespace, name); cluster-scoped kinds have no namespace, whatever the object says."""
    meta = obj["metadata"]
    namespaced = clusters.KINDS.get((obj["apiVersion"], obj["kind"]), ("", True))[1]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") if namespaced else None, meta["name"])


def instance_of(obj: Object) -> str | None:
    """The meshreg instance an object belongs to: its instance label when meshreg manages it, else None."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(INSTANCE) if labels.get(MANAGED_BY) == "meshreg" else None


@dataclass
class Live:
    """Live objects keyed by key_of: every object of the kinds and namespaces read, plus the rendered
    cluster-scoped objects (read by name; listing every Namespace of a cluster is not needed)."""

    objects: dict[Key, Object] = field(default_factory=dict)
    listed: set[Collection] = field(default_factory=set)  # the collections read whole

    def of(self, obj: Object) -> Object | None:
        """The live version of a rendered object, or None when it does not exist."""
        return self.objects.get(key_of(obj))

    def strays(self, *, manifests: list[Object], mine: Callable[[Object], bool], scope: Scope) -> list[Object]:
        """Objects of this instance (`mine`), of a kind and namespace in `scope` ({namespace: [(apiVersion,
        kind)]}), that the render no longer has: what prune deletes."""
        if not manifests:  # nothing rendered: no instance, nothing can be its own
            return []
        keep = {key_of(o) for o in manifests}
        wanted = {(av, kind, ns) for ns, kinds in scope.items() for av, kind in kinds}
        # Not what a controller made from a rendered object: istiod copies the waypoint Gateway's labels onto the
        # Deployment, Service and ServiceAccount it owns, and the garbage collector removes those with it.
        return [obj for key, obj in self.objects.items()
                if key[:3] in wanted and key not in keep and mine(obj) and not obj["metadata"].get("ownerReferences")]


def read(*, manifests: list[Object], cluster: ClusterClient, scope: Scope | None = None) -> Live:
    """The live state of every rendered object and of everything `scope` names, with one request per kind and
    namespace (a GET by name for cluster-scoped objects), all sent at once. A kind the server does not serve
    reads as empty: the dry run then names the object and what is missing."""
    collections: dict[Collection | Key, None] = {}
    for obj in manifests:
        key = key_of(obj)
        collections[key[:3] if key[2] else key] = None
    for namespace, kinds in (scope or {}).items():
        for api_version, kind in kinds:
            collections[(api_version, kind, namespace)] = None
    live = Live(listed={c for c in collections if len(c) == 3})
    for objs in parallel.values(lambda c: _read_one(cluster, c), list(collections)):
        live.objects.update((key_of(o), o) for o in objs)
    return live


class Snapshot:
    """A cluster whose reads are each sent once per command, however many parts ask and from however many threads
    at once: a GET, or a LIST without selectors, in a collection `live` read whole is answered from it; a GET in a
    collection this snapshot has been asked to LIST is answered from that LIST (waiting for it when it is under way);
    any other read, discovery and the server's version are sent once and remembered, failures too. Everything else
    (writes, logs) goes to the cluster. `up` shares one between its checks and its read of what exists; doctor's
    checks share one; reports look at the same objects from several sides through one."""

    def __init__(self, cluster: ClusterClient, live: Live | None = None) -> None:
        self._cluster, self._live = cluster, live or Live()
        self._seen: dict[tuple[str | None, ...], tuple[bool, Any]] = {}
        self._locks: dict[tuple[str | None, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)

    @property
    def cluster(self) -> ClusterClient:
        """The cluster behind the snapshot (for writes and reads that must be fresh)."""
        return self._cluster

    def version(self) -> Object:
        return self._once(("version",), self._cluster.version)

    def served(self, api_version: str) -> set[str]:
        return self._once(("served", api_version), lambda: self._cluster.served(api_version))

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Object | None:
        if (api_version, kind, namespace) in self._live.listed:
            return copy.deepcopy(self._live.objects.get((api_version, kind, namespace, name)))
        listing = ("list", api_version, kind, namespace, None, None)
        with self._lock:
            listed = listing in self._locks
        if listed:  # asked for whole already: its LIST answers (after it arrives)
            try:
                found = self.list(api_version, kind, namespace=namespace)
                return next((o for o in found if o["metadata"]["name"] == name), None)
            except ClusterError:  # listing is refused (or the kind is not served): a GET may still be answered
                pass
        return self._once(("get", api_version, kind, name, namespace),
                          lambda: self._cluster.get(api_version, kind, name, namespace=namespace))

    def list(self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[Object]:
        collection = (api_version, kind, namespace)
        if collection in self._live.listed and not label_selector and not field_selector:
            return [copy.deepcopy(o) for k, o in self._live.objects.items() if k[:3] == collection]
        return self._once(("list", *collection, label_selector, field_selector), lambda: self._cluster.list(
            api_version, kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector))

    def _once(self, key: tuple[str | None, ...], read: Callable[[], T]) -> T:
        """`read()` the first time `key` is asked for; later askers (any thread) get a copy of its answer, or its
        error (ClusterError) again."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._seen:
                try:
                    self._seen[key] = (True, read())
                except ClusterError as e:
                    self._seen[key] = (False, e)
        done, value = self._seen[key]
        if not done:
            raise value
        return cast(T, copy.deepcopy(value))


def _read_one(cluster: ClusterClient, collection: Collection | Key) -> list[Object]:
    if len(collection) == 4:  # a cluster-scoped object, by name
        api_version, kind, _, name = collection
        found = cluster.get(api_version, kind, name)
        return [{**found, "apiVersion": api_version, "kind": kind}] if found else []
    api_version, kind, namespace = collection
    try:
        return cluster.list(api_version, kind, namespace=namespace)
    except NotFound:
        return []

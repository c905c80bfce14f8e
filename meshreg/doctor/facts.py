"""What doctor's checks read from the cluster, read once and shared: the server version, namespaces, Istio's injector
webhooks and control planes, mesh config. A read that failed fails the same way for every check that asks again."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from meshreg.cluster import live as lives
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.selectors import matches
from meshreg.config import Config
from meshreg.errors import ClusterError

INJECTOR_NAMES = ("istio-sidecar-injector", "istio-revision-tag-")
DEFAULT_REVISION = "default"
REV = "istio.io/rev"
T = TypeVar("T")


def revision_of(obj: Object) -> str:
    """An Istio object's revision label; the default revision carries `default` or no label at all."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(REV) or DEFAULT_REVISION


@dataclass(frozen=True)
class Injector:
    """One webhook of an Istio injector configuration that would inject a pod."""

    config: str
    webhook: str
    revision: str
    namespace: str | None  # where its istiod Service is (None for a URL webhook)


@dataclass
class Facts:
    """The cluster as doctor sees it, for one config and its render. Check groups run at once: a fact asked for by
    several is read by the first, and the others wait for its answer."""

    cluster: ClusterClient  # every read through it is sent once (a lives.Snapshot), also when `up` shares it
    cfg: Config
    manifests: list[Object]
    # `up` checks: it reads what exists and dry-runs every object next, which proves get, list, create and patch
    dry_run_follows: bool = False
    _cache: dict[Hashable, tuple[bool, Any]] = field(default_factory=dict)
    _locks: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, lives.Snapshot):
            self.cluster = lives.Snapshot(self.cluster)

    def _once(self, key: Hashable, read: Callable[[], T]) -> T:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                try:
                    self._cache[key] = (True, read())
                except ClusterError as e:
                    self._cache[key] = (False, e)
        done, value = self._cache[key]
        if not done:
            raise value
        return value

    @property
    def version(self) -> Object:
        return self._once("version", self.cluster.version)

    def live(self) -> lives.Live:
        """What exists of the render (meshreg.cluster.live.Live): one LIST per kind and namespace."""
        return self._once("live", lambda: lives.read(manifests=self.manifests, cluster=self.cluster))

    def collection(self, api_version: str, kind: str, namespace: str) -> list[Object]:
        """Every object of a kind in a namespace: the LIST `up`'s read of what exists sends too (it is sent once)."""
        return self.cluster.list(api_version, kind, namespace=namespace)

    def storage_classes(self) -> list[Object]:
        return self._once("storage-classes", lambda: self.cluster.list("storage.k8s.io/v1", "StorageClass"))

    def volumes(self) -> list[Object]:
        return self._once("volumes", lambda: self.cluster.list("v1", "PersistentVolume"))

    def served(self, api_version: str) -> set[str]:
        return self._once(("served", api_version), lambda: self.cluster.served(api_version))

    def namespace(self, name: str) -> Object | None:
        return self._once(("ns", name), lambda: self.cluster.get("v1", "Namespace", name))

    @property
    def webhooks(self) -> list[Object]:
        """Istio's sidecar injector configurations (revisions and revision tags)."""
        def read() -> list[Object]:
            hooks = self.cluster.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
            return [h for h in hooks if h["metadata"]["name"].startswith(INJECTOR_NAMES)
                    or (h["metadata"].get("labels") or {}).get("app") == "sidecar-injector"]
        return self._once("webhooks", read)

    @property
    def istiods(self) -> list[Object]:
        """istiod Deployments (label app=istiod): cluster-wide, or istio-system when listing everywhere is denied."""
        def read() -> list[Object]:
            try:
                return self.cluster.list("apps/v1", "Deployment", label_selector="app=istiod")
            except ClusterError:
                return self.cluster.list("apps/v1", "Deployment", namespace="istio-system",
                                         label_selector="app=istiod")
        return self._once("istiods", read)

    def injectors(self, ns_labels: dict[str, str], pod_labels: dict[str, str] | None) -> list[Injector]:
        """The injector webhooks that select a pod with `pod_labels` (None: a pod with no labels of its own)."""
        out = []
        for config in self.webhooks:
            for hook in config.get("webhooks") or []:
                if matches(hook.get("namespaceSelector"), ns_labels) and \
                        matches(hook.get("objectSelector"), pod_labels or {}):
                    service = (hook.get("clientConfig") or {}).get("service") or {}
                    out.append(Injector(config["metadata"]["name"], hook.get("name", ""), revision_of(config),
                                        service.get("namespace")))
        return out

    def namespace_labels(self) -> dict[str, str]:
        """The registry namespace's labels once `up` applied it: the live ones with meshreg's on top."""
        own = next(o for o in self.manifests if o["kind"] == "Namespace")
        rendered: dict[str, str] = own["metadata"].get("labels") or {}
        live = self.namespace(self.cfg.namespace)
        return {**((live or {}).get("metadata", {}).get("labels") or {}), **rendered}

    def pod_templates(self) -> dict[str, dict[str, str]]:
        """`Kind name` -> pod labels, for every workload meshreg renders."""
        return {f"{o['kind']} {o['metadata']['name']}": o["spec"]["template"]["metadata"].get("labels") or {}
                for o in self.manifests if o["kind"] in ("Deployment", "DaemonSet")}

    def control_plane(self) -> tuple[str, Object | None]:
        """(revision, istiod Deployment or None: absent or not readable) that injects the registry's pods; from the
        injector that selects them, else from spec.istioRevision."""
        def read() -> tuple[str, Object | None]:
            revision = self.cfg.istio_revision or DEFAULT_REVISION
            try:
                injected = [labels for labels in self.pod_templates().values()
                            if labels.get("sidecar.istio.io/inject") != "false"]  # not ambient's registry pods
                found = self.injectors(self.namespace_labels(), injected[0]) if injected else []
                revision = found[0].revision if found else revision
            except ClusterError:
                pass
            try:
                istiod = next((d for d in self.istiods if revision_of(d) == revision), None)
            except ClusterError:  # not allowed to look: the checks that need istiod say so themselves
                istiod = None
            return revision, istiod
        return self._once("control-plane", read)

    def mesh_config(self) -> tuple[str, dict[str, Any] | None]:
        """(where, mesh config) from ConfigMap `istio` (default revision) or `istio-<rev>`, key `mesh`."""
        def read() -> tuple[str, dict[str, Any] | None]:
            revision, istiod = self.control_plane()
            ns = istiod["metadata"]["namespace"] if istiod else "istio-system"
            name = "istio" if revision == DEFAULT_REVISION else f"istio-{revision}"
            cm = self.cluster.get("v1", "ConfigMap", name, namespace=ns)
            where = f"ConfigMap {ns}/{name}"
            if cm is None:
                return where, None
            try:
                mesh = yaml.safe_load((cm.get("data") or {}).get("mesh") or "") or {}
            except yaml.YAMLError as e:
                raise ClusterError(f"{where} key mesh is not valid YAML: {e}") from e
            return where, mesh if isinstance(mesh, dict) else {}
        return self._once("mesh", read)

    def root_namespace(self) -> str:
        """Istio's root namespace (mesh config rootNamespace; istiod's namespace by default)."""
        try:
            _, mesh = self.mesh_config()
        except ClusterError:
            mesh = None
        _, istiod = self.control_plane()
        root: str = (mesh or {}).get("rootNamespace") or (istiod["metadata"]["namespace"] if istiod
                                                          else "istio-system")
        return root


def istiod_version(deployment: Object) -> str | None:
    """The Istio version of an istiod Deployment, from its version labels or its pilot image tag."""
    labels: dict[str, str] = deployment["metadata"].get("labels") or {}
    for key in ("app.kubernetes.io/version", "operator.istio.io/version"):
        if labels.get(key):
            return labels[key]
    for c in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
        tag = (c.get("image") or "").rpartition("/")[2].partition("@")[0].partition(":")[2]
        match = re.match(r"\d+\.\d+(\.\d+)?", tag)
        if match:
            return match.group(0)
    return None


def version_tuple(text: str | None) -> tuple[int, ...]:
    """'v1.36.2', '1.24-dev', '1.6.20+k3s1' -> (1, 36, 2); () when there is no number."""
    head = re.match(r"v?([\d.]*)", text or "")  # matches every text (perhaps empty)
    return tuple(int(n) for n in re.findall(r"\d+", head.group(1) if head else ""))

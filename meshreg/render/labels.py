"""The labels that mark meshreg's objects, the selectors built from them, and Istio's injection labels."""

from __future__ import annotations

from meshreg.config import Config, Registry
from meshreg.objects import Labels, Object

MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
INSTANCE = "app.kubernetes.io/instance"
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
# Gateway selectors match pods in every namespace, so the node proxy carries a label naming its own namespace.
NODE_PROXY = "meshreg.dev/node-proxy"

# Istio's own labels: the control plane (revision) that injects and programs a pod, and whether it gets a sidecar.
REVISION = "istio.io/rev"
INJECT = "sidecar.istio.io/inject"


def revision(cfg: Config) -> Labels:
    """`istio.io/rev` when the config names an Istio revision, else nothing (the default control plane)."""
    return {REVISION: cfg.istio_revision} if cfg.istio_revision else {}


def namespace_injection(cfg: Config) -> Labels:
    """Namespace labels that turn on sidecar injection, by the revision's control plane or the default one."""
    return revision(cfg) or {"istio-injection": "enabled"}


def sidecar(cfg: Config) -> Labels:
    """Pod labels that ask for a sidecar, from the revision's control plane if there is one."""
    return {INJECT: "true", **revision(cfg)}


def common(cfg: Config) -> Labels:
    """Labels every rendered object carries, so `up` can prune and `down` can find what is its own."""
    return {INSTANCE: cfg.name, MANAGED_BY: "meshreg", PART_OF: "meshreg"}


def selector(labels: Labels) -> str:
    """`a=b,c=d`: a label selector matching every label in `labels`, in a stable order."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def instance_selector(cfg: Config) -> str:
    """A label selector for every object of this instance."""
    return f"{MANAGED_BY}=meshreg,{INSTANCE}={cfg.name}"


REGISTRY = "meshreg.dev/registry"


def registry_pods(cfg: Config, registry: Registry | None = None) -> Labels:
    """Selector labels of a registry's pods (immutable once deployed: never change them)."""
    return {INSTANCE: cfg.name, NAME: "registry", REGISTRY: (registry or cfg.registry).name}


def node_proxy_pods(cfg: Config) -> Labels:
    return {INSTANCE: cfg.name, NAME: "node-proxy", NODE_PROXY: cfg.namespace}


def metadata(cfg: Config, name: str, *, namespace: str | None = "", extra: Labels | None = None,
             annotations: Labels | None = None) -> Object:
    """Object metadata: namespaced in cfg.namespace unless `namespace` is None (cluster-scoped) or given."""
    meta: Object = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace or cfg.namespace
    meta["labels"] = {**common(cfg), **(extra or {})}
    if annotations:
        meta["annotations"] = annotations
    return meta

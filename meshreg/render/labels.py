"""The labels that mark meshreg's objects, the selectors built from them, and Istio's injection labels.

An instance's identity is its ApplySet (KEP-3659): a parent ConfigMap `meshreg-<name>` in the instance's namespace
labelled `applyset.kubernetes.io/id`, whose value hashes the parent's name and namespace, and every object the
instance applies labelled `applyset.kubernetes.io/part-of` with that id. Two instances of the same name in different
namespaces therefore have different ids, and prune and `down` only ever touch objects labelled with their own.
"""

from __future__ import annotations

import base64

from meshreg.config import Config, Registry
from meshreg.objects import Labels, Object
from meshreg.render import sha256

MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
INSTANCE = "app.kubernetes.io/instance"
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
# Gateway selectors match pods in every namespace, so the node proxy carries a label naming its own namespace.
NODE_PROXY = "meshreg.dev/node-proxy"

# KEP-3659 ApplySets: the parent's id label, the members' label, and the parent's annotations (kubectl's names).
APPLYSET_ID = "applyset.kubernetes.io/id"
APPLYSET_PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_TOOLING = "applyset.kubernetes.io/tooling"
APPLYSET_KINDS = "applyset.kubernetes.io/contains-group-kinds"
APPLYSET_NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "meshreg/v1"  # <tool>/<version of the set's format>: kubectl refuses to change sets of other tools
# meshreg's own: a digest of the members the last finished `up` left (cluster/settled.py reads it)
APPLYSET_MEMBERS = "meshreg.dev/applyset-members"

# Istio's own labels: the control plane (revision) that injects and programs a pod, and whether it gets a sidecar.
REVISION = "istio.io/rev"
INJECT = "sidecar.istio.io/inject"


def is_ambient(cfg: Config) -> bool:
    """Istio's ambient mode (ztunnel and a waypoint) rather than sidecars: render.ambient has what differs."""
    return cfg.mesh == "ambient"


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


def parent_name(cfg: Config) -> str:
    """The instance's ApplySet parent: a ConfigMap in its namespace."""
    return f"meshreg-{cfg.name}"


def set_id(name: str, namespace: str) -> str:
    """KEP-3659's id of the set whose parent is ConfigMap `namespace/name`: base64url(sha256(name.namespace.Kind.
    group)) without padding, between `applyset-` and `-v1` (what kubectl computes for --applyset)."""
    digest = sha256.digest(f"{name}.{namespace}.ConfigMap.".encode())
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def is_parent(obj: Object) -> bool:
    """An ApplySet parent: the object that carries the set's id (members carry it as part-of)."""
    return APPLYSET_ID in (obj.get("metadata", {}).get("labels") or {})


def applyset(cfg: Config) -> str:
    """This instance's set id: unique per (metadata.name, spec.namespace)."""
    return set_id(parent_name(cfg), cfg.namespace)


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
    meta["labels"] = {**common(cfg), APPLYSET_PART_OF: applyset(cfg), **(extra or {})}
    if annotations:
        meta["annotations"] = annotations
    return meta

"""What `meshreg status` reports, as typed data: each object's state, each registry, the node proxy, the runtime
config, the push proxies and the waypoint, and whether all of it is healthy (as meshreg.status.judge decides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GcJob", "GcState", "Mtls", "NodeProxyState", "NodeRuntime", "ObjectState", "PushProxyState",
           "RegistryEntry", "RuntimeConfigState", "StatusReport", "VolumeUsage", "WaypointState"]

PRESENT, MISSING, DRIFTED = "present", "missing", "drifted"


@dataclass(frozen=True)
class ObjectState:
    """A rendered object in the cluster: present (as rendered), missing, or drifted (`fields`: the first few paths
    where the live object differs)."""

    kind: str
    namespace: str | None
    name: str
    state: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mtls:
    """The registry's PeerAuthentication mode, the namespace- and mesh-wide ones (None: none; "unknown": not
    readable), and the one that takes effect."""

    effective: str
    workload: str | None
    namespace: str | None
    mesh: str | None


@dataclass(frozen=True)
class GcJob:
    """The newest Job of a gc CronJob (scheduled or manual)."""

    name: str
    state: str
    started: str | None
    completed: str | None


@dataclass(frozen=True)
class GcState:
    """A registry's gc CronJob: whether it is deployed, its schedule and its last runs."""

    deployed: bool
    schedule: str | None = None
    last_schedule: str | None = None
    last_success: str | None = None
    last_job: GcJob | None = None
    read_only: str | None = None  # why the registry is read-only (a gc Job runs, or one left it so); None: writable
    left_read_only: bool = False  # read-only with no gc Job running to undo it (writes are refused until meshreg gc)


@dataclass(frozen=True)
class VolumeUsage:
    """A registry volume's usage as the kubelet reports it, or why there is no figure (`reason`)."""

    used_bytes: int | None
    capacity_bytes: int | None
    reason: str | None = None  # set when the figures are unknown


@dataclass(frozen=True)
class RegistryEntry:
    """One registry: its rollout, its pods in the mesh, mTLS, writers, the in-cluster path, its published addresses,
    why it is not ready, its storage and gc."""

    name: str
    role: str
    default: bool
    ready: bool
    replicas: str  # "ready/desired", or "missing"
    pods: int
    with_sidecar: int
    in_ambient: int | None  # pods ztunnel captures; None in sidecar mode
    mtls: Mtls
    writers: tuple[str, ...]
    endpoints: int  # ready endpoints behind its Service; -1: EndpointSlices cannot be listed
    addresses: dict[str, Any] | None  # as published (KEP-1755 fields), {"error": ...} when unreadable, None: missing
    problems: tuple[str, ...]
    storage: str  # "s3" or "volume"
    gc: GcState | None  # None: the registry has no gc
    volume: VolumeUsage | None  # None: storage is s3


@dataclass(frozen=True)
class NodeProxyPod:
    """The node proxy on one node, so an interval without it is explained: ready or not since when (the pod's Ready
    condition), when the pod was created (a replaced pod is a new one), its restarts, and why it is not ready."""

    node: str
    pod: str
    ready: bool
    since: str | None  # when the Ready condition last changed, or the pod was deleted (RFC 3339); None: unknown
    created: str | None
    restarts: int
    why: str | None  # not ready: terminating, a container's waiting reason, or the kubelet's condition reason


@dataclass(frozen=True)
class NodeProxyState:
    enabled: bool
    ready: bool
    nodes: str  # "ready/desired nodes", "missing", or "disabled"
    pods: tuple[NodeProxyPod, ...] = ()  # one per pod, by node then creation


@dataclass(frozen=True)
class NodeRuntime:
    """A node's container runtime and meshreg's judgement of it (meshreg.runtimes)."""

    node: str
    container_runtime_version: str
    needed: bool | None
    setting: str | None
    set_up: bool  # the runtime config writes the directory this runtime needs
    k3s: bool
    reason: str


@dataclass(frozen=True)
class RuntimeConfigState:
    """Whether the runtime config is enabled and rolled out (`ready`, `nodes`: None when disabled), and each node's
    runtime (`unread`: why the nodes could not be listed)."""

    enabled: bool
    directories: dict[str, str]
    ready: bool | None
    nodes: str | None
    runtimes: tuple[NodeRuntime, ...]
    unread: str | None = None


@dataclass(frozen=True)
class PushProxyState:
    registry: str
    namespace: str
    ready: bool
    replicas: str
    repositories: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class WaypointState:
    """Ambient mode's waypoint: programmed by istiod (`message`: why not), and rolled out."""

    name: str
    programmed: bool
    message: str
    ready: bool
    replicas: str


@dataclass(frozen=True)
class StatusReport:
    """Everything `status` shows, read once per object."""

    server: str
    objects: tuple[ObjectState, ...]
    registries: tuple[RegistryEntry, ...]
    node_proxy: NodeProxyState
    runtime_config: RuntimeConfigState
    push_proxies: tuple[PushProxyState, ...]
    waypoint: WaypointState | None  # None for a sidecar-mode render
    healthy: bool

    @property
    def default_registry(self) -> RegistryEntry:
        """The default registry's entry (-o json shows it as `registry`, for scripts that only ever have one)."""
        return next(r for r in self.registries if r.default)

"""The `meshreg.yaml` config as data: every setting, its default, and what follows from them.

The opt-in features' classes (S3, GC, Mirror, PushProxy, the ingress's) are defined in meshreg.config.features and
named here too: each of their modules is imported when one of its classes is first asked for, so that a config
without the feature never pays for building them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshreg.errors import ConfigError

if TYPE_CHECKING:
    from meshreg.config.features.gc import GC as GC
    from meshreg.config.features.ingress import INGRESS_METHODS as INGRESS_METHODS
    from meshreg.config.features.ingress import Client as Client
    from meshreg.config.features.ingress import Ingress as Ingress
    from meshreg.config.features.ingress import IngressGateway as IngressGateway
    from meshreg.config.features.ingress import Issuer as Issuer
    from meshreg.config.features.mirror import Mirror as Mirror
    from meshreg.config.features.objectstorage import S3 as S3
    from meshreg.config.features.pushproxy import PushProxy as PushProxy
    from meshreg.retention import Retention  # loaded by a config with retention rules (meshreg.config.gc)

# The module of meshreg.config.features that defines each opt-in feature's names.
FEATURES = {"S3": "objectstorage", "GC": "gc", "Mirror": "mirror", "PushProxy": "pushproxy",
            **dict.fromkeys(("IngressGateway", "Issuer", "Client", "Ingress", "INGRESS_METHODS"), "ingress")}

API_VERSION = "meshreg.dev/v1alpha1"
KIND = "MeshRegistry"
DEFAULT_FILE = "meshreg.yaml"
SCHEMA_FILE = "meshreg.schema.json"  # `meshreg schema`, written by `meshreg init` beside the config its modeline names
DEFAULT_IMAGE = "docker.io/library/registry:2.8.3"
REGISTRY_PORT = 5000  # the registry Service port; fixed so every address meshreg publishes agrees


@dataclass(frozen=True)
class Resources:
    """A container's resource requests and limits: resource name (cpu, memory, ephemeral-storage) -> quantity."""

    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, str]]:
        """The container's `resources`, keys sorted, empty ones left out."""
        out = {}
        if self.limits:
            out["limits"] = dict(sorted(self.limits.items()))
        if self.requests:
            out["requests"] = dict(sorted(self.requests.items()))
        return out


@dataclass(frozen=True)
class Scheduling:
    """Where a workload's pods may run, as the pod spec says it (config.scheduling reads and checks it)."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()  # each as the pod spec has it
    affinity: dict[str, Any] | None = None

    def pod_spec(self) -> dict[str, Any]:
        """The pod spec fields, only those that are set."""
        out: dict[str, Any] = {}
        if self.node_selector:
            out["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            out["tolerations"] = [dict(t) for t in self.tolerations]
        if self.affinity:
            out["affinity"] = self.affinity
        return out


@dataclass(frozen=True)
class Storage:
    """Where a registry keeps its data: a PersistentVolumeClaim of `size`, or object storage (`s3`)."""

    size: str = "10Gi"
    storage_class_name: str | None = None
    s3: S3 | None = None  # object storage instead of a PersistentVolumeClaim


@dataclass(frozen=True)
class Writer:
    """A workload allowed to write; `repositories` is ("*",) or normalized prefixes ending in "/"."""

    service_account: str
    repositories: tuple[str, ...] = ("*",)
    delete: bool = False
    push: bool = True  # False: may only DELETE (meshreg's retention identity)

    @property
    def scoped(self) -> bool:
        return self.repositories != ("*",)


ROLES = ("images", "readonly", "mirror")
PUSH_PROXY = "push-proxy"  # the push proxy's ServiceAccount and workload name, in its own namespace
CONNECT_ROLE = "meshreg-connect"  # the Role in the push proxy's namespace that lets people port-forward to it


@dataclass(frozen=True)
class Registry:
    """One registry: its storage, its node-proxy port and who may read and write it."""

    name: str = "registry"
    role: str = "images"  # images: written by its writers; readonly: only the publisher; mirror: nobody
    default: bool = True
    port: int = 5000  # where the node proxy serves it: localhost:<port>
    image: str = DEFAULT_IMAGE
    storage: Storage = Storage()
    delete_enabled: bool = False
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "1Gi"})
    readers: tuple[str, ...] = ("*",)
    writers: tuple[Writer, ...] = ()
    publisher: str | None = None  # readonly only: the one identity that loads images
    mirror: Mirror | None = None
    push_proxy: PushProxy | None = None  # None: no push proxy (not configured, or enabled: false)
    replicas: int = 1  # more than one only with object storage
    gc: GC | None = None
    retention: Retention | None = None
    scheduling: Scheduling = Scheduling()

    @property
    def effective_writers(self) -> tuple[Writer, ...]:
        """Who the policies let write: the writers, or a readonly registry's publisher."""
        if self.role == "readonly":
            return (Writer(self.publisher),) if self.publisher else ()
        return self.writers if self.role == "images" else ()


RUNTIMES = ("containerd", "crio")


@dataclass(frozen=True)
class RuntimeConfig:
    """Opt-in runtime config: which container runtimes get configuration files for the node proxy's ports, and where."""

    directories: tuple[tuple[str, str], ...] = ()  # (runtime, host directory) for each enabled runtime
    image: str = "docker.io/library/busybox:1.36.1"
    resources: Resources = Resources(requests={"cpu": "10m", "memory": "16Mi"}, limits={"memory": "32Mi"})
    node_selector: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.directories)


@dataclass(frozen=True)
class NodeProxy:
    """The node-local read-only proxy the kubelet pulls from: localhost:<port> on every node."""

    enabled: bool = True
    port: int = 5000  # the default registry's port
    host_ip: str = "127.0.0.1"
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"})
    runtime_config: RuntimeConfig = RuntimeConfig()


@dataclass(frozen=True)
class LocalRegistryHosting:
    """The KEP-1755 ConfigMap kube-public/local-registry-hosting: what it publishes, and whether this instance does."""

    host: str | None = None  # None: localhost:<nodeProxy.port>
    # False: leave kube-public/local-registry-hosting (one per cluster) to another instance; this one's addresses are
    # still published in kube-public/meshreg-<name>-registries.
    publish: bool = True
    help: str = ("Push from in-cluster writers to hostFromClusterNetwork; pull in pod specs from "
                 "hostFromContainerRuntime. Run `meshreg status` for details.")


@dataclass(frozen=True)
class Audit:
    """An audit record of every write and refusal (docs/audit.md): Telemetry objects that log them through
    `provider`, an extension provider in the mesh config. A Telemetry on a workload replaces the access-log providers
    the mesh gives it, so `keep_providers` are named beside it (Istio's built-in `envoy`: the usual access log)."""

    enabled: bool = True
    provider: str = "meshreg-audit"
    keep_providers: tuple[str, ...] = ("envoy",)


@dataclass(frozen=True)
class Config:
    """A whole `meshreg.yaml`: one instance, its registries, node proxy, published addresses and ingress."""

    name: str = "meshreg"
    namespace: str = "meshreg"
    trust_domain: str = "cluster.local"
    istio_revision: str | None = None
    mesh: str = "sidecar"  # or "ambient": ztunnel and a waypoint instead of sidecars (config.mesh)
    registries: tuple[Registry, ...] = (Registry(),)
    node_proxy: NodeProxy = NodeProxy()
    local_registry_hosting: LocalRegistryHosting = LocalRegistryHosting()
    source: str = "<built-in default>"
    ingress: Ingress | None = None  # writers outside the cluster (spec.ingress)
    audit: Audit = Audit()  # who wrote what, in the proxies' access logs (spec.audit)
    image_pull_secrets: tuple[str, ...] = ()  # Secrets in each namespace meshreg runs pods in, for private mirrors

    def principal(self, identity: str) -> str:
        """`builds/kaniko` -> `cluster.local/ns/builds/sa/kaniko` (Istio's principal form)."""
        ns, sa = identity.split("/")
        return f"{self.trust_domain}/ns/{ns}/sa/{sa}"

    @property
    def registry(self) -> Registry:
        """The default registry (the only one in a single-registry config)."""
        return next(r for r in self.registries if r.default)

    @property
    def readers(self) -> tuple[str, ...]:
        return self.registry.readers

    @property
    def writers(self) -> tuple[Writer, ...]:
        return self.registry.writers

    def get_registry(self, name: str | None) -> Registry:
        """The registry called `name` (None: the default); ConfigError naming the choices otherwise."""
        if name is None:
            return self.registry
        for registry in self.registries:
            if registry.name == name:
                return registry
        known = ", ".join(r.name for r in self.registries)
        raise ConfigError(f"{self.source}: no registry named {name!r} (registries: {known})")

    def service_name(self, registry: Registry | None = None) -> str:
        """A registry's Service as a cluster DNS name (how an Istio route names its destination)."""
        return f"{(registry or self.registry).name}.{self.namespace}.svc.cluster.local"

    def service_host(self, registry: Registry | None = None) -> str:
        """Where pods in the cluster reach a registry: its Service, port 5000."""
        return f"{self.service_name(registry)}:{REGISTRY_PORT}"

    @property
    def node_proxy_identity(self) -> str:
        return f"{self.namespace}/node-proxy"

    def writers_of(self, registry: Registry) -> tuple[Writer, ...]:
        """Every identity the policies let write `registry`: its writers (or a readonly registry's publisher), and
        any identity meshreg itself deploys to write on someone's behalf. Policies, listings and checks use this."""
        writers = registry.effective_writers
        if registry.push_proxy:  # it may be a readonly registry's publisher: then its scope is the push proxy's
            proxy = registry.push_proxy.writer
            writers = tuple(w for w in writers if w.service_account != proxy.service_account) + (proxy,)
        gateway = self.ingress.writer if self.ingress and self.ingress.registry == registry.name else None
        if gateway:
            writers += (gateway,)
        if registry.retention:  # the retention job deletes manifests through the mesh: DELETE only, in its rules
            writers += (Writer(self.gc_identity(registry), repositories=registry.retention.prefixes, delete=True,
                               push=False),)
        return writers

    def gc_identity(self, registry: Registry) -> str:
        """The ServiceAccount of a registry's gc CronJob, as NS/SA."""
        return f"{self.namespace}/{registry.name}-gc"


DEFAULT = Config()


if not TYPE_CHECKING:  # mypy sees the imports above; at run time a feature's module loads on first use (PEP 562)
    def __getattr__(name: str) -> object:
        if name not in FEATURES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"meshreg.config.features.{FEATURES[name]}"), name)

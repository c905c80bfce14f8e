"""The `meshreg.yaml` config as data: every setting, its default, and what follows from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from meshreg.errors import ConfigError

API_VERSION = "meshreg.dev/v1alpha1"
KIND = "MeshRegistry"
DEFAULT_FILE = "meshreg.yaml"
DEFAULT_IMAGE = "docker.io/library/registry:2.8.3"
REGISTRY_PORT = 5000  # the registry Service port; fixed so every address meshreg publishes agrees


@dataclass(frozen=True)
class Resources:
    requests: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {}
        if self.limits:
            out["limits"] = dict(sorted(self.limits.items()))
        if self.requests:
            out["requests"] = dict(sorted(self.requests.items()))
        return out


@dataclass(frozen=True)
class Storage:
    size: str = "10Gi"
    storage_class_name: str | None = None


@dataclass(frozen=True)
class Writer:
    """A workload allowed to write; `repositories` is ("*",) or normalized prefixes ending in "/"."""

    service_account: str
    repositories: tuple[str, ...] = ("*",)
    delete: bool = False

    @property
    def scoped(self) -> bool:
        return self.repositories != ("*",)


@dataclass(frozen=True)
class Mirror:
    """A pull-through cache of `upstream` (distribution's proxy mode)."""

    upstream: str
    credentials_secret: str | None = None  # a Secret with keys `username` and `password`
    extra_hosts: tuple[str, ...] = ()  # hosts the upstream redirects blob downloads to

    @property
    def host(self) -> str:
        return urlsplit(self.upstream).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.upstream)
        return parts.port or (443 if parts.scheme == "https" else 80)


ROLES = ("images", "readonly", "mirror")


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
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "512Mi"})
    readers: tuple[str, ...] = ("*",)
    writers: tuple[Writer, ...] = ()
    publisher: str | None = None  # readonly only: the one identity that loads images
    mirror: Mirror | None = None

    @property
    def effective_writers(self) -> tuple[Writer, ...]:
        """Who the policies let write: the writers, or a readonly registry's publisher."""
        if self.role == "readonly":
            return (Writer(self.publisher),) if self.publisher else ()
        return self.writers if self.role == "images" else ()


@dataclass(frozen=True)
class NodeProxy:
    enabled: bool = True
    port: int = 5000  # the default registry's port
    host_ip: str = "127.0.0.1"
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"})


@dataclass(frozen=True)
class LocalRegistryHosting:
    host: str | None = None  # None: localhost:<nodeProxy.port>
    # False: leave kube-public/local-registry-hosting (one per cluster) to another instance; this one's addresses are
    # still published in kube-public/meshreg-<name>-registries.
    publish: bool = True
    help: str = ("Push from in-cluster writers to hostFromClusterNetwork; pull in pod specs from "
                 "hostFromContainerRuntime. Run `meshreg status` for details.")


@dataclass(frozen=True)
class Config:
    name: str = "meshreg"
    namespace: str = "meshreg"
    trust_domain: str = "cluster.local"
    istio_revision: str | None = None
    registries: tuple[Registry, ...] = (Registry(),)
    node_proxy: NodeProxy = NodeProxy()
    local_registry_hosting: LocalRegistryHosting = LocalRegistryHosting()
    source: str = "<built-in default>"

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

    def service_host(self, registry: Registry | None = None) -> str:
        """Where pods in the cluster reach a registry: its Service, port 5000."""
        name = (registry or self.registry).name
        return f"{name}.{self.namespace}.svc.cluster.local:{REGISTRY_PORT}"

    @property
    def node_proxy_identity(self) -> str:
        return f"{self.namespace}/node-proxy"

    def writers_of(self, registry: Registry) -> tuple[Writer, ...]:
        """Every identity the policies let write `registry`: its writers (or a readonly registry's publisher), and
        any identity meshreg itself deploys to write on someone's behalf. Policies, listings and checks use this."""
        return registry.effective_writers


DEFAULT = Config()

"""The `meshreg.yaml` config as data: every setting, its default, and what follows from them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from meshreg.errors import ConfigError
from meshreg.retention import Retention

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
class S3:
    """Object storage through distribution's S3 driver; credentials come from `credentials_secret`, never the file."""

    bucket: str
    region: str
    credentials_secret: str  # a Secret with keys accessKey, secretKey and httpSecret
    endpoint: str | None = None  # None: AWS itself
    root_directory: str | None = None
    redirect: bool = False  # let clients download blobs from presigned S3 URLs instead of through the registry

    @property
    def host(self) -> str:
        if not self.endpoint:
            return f"{self.bucket}.s3.{self.region}.amazonaws.com"
        return urlsplit(self.endpoint).hostname or ""  # an endpoint always has one (config.storage checks it)

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint or "https://x")
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def by_address(self) -> bool:
        """The endpoint names an IP address rather than a host."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def in_cluster(self) -> bool:
        """An endpoint that is a Service of this cluster (no ServiceEntry needed)."""
        labels = self.host.split(".")
        return "svc" in labels[1:]  # name.namespace.svc[.cluster.local]


@dataclass(frozen=True)
class Storage:
    size: str = "10Gi"
    storage_class_name: str | None = None
    s3: S3 | None = None  # object storage instead of a PersistentVolumeClaim


@dataclass(frozen=True)
class GC:
    """Garbage collection (and retention, when the registry has rules) run by a CronJob."""

    schedule: str
    time_zone: str | None = None
    delete_untagged: bool = False
    image: str = "docker.io/library/python:3.13-alpine"  # runs meshreg's retention and coordination (stdlib only)
    timeout: int = 3600  # seconds: the Job's activeDeadlineSeconds
    scheduling: Scheduling = Scheduling()  # by default the registry's nodeSelector and tolerations


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
PUSH_PROXY = "push-proxy"  # the push proxy's ServiceAccount and workload name, in its own namespace
CONNECT_ROLE = "meshreg-connect"  # the Role in the push proxy's namespace that lets people port-forward to it


@dataclass(frozen=True)
class PushProxy:
    """A gateway people reach with `meshreg connect` (RBAC on pods/portforward in `namespace`), which writes
    `repositories` of its registry as its own identity; see meshreg.config.pushproxy."""

    namespace: str
    repositories: tuple[str, ...]
    port: int = 5000  # where it listens in its pod, the default local port of `meshreg connect`, the published host
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"})
    scheduling: Scheduling = Scheduling()

    @property
    def identity(self) -> str:
        return f"{self.namespace}/{PUSH_PROXY}"

    @property
    def writer(self) -> Writer:
        return Writer(self.identity, self.repositories)


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
    enabled: bool = True
    port: int = 5000  # the default registry's port
    host_ip: str = "127.0.0.1"
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"})
    runtime_config: RuntimeConfig = RuntimeConfig()


@dataclass(frozen=True)
class LocalRegistryHosting:
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


INGRESS_METHODS = ("mtls", "jwt")


@dataclass(frozen=True)
class IngressGateway:
    """The Istio ingress gateway that serves the ingress: its pods (by labels), their namespace and identity."""

    namespace: str = "istio-system"
    selector: dict[str, str] = field(default_factory=lambda: {"istio": "ingressgateway"})
    service_account: str = "istio-ingressgateway-service-account"
    port: int = 443  # the Gateway server port (a port of the Service in front of the gateway pods)
    dedicated: bool = False  # True: nothing else uses these pods, so an ALLOW policy cannot lock out other hosts

    @property
    def identity(self) -> str:
        return f"{self.namespace}/{self.service_account}"


@dataclass(frozen=True)
class Issuer:
    """A JWT issuer the gateway trusts, with its keys (inline JWKS or a JWKS URI) and the audiences it accepts."""

    issuer: str
    audiences: tuple[str, ...]
    jwks: str | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True)
class Client:
    """A writer outside the cluster: a client certificate (mtls) or tokens of one issuer and subject (jwt)."""

    name: str
    method: str  # "mtls" or "jwt"
    repositories: tuple[str, ...]  # what it may write: ("*",) or normalized prefixes
    read_repositories: tuple[str, ...]  # what it may read; defaults to `repositories`
    delete: bool = False
    issuer: str | None = None  # jwt only
    subject: str | None = None  # jwt only; `*` at either end as Istio matches it
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()  # jwt only: claim name -> accepted values


@dataclass(frozen=True)
class Ingress:
    """Writers outside the cluster reach one registry at `host`, through an Istio ingress gateway."""

    host: str
    registry: str  # the registry it serves
    credential_name: str  # the Secret (in the gateway's namespace) with the server certificate
    client_ca: str  # the CA directory `meshreg certs` manages, resolved against the config file
    gateway: IngressGateway = IngressGateway()
    issuers: tuple[Issuer, ...] = ()
    clients: tuple[Client, ...] = ()
    ca_pem: str | None = None  # the CA certificate and CRL, read from client_ca; None before `meshreg certs init`
    crl_pem: str | None = None

    def principal(self, client: Client) -> str:
        """The peer principal of a client certificate: its URI SAN spiffe://<host>/client/<name>, without spiffe://."""
        return f"{self.host}/client/{client.name}"

    def client(self, name: str) -> Client | None:
        return next((c for c in self.clients if c.name == name), None)

    @property
    def address(self) -> str:
        """Where clients push, as docker names it (and its certs.d directory): host, or host:port off 443."""
        return self.host if self.gateway.port == 443 else f"{self.host}:{self.gateway.port}"

    @property
    def read_restricted(self) -> bool:
        """Whether some client may read less than every repository (then the ingress refuses cross-repository
        mounts, which would read past it)."""
        return any(c.read_repositories != ("*",) for c in self.clients)

    @property
    def writer(self) -> Writer | None:
        """The gateway as the registry sees it: one writer for the union of its clients' prefixes."""
        if not self.clients:
            return None
        prefixes = {p for c in self.clients for p in c.repositories}
        repositories = ("*",) if "*" in prefixes else tuple(sorted(prefixes))
        return Writer(self.gateway.identity, repositories, any(c.delete for c in self.clients))


@dataclass(frozen=True)
class Config:
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

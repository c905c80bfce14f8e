"""The `meshreg.yaml` config: its shape, defaults and validation, in one place."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from meshreg import names
from meshreg.errors import ConfigError
from meshreg.reading import REQUIRED, Reader
from meshreg.yamlsource import parse

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
class Registry:
    image: str = DEFAULT_IMAGE
    storage: Storage = Storage()
    delete_enabled: bool = False
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "512Mi"})


@dataclass(frozen=True)
class NodeProxy:
    enabled: bool = True
    port: int = 5000
    host_ip: str = "127.0.0.1"
    resources: Resources = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"})


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
class LocalRegistryHosting:
    host: str | None = None  # None: localhost:<nodeProxy.port>
    help: str = "Push from in-cluster writers to hostFromClusterNetwork; pull in pod specs from hostFromContainerRuntime. Run `meshreg status` for details."


@dataclass(frozen=True)
class Config:
    name: str = "meshreg"
    namespace: str = "meshreg"
    trust_domain: str = "cluster.local"
    istio_revision: str | None = None
    registry: Registry = Registry()
    node_proxy: NodeProxy = NodeProxy()
    readers: tuple[str, ...] = ("*",)
    writers: tuple[Writer, ...] = ()
    local_registry_hosting: LocalRegistryHosting = LocalRegistryHosting()
    source: str = "<built-in default>"

    def principal(self, identity: str) -> str:
        """`builds/kaniko` -> `cluster.local/ns/builds/sa/kaniko` (Istio's principal form)."""
        ns, sa = identity.split("/")
        return f"{self.trust_domain}/ns/{ns}/sa/{sa}"

    @property
    def registry_service_host(self) -> str:
        return f"registry.{self.namespace}.svc.cluster.local:{REGISTRY_PORT}"

    @property
    def node_proxy_identity(self) -> str:
        return f"{self.namespace}/node-proxy"


DEFAULT = Config()


def load(path: str | None = None) -> Config:
    """Load `path`; with None, `meshreg.yaml` if it exists (or $MESHREG_CONFIG), else the built-in default."""
    if path is None:
        if not os.path.exists(DEFAULT_FILE):
            return DEFAULT
        path = DEFAULT_FILE
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such file (run `meshreg init` to write a starter config)") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    return from_text(text, name=path)


def from_text(text: str, *, name: str) -> Config:
    """Validate a config document; the first problem raises ConfigError naming file, line and field."""
    source = parse(text, name)
    if source.data is None:
        raise ConfigError(f"{name}: the file is empty (run `meshreg init` to write a starter config)")
    return _read_config(Reader(source), source.data, name)


def _read_config(r: Reader, data: object, name: str) -> Config:
    top = r.mapping(data, (), {"apiVersion": REQUIRED, "kind": REQUIRED, "metadata": REQUIRED, "spec": {}})
    if top["apiVersion"] != API_VERSION:
        r.fail(("apiVersion",), f"expected {API_VERSION!r}, got {top['apiVersion']!r}")
    if top["kind"] != KIND:
        r.fail(("kind",), f"expected {KIND!r}, got {top['kind']!r}")
    meta = r.mapping(top["metadata"], ("metadata",), {"name": REQUIRED})
    spec = r.mapping(top["spec"], ("spec",), {
        "namespace": DEFAULT.namespace, "trustDomain": DEFAULT.trust_domain, "istioRevision": None,
        "registry": {}, "nodeProxy": {}, "readers": list(DEFAULT.readers), "writers": [],
        "localRegistryHosting": {},
    })
    p = ("spec",)
    registry = _read_registry(r, spec["registry"], p + ("registry",))
    node_proxy = _read_node_proxy(r, spec["nodeProxy"], p + ("nodeProxy",))
    readers = r.strings(spec["readers"], p + ("readers",), lambda v: names.check_identity(v, allow_wildcard=True))
    if "*" in readers and len(readers) > 1:
        r.fail(p + ("readers",), "'*' already admits every mesh identity; list it alone or list NS/SA entries")
    writers = _read_writers(r, spec["writers"], p + ("writers",), registry)
    hosting = r.mapping(spec["localRegistryHosting"], p + ("localRegistryHosting",),
                        {"host": None, "help": LocalRegistryHosting.help})
    return Config(
        name=r.string(meta["name"], ("metadata", "name"), names.check_label),
        namespace=r.string(spec["namespace"], p + ("namespace",), _check_namespace),
        trust_domain=r.string(spec["trustDomain"], p + ("trustDomain",), names.check_trust_domain),
        istio_revision=r.string(spec["istioRevision"], p + ("istioRevision",), names.check_label, nullable=True),
        registry=registry,
        node_proxy=node_proxy,
        readers=tuple(readers),
        writers=writers,
        local_registry_hosting=LocalRegistryHosting(
            host=r.string(hosting["host"], p + ("localRegistryHosting", "host"), _check_host, nullable=True),
            help=r.string(hosting["help"], p + ("localRegistryHosting", "help")),
        ),
        source=name,
    )


def _check_namespace(value: str) -> str | None:
    if value in ("kube-system", "kube-public", "kube-node-lease", "istio-system"):
        return f"{value!r} is reserved for the cluster or Istio; use a namespace of meshreg's own"
    return names.check_label(value)


def _check_host(value: str) -> str | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{value!r} is not HOST:PORT (e.g. localhost:5000)"
    return None


def _read_resources(r: Reader, value: object, path: tuple, default: Resources) -> Resources:
    if value is None:
        return default
    m = r.mapping(value, path, {"requests": {}, "limits": {}})
    out = {}
    for kind in ("requests", "limits"):
        amounts = r.mapping(m[kind], path + (kind,), {"cpu": None, "memory": None, "ephemeral-storage": None})
        out[kind] = {
            k: r.string(v, path + (kind, k), names.check_quantity) for k, v in amounts.items() if v is not None
        }
    return Resources(**out)


def _read_registry(r: Reader, value: object, path: tuple) -> Registry:
    d = Registry()
    m = r.mapping(value, path, {"image": d.image, "storage": {}, "deleteEnabled": d.delete_enabled,
                                "resources": None})
    storage = r.mapping(m["storage"], path + ("storage",),
                        {"size": d.storage.size, "storageClassName": d.storage.storage_class_name})
    storage_class = storage["storageClassName"]
    if storage_class != "":  # "" asks for no class (static binding)
        r.string(storage_class, path + ("storage", "storageClassName"), names.check_subdomain, nullable=True)
    size = r.string(storage["size"], path + ("storage", "size"), names.check_quantity)
    if float(re.match(r"[\d.]+", size).group()) <= 0:
        r.fail(path + ("storage", "size"), f"{size!r} must be larger than zero")
    return Registry(
        image=r.string(m["image"], path + ("image",), names.check_image),
        storage=Storage(size=size, storage_class_name=storage_class),
        delete_enabled=r.boolean(m["deleteEnabled"], path + ("deleteEnabled",)),
        resources=_read_resources(r, m["resources"], path + ("resources",), d.resources),
    )


def _read_node_proxy(r: Reader, value: object, path: tuple) -> NodeProxy:
    d = NodeProxy()
    m = r.mapping(value, path, {"enabled": d.enabled, "port": d.port, "hostIP": d.host_ip, "resources": None})
    port = r.integer(m["port"], path + ("port",), low=1024, high=65535)
    if port in names.ISTIO_RESERVED_PORTS:
        r.fail(path + ("port",), f"{port} collides with a port the Istio proxy keeps for itself "
                                 f"({', '.join(map(str, sorted(names.ISTIO_RESERVED_PORTS)))})")
    return NodeProxy(
        enabled=r.boolean(m["enabled"], path + ("enabled",)),
        port=port,
        host_ip=r.string(m["hostIP"], path + ("hostIP",), names.check_loopback),
        resources=_read_resources(r, m["resources"], path + ("resources",), d.resources),
    )


def _read_writers(r: Reader, value: object, path: tuple, registry: Registry) -> tuple[Writer, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        r.fail(path, "expected a list of writers ({serviceAccount: NS/SA, repositories: [...]})")
    writers: list[Writer] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        p = path + (i,)
        m = r.mapping(item, p, {"serviceAccount": REQUIRED, "repositories": ["*"], "delete": False})
        sa = r.string(m["serviceAccount"], p + ("serviceAccount",), names.check_identity)
        if sa in seen:
            r.fail(p + ("serviceAccount",), f"{sa!r} is already a writer (spec.writers[{seen[sa]}])")
        seen[sa] = i
        repos = r.strings(m["repositories"], p + ("repositories",), names.check_repository_prefix)
        if not repos:
            r.fail(p + ("repositories",), "empty: list \"*\" for every repository, or repository prefixes")
        if "*" in repos and len(repos) > 1:
            r.fail(p + ("repositories",), "'*' already covers every repository; list it alone")
        normalized = sorted({names.normalize_prefix(x) for x in repos})
        if len(normalized) != len(repos):
            r.fail(p + ("repositories",), "lists the same prefix twice (team-a and team-a/ are the same)")
        delete = r.boolean(m["delete"], p + ("delete",))
        if delete and not registry.delete_enabled:
            r.fail(p + ("delete",), "grants DELETE but spec.registry.deleteEnabled is false; enable it first")
        writers.append(Writer(service_account=sa, repositories=tuple(normalized), delete=delete))
    return tuple(writers)

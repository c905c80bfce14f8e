"""Reads a config document into a Config: the top level of `spec`, with the registries read by config.registries."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from meshreg.config import mesh, names, pushproxy, scheduling
from meshreg.config.audit import read_audit
from meshreg.config.model import API_VERSION, KIND, Config, LocalRegistryHosting, NodeProxy, Registry
from meshreg.config.reader import REQUIRED, UNREADABLE, Attempt, Invalid, Reader
from meshreg.config.registries import read_entries, read_resources, read_single, refuse_identity
from meshreg.config.runtimeconfig import read_runtime_config
from meshreg.config.source import Path

if TYPE_CHECKING:
    from meshreg.config.model import Ingress

_NP = NodeProxy()
_SPEC_KEYS: dict[str, object] = {
    "namespace": "meshreg", "trustDomain": "cluster.local", "istioRevision": None, "registry": None, "nodeProxy": {},
    "readers": None, "writers": None, "registries": None, "localRegistryHosting": {}, "mesh": mesh.MESHES[0],
    "pushProxy": None, "ingress": None, "audit": {}, "imagePullSecrets": []}


def read_config(r: Reader, data: object, name: str) -> Config:
    """Read every part of the document; a part that depends on others is checked only once they read cleanly."""
    instance, spec = _read_top(r, data)
    p: Path = ("spec",)
    several = r.attempt(lambda: r.given(spec["registries"]))
    namespace = r.attempt(lambda: r.string(spec["namespace"], p + ("namespace",), _check_namespace))
    trust_domain = r.attempt(lambda: r.string(spec["trustDomain"], p + ("trustDomain",), names.check_trust_domain))
    revision = r.attempt(lambda: r.string(spec["istioRevision"], p + ("istioRevision",), names.check_label,
                                          nullable=True))
    np = r.attempt(lambda: r.mapping(spec["nodeProxy"], p + ("nodeProxy",), {
        "enabled": True, "port": None, "hostIP": _NP.host_ip, "resources": None, "runtimeConfig": None}))
    enabled = r.attempt(lambda: r.boolean(np.value["enabled"], p + ("nodeProxy", "enabled")))
    registries = r.attempt(lambda: _read_registries(r, spec, node_proxy_port=np.value["port"],
                                                    several=several.value))
    node_proxy = r.attempt(lambda: _read_node_proxy(r, np.value, enabled=enabled, registries=registries))
    hosting = r.attempt(lambda: _read_hosting(r, spec["localRegistryHosting"], p + ("localRegistryHosting",)))
    with r.guard():
        _check_identities(r, spec, registries.value, several=several.value)
    mode = r.attempt(lambda: _read_mesh(r, spec, registries=registries.get(), several=several.value))
    with_proxies = r.attempt(lambda: pushproxy.read(r, spec, registries.value, namespace=namespace.value,
                                                    several=several.value, node_proxy=enabled.value))
    ingress = r.attempt(lambda: None if not r.given(spec["ingress"]) else _read_ingress(
        r, spec["ingress"], p + ("ingress",), registries=with_proxies.value, namespace=namespace.value))
    audit = r.attempt(lambda: read_audit(r, spec["audit"], p + ("audit",)))
    pull_secrets = r.attempt(lambda: scheduling.read_pull_secrets(r, spec["imagePullSecrets"],
                                                                  p + ("imagePullSecrets",)))
    return Config(name=instance.value, namespace=namespace.value, trust_domain=trust_domain.value,
                  istio_revision=revision.value, mesh=mode.value, registries=with_proxies.value,
                  node_proxy=node_proxy.value, local_registry_hosting=hosting.value, source=name,
                  ingress=ingress.value, audit=audit.value, image_pull_secrets=pull_secrets.value)


def _read_node_proxy(r: Reader, np: dict[str, Any], *, enabled: Attempt[bool],
                     registries: Attempt[tuple[Registry, ...]]) -> NodeProxy:
    """spec.nodeProxy, whose port is the default registry's (read with the registries)."""
    p: Path = ("spec", "nodeProxy")
    host_ip = r.attempt(lambda: r.string(np["hostIP"], p + ("hostIP",), names.check_loopback))
    resources = r.attempt(lambda: read_resources(r, np["resources"], p + ("resources",), _NP.resources))
    runtime = r.attempt(lambda: read_runtime_config(r, np["runtimeConfig"], p + ("runtimeConfig",),
                                                    node_proxy=enabled.get()))
    default = next(x for x in registries.value if x.default)
    return NodeProxy(enabled=enabled.value, port=default.port, host_ip=host_ip.value, resources=resources.value,
                     runtime_config=runtime.value)


def _read_hosting(r: Reader, value: object, p: Path) -> LocalRegistryHosting:
    hosting = r.mapping(value, p, {"host": None, "help": LocalRegistryHosting.help, "publish": True})
    host = r.attempt(lambda: r.string(hosting["host"], p + ("host",), _check_host, nullable=True))
    text = r.attempt(lambda: r.string(hosting["help"], p + ("help",)))
    publish = r.attempt(lambda: r.boolean(hosting["publish"], p + ("publish",)))
    return LocalRegistryHosting(host=host.value, help=text.value, publish=publish.value)


def _check_identities(r: Reader, spec: dict[str, Any], registries: tuple[Registry, ...], *, several: bool) -> None:
    """Identities meshreg deploys itself (the node proxy, the retention jobs) are nobody's writer or publisher."""
    with r.guard():
        _check_never_writes(r, registries, several=several, identity=f"{spec['namespace']}/node-proxy",
                            role="the node proxy", why=", which serves unauthenticated reads")
    _check_gc_identities(r, spec, registries, several=several)


def _read_ingress(r: Reader, value: object, path: Path, *, registries: tuple[Registry, ...],
                  namespace: str) -> Ingress:
    from meshreg.config.ingress import read_ingress  # its reader and model load with spec.ingress only

    return read_ingress(r, value, path, registries=registries, namespace=namespace)


def _read_top(r: Reader, data: object) -> tuple[Attempt[str], dict[str, Any]]:
    """The instance name (if it reads) and the spec; apiVersion and kind must be meshreg's."""
    top = r.mapping(data, (), {"apiVersion": REQUIRED, "kind": REQUIRED, "metadata": REQUIRED, "spec": {}})
    if top["apiVersion"] is not UNREADABLE and top["apiVersion"] != API_VERSION:
        r.record(("apiVersion",), f"expected {API_VERSION!r}, got {top['apiVersion']!r}")
    if top["kind"] is not UNREADABLE and top["kind"] != KIND:
        r.record(("kind",), f"expected {KIND!r}, got {top['kind']!r}")
    meta = r.attempt(lambda: r.mapping(top["metadata"], ("metadata",), {"name": REQUIRED}))
    instance = r.attempt(lambda: r.string(meta.value["name"], ("metadata", "name"), names.check_label))
    return instance, r.mapping(top["spec"], ("spec",), _SPEC_KEYS)


def _read_registries(r: Reader, spec: dict[str, Any], *, node_proxy_port: object,
                     several: bool) -> tuple[Registry, ...]:
    """spec.registries, or the single registry of spec.registry, spec.readers, spec.writers and spec.nodeProxy.port."""
    p: Path = ("spec",)
    if not several:
        return (read_single(r, spec, 5000 if not r.given(node_proxy_port) else node_proxy_port, p),)
    mixed = [key for key in ("registry", "readers", "writers", "pushProxy") if r.given(spec[key])]
    for key in mixed:
        r.record(p + (key,), f"with spec.registries, set {key} on each registry (spec.registries[].{key})")
    if r.given(node_proxy_port):
        mixed.append("nodeProxy.port")
        r.record(p + ("nodeProxy", "port"), "with spec.registries, each registry has its own port")
    entries = read_entries(r, spec["registries"], p + ("registries",))
    if mixed:
        raise Invalid
    return entries


def _read_mesh(r: Reader, spec: dict[str, Any], *, registries: tuple[Registry, ...] | None, several: bool) -> str:
    """spec.mesh; in ambient mode, also what ambient cannot honour and the waypoint as a writer (once the registries
    read: None where they did not)."""
    mode = mesh.read_mesh(r, spec["mesh"], ("spec", "mesh"))
    if mode == "ambient":
        mesh.check_revision(r, spec["istioRevision"])
        if registries is None:
            raise Invalid
        mesh.check_ambient(r, registries=registries, several=several)
        _check_never_writes(r, registries, several=several, identity=f"{spec['namespace']}/{mesh.WAYPOINT}",
                            role="the waypoint", why=", which forwards every client's requests")
    return mode


def _check_never_writes(r: Reader, registries: tuple[Registry, ...], *, several: bool, identity: str, role: str,
                        why: str) -> None:
    """An identity meshreg deploys to forward others' requests must never be a writer or a publisher."""
    for i, reg in enumerate(registries):
        base = ("spec", "registries", i) if several else ("spec",)
        refuse_identity(r, reg, base, identity, as_writer=f"{identity!r} is {role}{why}: it can never be a writer",
                        as_publisher=f"{identity!r} is {role}: it can never publish")


def _check_gc_identities(r: Reader, spec: dict[str, Any], registries: tuple[Registry, ...], *,
                         several: bool) -> None:
    """A retention job's identity deletes on meshreg's behalf: it can be nobody's writer or publisher."""
    for i, reg in enumerate(registries):
        if reg.retention:
            base = ("spec", "registries", i) if several else ("spec",)
            gc = f"{spec['namespace']}/{reg.name}-gc"
            reserved = f"{gc!r} is meshreg's retention identity"
            refuse_identity(r, reg, base, gc, as_writer=f"{reserved} (DELETE only, as the retention rules say)",
                            as_publisher=reserved)


def _check_namespace(value: str) -> str | None:
    if value in names.RESERVED_NAMESPACES:
        return f"{value!r} is reserved for the cluster or Istio; use a namespace of meshreg's own"
    return names.check_label(value)


_HOSTNAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"|\[[0-9A-Fa-f:.]+\]")


def _check_host(value: str) -> str | None:
    """HOST:PORT with an optional repository path, as KEP-1755 tools read it (Tilt: reference.ParseNamed of
    host + "/name"; Skaffold: a default repo): localhost:5001 or localhost:5001/dev."""
    address, _, path = value.partition("/")
    host, _, port = address.rpartition(":")
    if not host or not _HOSTNAME.fullmatch(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        return (f"{value!r} is not HOST:PORT with an optional repository path (e.g. localhost:5000 or "
                "localhost:5001/dev)")
    if path and not names.is_repository(path):
        return (f"{value!r}: {path!r} is not a repository path (lowercase letters, digits and separators, "
                "components joined by '/', e.g. dev or team-a/dev)")
    return None

"""Reads a config document into a Config: the top level of `spec`, with the registries read by config.registries."""

from __future__ import annotations

import re
from typing import Any

from meshreg.config import mesh, names, pushproxy, scheduling
from meshreg.config.audit import read_audit
from meshreg.config.ingress import read_ingress
from meshreg.config.model import API_VERSION, KIND, Config, LocalRegistryHosting, NodeProxy, Registry
from meshreg.config.reader import REQUIRED, Reader
from meshreg.config.registries import read_entries, read_resources, read_single, refuse_identity
from meshreg.config.runtimeconfig import read_runtime_config
from meshreg.config.source import Path

_NP = NodeProxy()
_SPEC_KEYS: dict[str, object] = {
    "namespace": "meshreg", "trustDomain": "cluster.local", "istioRevision": None, "registry": None, "nodeProxy": {},
    "readers": None, "writers": None, "registries": None, "localRegistryHosting": {}, "mesh": mesh.MESHES[0],
    "pushProxy": None, "ingress": None, "audit": {}, "imagePullSecrets": []}


def read_config(r: Reader, data: object, name: str) -> Config:
    meta, spec = _read_top(r, data)
    p: Path = ("spec",)
    several = spec["registries"] is not None
    np = r.mapping(spec["nodeProxy"], p + ("nodeProxy",),
                   {"enabled": True, "port": None, "hostIP": _NP.host_ip, "resources": None, "runtimeConfig": None})
    registries = _read_registries(r, spec, node_proxy_port=np["port"], several=several)
    hosting = r.mapping(spec["localRegistryHosting"], p + ("localRegistryHosting",),
                        {"host": None, "help": LocalRegistryHosting.help, "publish": True})
    default = next(x for x in registries if x.default)
    _check_never_writes(r, registries, several=several, identity=f"{spec['namespace']}/node-proxy",
                        role="the node proxy", why=", which serves unauthenticated reads")
    _check_gc_identities(r, spec, registries, several=several)
    mode = _read_mesh(r, spec, registries=registries, several=several)
    proxy = r.boolean(np["enabled"], p + ("nodeProxy", "enabled"))
    namespace = r.string(spec["namespace"], p + ("namespace",), _check_namespace)
    registries = pushproxy.read(r, spec, registries, namespace=namespace, several=several, node_proxy=proxy)
    ingress = None if spec["ingress"] is None else \
        read_ingress(r, spec["ingress"], p + ("ingress",), registries=registries, namespace=namespace)
    return Config(
        name=r.string(meta["name"], ("metadata", "name"), names.check_label),
        namespace=namespace,
        trust_domain=r.string(spec["trustDomain"], p + ("trustDomain",), names.check_trust_domain),
        istio_revision=r.string(spec["istioRevision"], p + ("istioRevision",), names.check_label, nullable=True),
        mesh=mode,
        registries=registries,
        node_proxy=NodeProxy(
            enabled=proxy, port=default.port,
            host_ip=r.string(np["hostIP"], p + ("nodeProxy", "hostIP"), names.check_loopback),
            resources=read_resources(r, np["resources"], p + ("nodeProxy", "resources"), _NP.resources),
            runtime_config=read_runtime_config(r, np["runtimeConfig"], p + ("nodeProxy", "runtimeConfig"),
                                               node_proxy=proxy)),
        local_registry_hosting=LocalRegistryHosting(
            host=r.string(hosting["host"], p + ("localRegistryHosting", "host"), _check_host, nullable=True),
            help=r.string(hosting["help"], p + ("localRegistryHosting", "help")),
            publish=r.boolean(hosting["publish"], p + ("localRegistryHosting", "publish"))),
        source=name,
        ingress=ingress,
        audit=read_audit(r, spec["audit"], p + ("audit",)),
        image_pull_secrets=scheduling.read_pull_secrets(r, spec["imagePullSecrets"], p + ("imagePullSecrets",)),
    )


def _read_top(r: Reader, data: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document's metadata and spec, once its apiVersion and kind are meshreg's."""
    top = r.mapping(data, (), {"apiVersion": REQUIRED, "kind": REQUIRED, "metadata": REQUIRED, "spec": {}})
    if top["apiVersion"] != API_VERSION:
        r.fail(("apiVersion",), f"expected {API_VERSION!r}, got {top['apiVersion']!r}")
    if top["kind"] != KIND:
        r.fail(("kind",), f"expected {KIND!r}, got {top['kind']!r}")
    meta = r.mapping(top["metadata"], ("metadata",), {"name": REQUIRED})
    return meta, r.mapping(top["spec"], ("spec",), _SPEC_KEYS)


def _read_registries(r: Reader, spec: dict[str, Any], *, node_proxy_port: object,
                     several: bool) -> tuple[Registry, ...]:
    """spec.registries, or the single registry of spec.registry, spec.readers, spec.writers and spec.nodeProxy.port."""
    p: Path = ("spec",)
    if not several:
        return (read_single(r, spec, 5000 if node_proxy_port is None else node_proxy_port, p),)
    if node_proxy_port is not None:
        r.fail(p + ("nodeProxy", "port"), "with spec.registries, each registry has its own port")
    for key in ("registry", "readers", "writers", "pushProxy"):
        if spec[key] is not None:
            r.fail(p + (key,), f"with spec.registries, set {key} on each registry (spec.registries[].{key})")
    return read_entries(r, spec["registries"], p + ("registries",))


def _read_mesh(r: Reader, spec: dict[str, Any], *, registries: tuple[Registry, ...], several: bool) -> str:
    """spec.mesh; in ambient mode, also what ambient cannot honour and the waypoint as a writer."""
    mode = mesh.read_mesh(r, spec["mesh"], ("spec", "mesh"))
    if mode == "ambient":
        mesh.check_ambient(r, spec, registries=registries, several=several)
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

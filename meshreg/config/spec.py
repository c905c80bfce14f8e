"""Reads a config document into a Config: the top level of `spec`, with the registries read by config.registries."""

from __future__ import annotations

from meshreg.config import names
from meshreg.config.model import API_VERSION, KIND, Config, LocalRegistryHosting, NodeProxy
from meshreg.config.reader import REQUIRED, Reader
from meshreg.config.registries import read_entries, read_resources, read_single

_NP = NodeProxy()
_SPEC_KEYS = {"namespace": "meshreg", "trustDomain": "cluster.local", "istioRevision": None, "registry": None,
              "nodeProxy": {}, "readers": None, "writers": None, "registries": None, "localRegistryHosting": {}}


def read_config(r: Reader, data: object, name: str) -> Config:
    top = r.mapping(data, (), {"apiVersion": REQUIRED, "kind": REQUIRED, "metadata": REQUIRED, "spec": {}})
    if top["apiVersion"] != API_VERSION:
        r.fail(("apiVersion",), f"expected {API_VERSION!r}, got {top['apiVersion']!r}")
    if top["kind"] != KIND:
        r.fail(("kind",), f"expected {KIND!r}, got {top['kind']!r}")
    meta = r.mapping(top["metadata"], ("metadata",), {"name": REQUIRED})
    spec = r.mapping(top["spec"], ("spec",), _SPEC_KEYS)
    p = ("spec",)
    several = spec["registries"] is not None
    np = r.mapping(spec["nodeProxy"], p + ("nodeProxy",),
                   {"enabled": True, "port": None, "hostIP": _NP.host_ip, "resources": None})
    if several:
        if np["port"] is not None:
            r.fail(p + ("nodeProxy", "port"), "with spec.registries, each registry has its own port")
        for key in ("registry", "readers", "writers"):
            if spec[key] is not None:
                r.fail(p + (key,), f"with spec.registries, set {key} on each registry (spec.registries[].{key})")
        registries = read_entries(r, spec["registries"], p + ("registries",))
    else:
        registries = (read_single(r, spec, 5000 if np["port"] is None else np["port"], p),)
    hosting = r.mapping(spec["localRegistryHosting"], p + ("localRegistryHosting",),
                        {"host": None, "help": LocalRegistryHosting.help, "publish": True})
    default = next(x for x in registries if x.default)
    _check_node_proxy_writes_nothing(r, spec, registries, several)
    return Config(
        name=r.string(meta["name"], ("metadata", "name"), names.check_label),
        namespace=r.string(spec["namespace"], p + ("namespace",), _check_namespace),
        trust_domain=r.string(spec["trustDomain"], p + ("trustDomain",), names.check_trust_domain),
        istio_revision=r.string(spec["istioRevision"], p + ("istioRevision",), names.check_label, nullable=True),
        registries=registries,
        node_proxy=NodeProxy(
            enabled=r.boolean(np["enabled"], p + ("nodeProxy", "enabled")), port=default.port,
            host_ip=r.string(np["hostIP"], p + ("nodeProxy", "hostIP"), names.check_loopback),
            resources=read_resources(r, np["resources"], p + ("nodeProxy", "resources"), _NP.resources)),
        local_registry_hosting=LocalRegistryHosting(
            host=r.string(hosting["host"], p + ("localRegistryHosting", "host"), _check_host, nullable=True),
            help=r.string(hosting["help"], p + ("localRegistryHosting", "help")),
            publish=r.boolean(hosting["publish"], p + ("localRegistryHosting", "publish"))),
        source=name,
    )


def _check_node_proxy_writes_nothing(r: Reader, spec: dict, registries, several: bool) -> None:
    """The node proxy serves unauthenticated reads: its identity must never be a writer or a publisher."""
    proxy = f"{spec['namespace']}/node-proxy"
    for i, reg in enumerate(registries):
        base = ("spec", "registries", i) if several else ("spec",)
        for j, writer in enumerate(reg.writers):
            if writer.service_account == proxy:
                r.fail(base + ("writers", j, "serviceAccount"),
                       f"{proxy!r} is the node proxy, which serves unauthenticated reads: it can never be a writer")
        if reg.publisher == proxy:
            r.fail(base + ("publisher",), f"{proxy!r} is the node proxy: it can never publish")


def _check_namespace(value: str) -> str | None:
    if value in ("kube-system", "kube-public", "kube-node-lease", "istio-system"):
        return f"{value!r} is reserved for the cluster or Istio; use a namespace of meshreg's own"
    return names.check_label(value)


def _check_host(value: str) -> str | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{value!r} is not HOST:PORT (e.g. localhost:5000)"
    return None

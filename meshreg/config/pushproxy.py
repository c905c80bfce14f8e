"""Reads each registry's `pushProxy` and checks it against the whole config.

The push proxy writes as its own identity, and who may reach it is Kubernetes RBAC on `pods/portforward` in its
namespace. RBAC cannot narrow that verb to some pods of a namespace, so the namespace must hold nothing else: not
the registry (a port-forward there bypasses every policy), not a writer or reader, not another push proxy. Its port
is also the address people push to (`localhost:PORT`), so it must not stand for another registry on the nodes.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from meshreg.config import names, scheduling
from meshreg.config.model import Registry
from meshreg.config.reader import Reader
from meshreg.config.registries import read_port, read_prefixes, read_resources, refuse_identity
from meshreg.config.source import Path

if TYPE_CHECKING:
    from meshreg.config.model import PushProxy

_KEYS = {"enabled": True, "repositories": None, "port": None, "namespace": None, "resources": None,
         **scheduling.KEYS}
_ROLE_BINDING_HINT = "the Role there lets its holders port-forward to every pod in it"


def read(r: Reader, spec: dict[str, Any], registries: tuple[Registry, ...], *, namespace: str, several: bool,
         node_proxy: bool) -> tuple[Registry, ...]:
    """The registries with their push proxies read from spec.pushProxy or spec.registries[].pushProxy."""
    raws = [entry.get("pushProxy") for entry in spec["registries"]] if several else [spec["pushProxy"]]
    paths: list[Path] = [("spec", "registries", i) if several else ("spec",) for i in range(len(registries))]
    read = []
    for reg, raw, base in zip(registries, raws, paths, strict=True):
        default = f"{namespace}-push-{reg.name}" if several else f"{namespace}-push"
        read.append(r.attempt(partial(_read_one, r, raw, base, reg=reg, default_namespace=default,
                                      namespace=namespace)))
    out = [replace(reg, push_proxy=proxy.value) for reg, proxy in zip(registries, read, strict=True)]
    with r.checks():
        _check_together(r, out, paths, node_proxy=node_proxy)
    return tuple(out)


def _read_one(r: Reader, raw: object, base: Path, *, reg: Registry, default_namespace: str,
              namespace: str) -> PushProxy | None:
    if not r.given(raw):
        return None
    from meshreg.config.model import PushProxy  # its model loads with a push proxy only

    path = base + ("pushProxy",)
    m = r.mapping(raw, path, _KEYS)
    if not r.boolean(m["enabled"], path + ("enabled",)):
        return None
    if reg.role == "mirror":
        r.fail(path, "a mirror is a read-only cache of its upstream: nobody writes it, so it has no push proxy")
    where = r.attempt(lambda: _namespace(r, m["namespace"], path, default=default_namespace,
                                         registry_namespace=namespace))
    repositories = r.attempt(lambda: _read_repositories(r, m["repositories"], path))
    port = r.attempt(lambda: reg.port if m["port"] is None else read_port(r, m["port"], path + ("port",)))
    resources = r.attempt(lambda: read_resources(r, m["resources"], path + ("resources",), PushProxy.resources))
    placed = r.attempt(lambda: scheduling.read(r, m, path))
    proxy = PushProxy(namespace=where.value, repositories=repositories.value, port=port.value,
                      resources=resources.value, scheduling=placed.value)
    if reg.role == "readonly" and reg.publisher != proxy.identity:
        r.fail(path, f"registry {reg.name} is readonly: only its publisher writes it. To load images through the "
                     f"push proxy, make the push proxy its publisher (publisher: {proxy.identity})")
    # It may be a readonly registry's publisher (see above), never a writer.
    refuse_identity(r, reg, base, proxy.identity, as_writer=f"{proxy.identity!r} is the push proxy: what it may "
                    "write is pushProxy.repositories, not a writers entry")
    return proxy


def _read_repositories(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    if value is None:
        r.fail(path, "missing required key 'repositories': the repository prefixes people may push to through "
                     "the push proxy, e.g. [\"dev/\"] (or [\"*\"] for every repository)")
    return read_prefixes(r, value, path + ("repositories",))


def _namespace(r: Reader, value: object, path: Path, *, default: str, registry_namespace: str) -> str:
    if value is None:
        if not names.is_label(default):
            r.fail(path, f"the default namespace {default!r} is not a valid name (at most 63 characters); "
                         "set pushProxy.namespace")
        return default
    where = path + ("namespace",)
    namespace = r.string(value, where, names.check_label)
    if namespace in names.RESERVED_NAMESPACES:
        r.fail(where, f"{namespace!r} is reserved for the cluster or Istio; the push proxy needs a namespace "
                      "of its own")
    if namespace == registry_namespace:
        r.fail(where, f"{namespace!r} is the registry's namespace: the push proxy needs a namespace of its own, "
                      f"because {_ROLE_BINDING_HINT} (a port-forward to the registry bypasses every policy)")
    return namespace


def _check_together(r: Reader, registries: list[Registry], paths: list[Path], *, node_proxy: bool) -> None:
    """Namespaces and ports unique among push proxies; no port that stands for another registry on the nodes;
    no writer, reader or publisher living in a push proxy's namespace."""
    seen_ns: dict[str, str] = {}
    seen_port: dict[int, str] = {}
    for reg, base in zip(registries, paths, strict=True):
        proxy = reg.push_proxy
        if proxy is None:
            continue
        path = base + ("pushProxy",)
        if proxy.namespace in seen_ns:
            r.record(path + ("namespace",), f"{proxy.namespace!r} is already the push-proxy namespace of "
                                            f"registry {seen_ns[proxy.namespace]}; {_ROLE_BINDING_HINT}, so each "
                                            "needs its own")
        _check_port(r, reg, registries, path + ("port",), seen=seen_port, node_proxy=node_proxy)
        seen_ns.setdefault(proxy.namespace, reg.name)
        seen_port.setdefault(proxy.port, reg.name)
        _check_alone(r, registries, proxy, path)


def _check_port(r: Reader, reg: Registry, registries: list[Registry], path: Path, *, seen: dict[int, str],
                node_proxy: bool) -> None:
    """A push proxy's port is no other push proxy's, nor (with a node proxy) another registry's node-proxy port."""
    assert reg.push_proxy is not None
    port = reg.push_proxy.port
    others = [o for o in registries if o is not reg and o.port == port]
    if port in seen:
        r.record(path, f"{port} is already the push-proxy port of registry {seen[port]}")
    elif node_proxy and others:
        r.record(path, f"{port} is the node-proxy port of registry {others[0].name}: localhost:{port} would name "
                       "another registry on the nodes")


def _check_alone(r: Reader, registries: list[Registry], proxy: PushProxy, path: Path) -> None:
    for reg in registries:
        identities = [w.service_account for w in reg.writers] + list(reg.readers) + [reg.publisher or ""]
        for identity in identities:
            if identity.split("/")[0] == proxy.namespace and identity != proxy.identity:
                r.record(path, f"namespace {proxy.namespace!r} also holds {identity} (of registry {reg.name}); the "
                               f"push proxy needs a namespace of its own, because {_ROLE_BINDING_HINT}")
                return

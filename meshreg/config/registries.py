"""Reads the registries of a config: the single-registry shape and `spec.registries`, checked alike."""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from meshreg.config import names, scheduling, storage
from meshreg.config.model import ROLES, Registry, Resources, Scheduling, Writer
from meshreg.config.reader import REQUIRED, Attempt, Reader
from meshreg.config.source import Path

if TYPE_CHECKING:
    from meshreg.config.model import Mirror

_D = Registry()
_REGISTRY_KEYS = {"image": _D.image, "storage": {}, "deleteEnabled": False, "resources": None, "replicas": 1,
                  "gc": None, "retention": None, **scheduling.KEYS}
_ENTRY_KEYS = {"name": REQUIRED, "role": "images", "default": False, "port": REQUIRED, **_REGISTRY_KEYS,
               "readers": ["*"], "writers": [], "publisher": None, "mirror": None, "pushProxy": None}
_RESERVED_NAMES = ("node-proxy", "local-registry-hosting", "push-proxy")


def read_single(r: Reader, spec: dict[str, Any], port: object, p: Path) -> Registry:
    """The original shape: spec.registry, spec.nodeProxy.port, spec.readers, spec.writers."""
    m = r.attempt(lambda: r.mapping(spec["registry"], p + ("registry",), _REGISTRY_KEYS))
    node_port = r.attempt(lambda: read_port(r, port, p + ("nodeProxy", "port")))
    delete_enabled = r.attempt(lambda: r.boolean(m.value["deleteEnabled"], p + ("registry", "deleteEnabled")))
    readers = spec["readers"] if spec["readers"] is not None else ["*"]
    read = r.attempt(lambda: _read_readers(r, readers, p + ("readers",)))
    writers = r.attempt(lambda: _read_writers(r, spec["writers"], p + ("writers",), delete_enabled.get(),
                                              "spec.registry.deleteEnabled"))
    shared = r.attempt(lambda: _read_storage_and_image(r, m.value, p + ("registry",)))
    reg = Registry(**shared.value, port=node_port.value, delete_enabled=delete_enabled.value, readers=read.value,
                   writers=writers.value)
    _check_gc(r, reg, p + ("registry",), delete_switch="spec.registry.deleteEnabled")
    return reg


def read_entries(r: Reader, value: object, path: Path) -> tuple[Registry, ...]:
    expected = "a non-empty list of registries ({name: ..., port: ..., role: images|readonly|mirror})"
    items = r.sequence(value, path, expected)
    if not items:
        r.fail(path, f"expected {expected}")
    read = r.each(items, path, lambda item, p: _read_entry(r, item, p, implicit_default=len(items) == 1))
    entries = [a.value for a in read]
    # The registries as a set, one kind of check at a time: each only once those before it passed.
    for check in (_check_unique, _check_derived_names, _check_one_default):
        with r.checks():
            check(r, entries, path)
    return tuple(entries)


def _check_one_default(r: Reader, entries: list[Registry], path: Path) -> None:
    defaults = [i for i, e in enumerate(entries) if e.default]
    if len(defaults) != 1:
        where = path + (defaults[1], "default") if defaults else path
        r.record(where, "exactly one registry must be `default: true` (it is published as local-registry-hosting)")


def _check_unique(r: Reader, entries: list[Registry], path: Path) -> None:
    """No two registries share a name or a node-proxy port."""
    for field, what in (("name", "name"), ("port", "node-proxy port")):
        seen: dict[object, int] = {}
        for i, entry in enumerate(entries):
            key = getattr(entry, field)
            if key in seen:
                r.record(path + (i, field), f"{key!r} is already the {what} of spec.registries[{seen[key]}]")
            seen.setdefault(key, i)


def _check_derived_names(r: Reader, entries: list[Registry], path: Path) -> None:
    """No registry takes a name meshreg derives from another one: a mirror's `<name>-upstream` Service, or the
    `<name>-gc` objects of a registry with gc."""
    upstream_names = {f"{e.name}-upstream": i for i, e in enumerate(entries) if e.mirror}
    for i, entry in enumerate(entries):
        if entry.name in upstream_names:
            r.record(path + (i, "name"), f"{entry.name!r} names the Service through which spec.registries"
                   f"[{upstream_names[entry.name]}] reaches its upstream; pick another name")
    taken = {e.name: i for i, e in enumerate(entries)}
    for i, entry in enumerate(entries):
        if entry.gc and f"{entry.name}-gc" in taken:
            r.record(path + (taken[f"{entry.name}-gc"], "name"), f"{entry.name}-gc names the gc objects of "
                   f"spec.registries[{i}]; pick another name")


def _read_entry(r: Reader, value: object, p: Path, *, implicit_default: bool) -> Registry:
    m = r.mapping(value, p, _ENTRY_KEYS)
    name = r.attempt(lambda: r.string(m["name"], p + ("name",), _check_registry_name))
    role = r.attempt(lambda: r.string(m["role"], p + ("role",), _check_role))
    default = r.attempt(lambda: r.boolean(m["default"], p + ("default",)))
    port = r.attempt(lambda: read_port(r, m["port"], p + ("port",)))
    shared = r.attempt(lambda: _read_storage_and_image(r, m, p))
    delete_enabled = r.attempt(lambda: r.boolean(m["deleteEnabled"], p + ("deleteEnabled",)))
    readers = r.attempt(lambda: _read_readers(r, m["readers"], p + ("readers",)))
    writers = r.attempt(lambda: _read_writers(r, m["writers"], p + ("writers",), delete_enabled.get(),
                                              "deleteEnabled of this registry"))
    publisher = r.attempt(lambda: r.string(m["publisher"], p + ("publisher",), names.check_identity, nullable=True))
    with r.guard():
        _check_who_writes(r, p, role=role.value, writers=writers.value, publisher=publisher.value)
    is_mirror = r.attempt(lambda: _check_mirror_settings(r, p, role=role.value, mirror=m["mirror"],
                                                         delete_enabled=delete_enabled.get()))
    mirror = r.attempt(lambda: _read_mirror(r, m["mirror"], p + ("mirror",)) if is_mirror.value else None)
    reg = Registry(
        name=name.value, role=role.value, default=default.value or implicit_default, port=port.value, **shared.value,
        delete_enabled=delete_enabled.value, readers=readers.value, writers=writers.value, publisher=publisher.value,
        mirror=mirror.value)
    _check_gc(r, reg, p, delete_switch="deleteEnabled")
    return reg


def _check_gc(r: Reader, reg: Registry, path: Path, *, delete_switch: str) -> None:
    if reg.gc or reg.retention:  # the gc reader, and the retention model, load with gc or retention only
        from meshreg.config import gc

        gc.check_gc(r, reg, path, delete_switch=delete_switch)


def _check_role(value: str) -> str | None:
    return None if value in ROLES else f"{value!r} is not a role (expected one of: {', '.join(ROLES)})"


def _check_who_writes(r: Reader, p: Path, *, role: str, writers: tuple[Writer, ...], publisher: str | None) -> None:
    """Writers belong to an images registry, a publisher to a readonly one."""
    if role != "images" and writers:
        r.fail(p + ("writers",), f"a {role} registry has no writers"
               + ("; name the one identity that loads images as publisher: NS/SA" if role == "readonly" else ""))
    if publisher and role != "readonly":
        r.fail(p + ("publisher",), f"only a readonly registry has a publisher (this one is {role}"
               + (": a mirror is read-only to everyone)" if role == "mirror" else "; list writers instead)"))


def _check_mirror_settings(r: Reader, p: Path, *, role: str, mirror: object, delete_enabled: bool | None) -> bool:
    """`mirror` settings exactly for a mirror, and a mirror deletes nothing; whether this registry is a mirror."""
    if role == "mirror" and delete_enabled:
        r.record(p + ("deleteEnabled",), "a mirror is a cache of its upstream: deleteEnabled must be false")
    if (not r.given(mirror)) == (role == "mirror"):
        r.fail(p + ("mirror",), "a mirror registry needs mirror: {upstream: https://...}" if role == "mirror"
               else f"mirror settings belong to role: mirror (this registry is {role})")
    return role == "mirror"


def _read_mirror(r: Reader, value: object, path: Path) -> Mirror:
    from meshreg.config.model import Mirror  # its model loads with mirrors only

    m = r.mapping(value, path, {"upstream": None, "credentialsSecret": None, "extraHosts": []})
    upstream = r.attempt(lambda: r.string(m["upstream"], path + ("upstream",), _check_url) if r.given(m["upstream"])
                         else r.fail(path, "missing required key 'upstream' (the URL of the registry to mirror, e.g. "
                                           "https://ghcr.io)"))
    secret = r.attempt(lambda: r.string(m["credentialsSecret"], path + ("credentialsSecret",),
                                        names.check_subdomain, nullable=True))
    hosts = r.attempt(lambda: r.strings(m["extraHosts"], path + ("extraHosts",), _check_hostname))
    return Mirror(upstream=upstream.value.rstrip("/"), credentials_secret=secret.value, extra_hosts=tuple(hosts.value))


def _read_storage_and_image(r: Reader, m: dict[str, Any], path: Path) -> dict[str, Any]:
    """The settings every registry shape shares: image, storage, replicas, resources, scheduling, gc and
    retention (gc's Job takes the registry's placement unless it has its own)."""
    where = r.attempt(lambda: storage.read_storage(r, m["storage"], path + ("storage",)))
    placed = r.attempt(lambda: scheduling.read(r, m, path))
    read: dict[str, Attempt[Any]] = {
        "image": r.attempt(lambda: r.string(m["image"], path + ("image",), names.check_image)), "storage": where,
        "replicas": r.attempt(lambda: storage.read_replicas(r, m["replicas"], path + ("replicas",), where.get())),
        "resources": r.attempt(lambda: read_resources(r, m["resources"], path + ("resources",), _D.resources)),
        "scheduling": placed,
        **_read_gc(r, m, path, placed)}
    return {key: attempt.value for key, attempt in read.items()}


def _read_gc(r: Reader, m: dict[str, Any], path: Path, placed: Attempt[Scheduling]) -> dict[str, Attempt[Any]]:
    """`gc` and `retention`, read by config.gc, which loads (with the retention model) only when one is set."""
    if m["gc"] is None and m["retention"] is None:
        return {"gc": Attempt(None, ok=True), "retention": Attempt(None, ok=True)}
    from meshreg.config import gc

    return {"gc": r.attempt(lambda: gc.read_gc(r, m["gc"], path + ("gc",), registry=placed.get() or Scheduling())),
            "retention": r.attempt(lambda: gc.read_retention(r, m["retention"], path + ("retention",)))}


def read_port(r: Reader, value: object, path: Path) -> int:
    port = r.integer(value, path, low=1024, high=65535)
    if port in names.ISTIO_RESERVED_PORTS:
        r.fail(path, f"{port} collides with a port the Istio proxy keeps for itself "
                     f"({', '.join(map(str, sorted(names.ISTIO_RESERVED_PORTS)))})")
    return port


def _read_readers(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    readers = r.strings(value, path, lambda v: names.check_identity(v, allow_wildcard=True))
    if "*" in readers and len(readers) > 1:
        r.fail(path, "'*' already admits every mesh identity; list it alone or list NS/SA entries")
    return tuple(readers)


def _read_writers(r: Reader, value: object, path: Path, delete_enabled: bool | None,
                  switch: str) -> tuple[Writer, ...]:
    """The writers; a DELETE grant needs `delete_enabled` (None: unknown, as it did not read)."""
    if not r.given(value):
        return ()
    items = r.sequence(value, path, "a list of writers ({serviceAccount: NS/SA, repositories: [...]})")
    read = r.each(items, path, lambda item, p: _read_writer(r, item, p, delete_enabled, switch))
    seen: dict[str, int] = {}
    with r.checks():
        for i, attempt in enumerate(read):
            sa = attempt.value.service_account if attempt.ok else None
            if sa in seen:
                r.record(path + (i, "serviceAccount"), f"{sa!r} is already a writer (writers[{seen[sa]}])")
            elif sa is not None:
                seen[sa] = i
    return tuple(a.value for a in read)


def _read_writer(r: Reader, value: object, p: Path, delete_enabled: bool | None, switch: str) -> Writer:
    m = r.mapping(value, p, {"serviceAccount": REQUIRED, "repositories": ["*"], "delete": False})
    sa = r.attempt(lambda: r.string(m["serviceAccount"], p + ("serviceAccount",), names.check_identity))
    delete = r.attempt(lambda: r.boolean(m["delete"], p + ("delete",)))
    repositories = r.attempt(lambda: read_prefixes(r, m["repositories"], p + ("repositories",)))
    if delete.get() and delete_enabled is False:
        r.fail(p + ("delete",), f"grants DELETE but {switch} is false; enable it first")
    return Writer(service_account=sa.value, repositories=repositories.value, delete=delete.value)


def read_prefixes(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    """A non-empty list of repository prefixes ("*" alone, or names), normalized to end in "/"."""
    repos = r.strings(value, path, names.check_repository_prefix)
    if not repos:
        r.fail(path, "empty: list \"*\" for every repository, or repository prefixes")
    if "*" in repos and len(repos) > 1:
        r.fail(path, "'*' already covers every repository; list it alone")
    normalized = sorted({names.normalize_prefix(x) for x in repos})
    if len(normalized) != len(repos):
        r.fail(path, "lists the same prefix twice (team-a and team-a/ are the same)")
    return tuple(normalized)


def read_resources(r: Reader, value: object, path: Path, default: Resources) -> Resources:
    if value is None:
        return default
    m = r.mapping(value, path, {"requests": {}, "limits": {}})
    out = {kind: r.attempt(partial(_read_amounts, r, m[kind], path + (kind,))) for kind in ("requests", "limits")}
    return Resources(requests=out["requests"].value, limits=out["limits"].value)


def _read_amounts(r: Reader, value: object, path: Path) -> dict[str, str]:
    amounts = r.mapping(value, path, {"cpu": None, "memory": None, "ephemeral-storage": None})
    read = {k: r.attempt(partial(r.string, v, path + (k,), names.check_quantity)) for k, v in amounts.items()
            if v is not None}
    return {k: attempt.value for k, attempt in read.items()}


def refuse_identity(r: Reader, reg: Registry, base: Path, identity: str, *, as_writer: str,
                    as_publisher: str | None = None) -> None:
    """`identity` is one meshreg deploys and scopes itself: fail at the entry of `reg` (at `base`) that lists it as a
    writer (message `as_writer`) or as the publisher (message `as_publisher`; None: it may publish)."""
    with r.checks():
        for j, writer in enumerate(reg.writers):
            if writer.service_account == identity:
                r.record(base + ("writers", j, "serviceAccount"), as_writer)
        if as_publisher is not None and reg.publisher == identity:
            r.record(base + ("publisher",), as_publisher)


def read_labels(r: Reader, labels: dict[str, Any], path: Path, *, expected_key: str, expected_value: str) -> None:
    """Each KEY: VALUE of `labels` (a mapping read at `path`) must be a label; `expected_*` close the messages."""
    def check_key(value: str) -> str | None:
        return names.check_label_key(value, expected=expected_key)

    def check_value(value: str) -> str | None:
        return names.check_label_value(value, expected=expected_value)

    with r.checks():
        for key, label in labels.items():
            r.attempt(partial(r.string, key, path + (key,), check_key))
            r.attempt(partial(r.string, label, path + (key,), check_value))


def _check_registry_name(value: str) -> str | None:
    if value.startswith(_RESERVED_NAMES):
        return f"{value!r} is reserved for meshreg's own objects; pick another name"
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", value):
        return (f"{value!r} is not a valid registry name (it names a Service: lowercase letters, digits and '-', "
                "starting with a letter, at most 40 characters)")
    return None


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path.strip("/") or parts.query:
        return f"{value!r} is not a registry URL (e.g. https://registry-1.docker.io, no path)"
    return _check_hostname(parts.hostname)


def _check_hostname(value: str) -> str | None:
    if not names.is_subdomain(value):
        return f"{value!r} is not a host name (lowercase DNS name)"
    return None

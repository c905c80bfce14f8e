"""Reads `spec.nodeProxy.runtimeConfig`: which container runtimes' directories the runtime config writes into."""

from __future__ import annotations

import posixpath
import re
from functools import partial

from meshreg.config import names
from meshreg.config.model import RUNTIMES, RuntimeConfig
from meshreg.config.reader import Reader
from meshreg.config.registries import read_resources
from meshreg.config.scheduling import read_node_selector
from meshreg.config.source import Path

_D = RuntimeConfig()
# Each runtime: the key naming its directory, and that directory's usual place on a node.
DIRECTORY_KEYS = {"containerd": ("configPath", "/etc/containerd/certs.d"),
                  "crio": ("registriesDir", "/etc/containers/registries.conf.d")}
_KEYS: dict[str, object] = {"containerd": {}, "crio": {}, "image": _D.image, "resources": None, "nodeSelector": {}}
_PATH = re.compile(r"/[A-Za-z0-9._@+=,:/-]+")


def read_runtime_config(r: Reader, value: object, path: Path, *, node_proxy: bool | None) -> RuntimeConfig:
    """The runtimeConfig mapping (absent: nothing is written on nodes); `node_proxy`: whether the node proxy is
    enabled (None: unknown, as spec.nodeProxy.enabled did not read)."""
    if value is None:
        return _D
    m = r.mapping(value, path, _KEYS)
    read = [r.attempt(partial(_read_directory, r, m[runtime], path + (runtime,), runtime, node_proxy=node_proxy))
            for runtime in RUNTIMES]
    image = r.attempt(lambda: r.string(m["image"], path + ("image",), names.check_image))
    resources = r.attempt(lambda: read_resources(r, m["resources"], path + ("resources",), _D.resources))
    selector = r.attempt(lambda: read_node_selector(r, m["nodeSelector"], path + ("nodeSelector",)))
    directories = [(runtime, directory) for runtime, a in zip(RUNTIMES, read, strict=True)
                   if (directory := a.value) is not None]
    _check_apart(r, directories, path)
    return RuntimeConfig(directories=tuple(directories), image=image.value, resources=resources.value,
                         node_selector=selector.value)


def _read_directory(r: Reader, value: object, p: Path, runtime: str, *, node_proxy: bool | None) -> str | None:
    """The directory a runtime's entry enables (None: not enabled)."""
    key, default = DIRECTORY_KEYS[runtime]
    entry = r.mapping(value, p, {"enabled": False, key: default})
    if not r.boolean(entry["enabled"], p + ("enabled",)):
        return None
    if node_proxy is False:
        r.fail(p + ("enabled",), "writes runtime configuration for the node proxy's ports, but "
                                 "spec.nodeProxy.enabled is false: enable the node proxy or remove this")
    return r.string(entry[key], p + (key,), check_directory)


def check_directory(value: str) -> str | None:
    """None if `value` is a plain absolute directory other than /, else what is wrong."""
    if not value.startswith("/"):
        return f"{value!r} is not an absolute path (the directory on each node, e.g. /etc/containerd/certs.d)"
    if not _PATH.fullmatch(value) or posixpath.normpath(value) != value or value == "/":
        return (f"{value!r} is not a plain directory path (no '..', '.', '//', trailing '/', spaces or the root "
                "itself)")
    return None


def _check_apart(r: Reader, directories: list[tuple[str, str]], path: Path) -> None:
    """Two runtimes writing into the same directory (or one inside the other) would share a marker file."""
    if len(directories) < 2:
        return
    (first, a), (second, b) = directories
    if a == b or b.startswith(a + "/") or a.startswith(b + "/"):
        r.fail(path + (second, DIRECTORY_KEYS[second][0]),
               f"{b!r} overlaps {first}'s directory {a!r}: give each runtime its own directory")

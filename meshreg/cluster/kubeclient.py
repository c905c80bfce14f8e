"""The two parts of the official Kubernetes client that meshreg uses, `kubernetes.client` (its Configuration and
ApiClient) and `kubernetes.config` (the kubeconfig and in-cluster loaders), loaded without the rest of the package.

`import kubernetes` runs the package's `__init__`, which imports every part of the client whether it is used or not:
the dynamic client (and with it kubernetes-validate and jsonschema, where they are installed), watch, stream (and the
websocket client), leader election, informers and utils. That is 30 ms of every cluster command, where the whole
idempotent `up` on a local API server takes 300 ms. So the package's module is made from its spec without running
its `__init__`, and its parts load when they are first used: as an import (`from kubernetes import watch`) or as an
attribute (`kubernetes.dynamic`). Code in the same process that uses the package as usual sees no difference.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

PACKAGE = "kubernetes"


def parts() -> tuple[Any, Any]:
    """(kubernetes.client, kubernetes.config), loading only those two and what they import."""
    if PACKAGE not in sys.modules:
        _install_package()
    from kubernetes import client, config

    return client, config


def _install_package() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed as a package: the import in parts() says so, as it would anyway
    package = importlib.util.module_from_spec(spec)
    package.__getattr__ = _part  # type: ignore[method-assign]  # PEP 562: a module's missing attributes
    sys.modules[PACKAGE] = package


def _part(name: str) -> Any:
    """A part the package's `__init__` would have imported (`kubernetes.watch`), imported now."""
    if name == "__version__":
        from importlib.metadata import version

        return version(PACKAGE)
    if name.startswith("__"):
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    try:
        return importlib.import_module(f"{PACKAGE}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{PACKAGE}.{name}":
            raise  # the part exists but one of its own imports is missing: that is the error to see
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

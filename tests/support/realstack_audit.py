"""The audit provider in the real stack's mesh config, for the time a test needs it.

The lab's istiod reads its mesh config from a file (`$LAB_ISTIO/mesh/run/mesh.yaml`, copied from ConfigMap
istio-system/istio when it started, and watched), while `meshreg doctor` reads the ConfigMap, as it does on an
istioctl or Helm install where istiod watches the ConfigMap itself. So the entry `meshreg audit --mesh-config` prints
is added to both, and removed from both afterwards. An extension provider that no Telemetry names changes nothing for
any other proxy, and `accessLogFile: /dev/stdout` stays as it is: other users of the shared stack see the same logs.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from meshreg.audit import provider

ISTIOD_DEBUG = "http://127.0.0.1:15014/debug/mesh"  # the lab's istiod serves its monitoring port on loopback


def _with(text: str, entry: dict[str, Any]) -> str:
    """`text` (the mesh config as YAML, comments kept) with `entry` in extensionProviders."""
    mesh = yaml.safe_load(text) or {}
    assert "extensionProviders" not in mesh, "the lab's mesh config has extension providers of its own: merge by hand"
    return text.rstrip("\n") + "\n" + yaml.safe_dump({"extensionProviders": [entry]}, sort_keys=False, width=200)


def active_providers() -> list[str]:
    """The extension providers the running istiod uses."""
    with urllib.request.urlopen(ISTIOD_DEBUG, timeout=10) as answer:
        return [p["name"] for p in json.load(answer).get("extensionProviders", [])]


def _wait_until(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"istiod did not {what} within {timeout:.0f}s ({ISTIOD_DEBUG})")
        time.sleep(1)


@contextmanager
def audit_provider(stack: Any, name: str = "meshreg-audit") -> Iterator[None]:
    """The audit provider in the ConfigMap and in istiod's file while the block runs; both restored after."""
    cm = json.loads(stack.kubectl("-n", "istio-system", "get", "configmap", "istio", "-o", "json").stdout)
    original = cm["data"]["mesh"]
    changed = _with(original, provider(name))
    mesh_file = Path(stack.lab_istio) / "mesh" / "run" / "mesh.yaml"
    file_original = mesh_file.read_text()

    def write(text: str, file_text: str) -> None:
        patch = json.dumps({"data": {"mesh": text}})
        stack.kubectl("-n", "istio-system", "patch", "configmap", "istio", "--type", "merge", "-p", patch)
        mesh_file.write_text(file_text)

    write(changed, _with(file_original, provider(name)))
    try:
        _wait_until(lambda: name in active_providers(), f"pick up extension provider {name}")
        yield
    finally:
        write(original, file_original)
        _wait_until(lambda: name not in active_providers(), f"drop extension provider {name}")

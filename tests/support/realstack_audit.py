"""The audit provider in the real stack's mesh config, for the time a test needs it.

The lab's istiod reads its mesh config from a file (`$LAB_ISTIO/mesh/run/mesh.yaml`, copied from ConfigMap
istio-system/istio when it started, and watched), while `meshreg doctor` reads the ConfigMap, as it does on an
istioctl or Helm install where istiod watches the ConfigMap itself. So the entry `meshreg audit --mesh-config` prints
is added to both, and removed from both afterwards. An extension provider that no Telemetry names changes nothing for
any other proxy, and `accessLogFile: /dev/stdout` stays as it is: other users of the shared stack see the same logs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from meshreg.audit import provider
from support.paths import ROOT

ISTIOD_DEBUG = "http://127.0.0.1:15014/debug/mesh"  # the lab's istiod serves its monitoring port on loopback
DATA = Path("/tmp/meshreg-audit-realstack")  # the volumes' directories


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


def meshreg(*args: str, stack: Any, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "meshreg", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=stack.env(PYTHONPATH=str(ROOT)))
    assert not check or done.returncode == 0, f"meshreg {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def volume(stack: Any, name: str, namespace: str, claim: str) -> dict:
    """A hostPath PersistentVolume for one claim, pinned to the node (the lab has no provisioner)."""
    path = DATA / name
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, 1000, 1000)  # the registry runs as uid 1000; hostPath ignores fsGroup
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(path), "type": "Directory"},
                     "claimRef": {"namespace": namespace, "name": claim},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [stack.node]}]}]}}}}

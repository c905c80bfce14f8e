"""Runs the rendered runtime config outside a cluster: the ConfigMap laid out as the kubelet projects it, and the
ConfigMap's own script run with the container's environment, against any directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from meshreg.render import runtimeconfig


def one(objects: list[dict], kind: str) -> dict:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == runtimeconfig.NAME]
    return obj


def project(objects: list[dict], mount: Path) -> None:
    """Write the ConfigMap volume as the kubelet does: each item's key at its path under `mount`."""
    data = one(objects, "ConfigMap")["data"]
    [volume] = [v for v in one(objects, "DaemonSet")["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    for item in volume["configMap"]["items"]:
        path = mount / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item["key"]])


def environment(objects: list[dict], runtime: str, *, mount: Path, target: Path, owner: str) -> dict:
    """The container's environment, with the mount and the runtime's directory moved to `mount` and `target`."""
    [container] = [c for c in one(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"]
                   if c["name"] == runtime]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["MESHREG_SOURCE"] = env["MESHREG_SOURCE"].replace(runtimeconfig.MOUNT, str(mount), 1)
    return {**env, "MESHREG_TARGET": str(target), "MESHREG_OWNER": owner}


def run(mount: Path, env: dict, command: str, *, shell: str = "sh") -> subprocess.CompletedProcess:
    """`sh <the ConfigMap's script> COMMAND` with `env`, as the container runs it."""
    return subprocess.run([*shell.split(), str(mount / runtimeconfig.SCRIPT), command], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)

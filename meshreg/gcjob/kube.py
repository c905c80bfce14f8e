"""The registry's read-only switch, from inside the gc Job: server-side apply on its Deployment, then wait.

distribution reads its configuration once, at start, so read-only maintenance mode means new pods: the Job
applies an environment variable `REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled": true}` to the registry
container under its own field manager, and removes it (by applying without it) afterwards. With a volume the
pods are also pinned to the Job's node, where the ReadWriteOnce volume is already attached.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

READ_ONLY = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
READ_ONLY_VALUE = '{"enabled": true}'  # a map: distribution panics on ..._READONLY_ENABLED=true
MANAGER = "meshreg-gc"
ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeError(Exception):
    """The API server refused or could not be reached."""


class Api:
    """In-cluster credentials by default; `url` (plain HTTP, no token) for a local stand-in."""

    def __init__(self, url: str | None = None) -> None:
        self.headers: dict[str, str]
        self.context: ssl.SSLContext | None
        if url:
            self.base, self.headers, self.context = url.rstrip("/"), {}, None
            return
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.base = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        with open(f"{ACCOUNT}/token", encoding="utf-8") as f:
            self.headers = {"Authorization": f"Bearer {f.read().strip()}"}
        self.context = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             content_type: str | None = None) -> dict[str, Any]:
        """One request; the answer's JSON ({} when empty); KubeError for an error status or no answer."""
        headers = {**self.headers, "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as e:
            message = e.read(500).decode("utf-8", "replace")
            raise KubeError(f"{method} {path}: HTTP {e.code}: {message}") from e
        except (urllib.error.URLError, OSError) as e:
            raise KubeError(f"{method} {path}: {getattr(e, 'reason', e)}") from e


    def text(self, path: str) -> str:
        """A plain-text answer (a container's log); KubeError as for call."""
        request = urllib.request.Request(self.base + path, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as response:
                return str(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            raise KubeError(f"GET {path}: HTTP {e.code}: {e.read(500).decode('utf-8', 'replace')}") from e
        except (urllib.error.URLError, OSError) as e:
            raise KubeError(f"GET {path}: {getattr(e, 'reason', e)}") from e


def deployment_path(namespace: str, name: str) -> str:
    """The API path of a Deployment."""
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def switch(api: Api, *, namespace: str, name: str, read_only: bool, node: str | None) -> dict[str, Any]:
    """Apply (or withdraw) the read-only variable, and the node pin when `node` is given; the new Deployment."""
    container: dict[str, Any] = {"name": "registry"}
    spec: dict[str, Any] = {"containers": [container]}
    if read_only:
        container["env"] = [{"name": READ_ONLY, "value": READ_ONLY_VALUE}]
        if node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": spec}}}
    path = deployment_path(namespace, name) + f"?fieldManager={MANAGER}&force=true"
    return api.call("PATCH", path, body, "application/apply-patch+yaml")


def rolled_out(deployment: dict[str, Any]) -> bool:
    """Every pod of the Deployment runs the current template, and no other pod is left."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
            and status.get("updatedReplicas", 0) == want and status.get("availableReplicas", 0) == want
            and status.get("replicas", 0) == want)


def wait(api: Api, *, namespace: str, name: str, timeout: float, say: Callable[[str], None] = print,
         interval: float = 2.0) -> None:
    """Until the Deployment has rolled out; KubeError after `timeout` seconds, with its replica counts."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = api.call("GET", deployment_path(namespace, name))
        if rolled_out(deployment):
            return
        if time.monotonic() > deadline:
            status = deployment.get("status") or {}
            raise KubeError(f"Deployment {namespace}/{name} did not roll out in {timeout:.0f}s "
                            f"(updated {status.get('updatedReplicas', 0)}, available "
                            f"{status.get('availableReplicas', 0)}, total {status.get('replicas', 0)})")
        say(f"waiting for Deployment {namespace}/{name} to roll out")
        time.sleep(interval)

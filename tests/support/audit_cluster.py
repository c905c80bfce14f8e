"""A fake cluster after `meshreg up` with audit records in its proxies' logs, as the kubelet hands them out."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml

from meshreg import config
from meshreg.audit import provider
from meshreg.render import render
from support.fakes import MESH, FakeCluster

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
REFUSAL = dict(method="POST", path="/v2/team-b%2Fapp/blobs/uploads/", code=403, digest=None, location=None,
               details="rbac_access_denied_matched_policy[ns[meshreg]-policy[registry-deny-writes]-rule[1]]",
               peer="spiffe://cluster.local/ns/team-a/sa/builder", time="2026-12-06T07:10:00.000Z")
REGISTRY_POD = {"app.kubernetes.io/instance": "meshreg", "app.kubernetes.io/name": "registry",
                "meshreg.dev/registry": "registry"}
SIDECAR_LOG = ("meshreg", "registry-1", "istio-proxy")


def stamped(*lines: str, start: str = "2026-12-06T07:00:00.000000000Z") -> str:
    """A log as the kubelet sends it with timestamps: the proxy's start-up line first, then `lines`."""
    out = [f"{start} 2026-12-06T07:00:00.000Z\tinfo\tFLAG: --concurrency=\"2\""]
    for text in lines:
        when = json.loads(text)["time"] if text.startswith("{") else "2026-12-06T07:30:00.000Z"
        out.append(f"{when[:-1]}123456Z {text}")
    return "\n".join(out) + "\n"


def pod(name: str, labels: dict, *, ns: str = "meshreg", started: str = "2026-12-06T07:00:00Z",
        restarts: int = 0) -> dict:
    """A running pod whose istio-proxy started at `started` and restarted `restarts` times."""
    status: dict = {"name": "istio-proxy", "restartCount": restarts, "state": {"running": {"startedAt": started}}}
    if restarts:
        status["lastState"] = {"terminated": {"exitCode": 0, "startedAt": "2026-12-06T06:00:00Z"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "status": {"phase": "Running", "containerStatuses": [status]}}


def with_provider(cluster: FakeCluster) -> None:
    """The mesh config with meshreg's audit provider."""
    mesh = {**yaml.safe_load(MESH["data"]["mesh"]), "extensionProviders": [provider("meshreg-audit")]}
    cluster.put({**MESH, "data": {"mesh": yaml.safe_dump(mesh)}})


def deployed(cluster: FakeCluster, cfg: config.Config = config.DEFAULT) -> FakeCluster:
    """`cluster` with the render of `cfg`, the provider in the mesh config and one registry pod, registry-1."""
    for obj in render(cfg):
        cluster.put(obj)
    with_provider(cluster)
    cluster.put(pod("registry-1", REGISTRY_POD))
    return cluster

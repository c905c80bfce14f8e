"""The node proxy pod on each node, as `status` explains it: since when it serves (or not), and why not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from meshreg.cluster.api import Object
from meshreg.status.report import NodeProxyPod

__all__ = ["RECENT", "notable", "pod_state"]

RECENT = timedelta(minutes=30)  # a node proxy that became ready this recently was not serving before: say when


def pod_state(pod: Object) -> NodeProxyPod:
    """One node proxy pod: its node, readiness and since when, creation, restarts, and why it is not ready."""
    meta, spec, status = _part(pod, "metadata"), _part(pod, "spec"), _part(pod, "status")
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    containers: list[dict[str, Any]] = status.get("containerStatuses") or []
    is_ready = ready.get("status") == "True" and not meta.get("deletionTimestamp")
    return NodeProxyPod(node=str(spec.get("nodeName") or "(not scheduled)"), pod=str(meta.get("name", "")),
                        ready=is_ready, since=_since(meta, ready), created=meta.get("creationTimestamp"),
                        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
                        why=None if is_ready else _why(meta, containers, ready))


def _since(meta: dict[str, Any], ready: dict[str, Any]) -> str | None:
    """When the pod was deleted (its deletionTimestamp is when the grace period ends), else when its Ready condition
    last changed."""
    if meta.get("deletionTimestamp"):
        grace = timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
        return (_parse(str(meta["deletionTimestamp"])) - grace).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = ready.get("lastTransitionTime")
    return str(stamp) if stamp else None


def _part(obj: Object, key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _why(meta: dict[str, Any], containers: list[dict[str, Any]], ready: dict[str, Any]) -> str:
    if meta.get("deletionTimestamp"):
        return "terminating (deleted: the node has no node proxy until its replacement is ready)"
    for c in containers:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            return f"{c.get('name')}: {waiting.get('reason', 'waiting')}"
        if not c.get("ready"):
            return f"{c.get('name')}: not ready"
    return str(ready.get("reason") or "starting")


def notable(pods: tuple[NodeProxyPod, ...], *, now: datetime | None = None) -> list[NodeProxyPod]:
    """The pods worth a line in `status`: every pod when any is not ready, restarted, or shares its node with another
    (one replacing the other), else those that became ready within RECENT (a pull that failed before then is
    explained by it)."""
    nodes = [p.node for p in pods]
    if any(not p.ready or p.restarts or nodes.count(p.node) > 1 for p in pods):
        return list(pods)
    now = now or datetime.now(timezone.utc)
    return [p for p in pods if p.since and now - _parse(p.since) < RECENT]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

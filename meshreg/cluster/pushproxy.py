"""Push proxies in a live cluster: their namespaces hold nothing else, and which of their pods is ready.

The Role in a push proxy's namespace lets its holders port-forward to every pod there, so `up` refuses to deploy
into a namespace that already runs pods meshreg does not manage, and `connect` forwards only to a ready pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.errors import PermissionDenied
from meshreg.config import PUSH_PROXY
from meshreg.errors import ClusterError
from meshreg.render.labels import INSTANCE, NAME


@dataclass(frozen=True)
class Target:
    """Where a registry's push proxy runs: its namespace, its pods' label selector, its port, its Role."""

    registry: str
    namespace: str
    selector: str
    port: int
    role: str


def check_alone(*, cluster: ClusterClient, instance: str, namespaces: Iterable[str]) -> None:
    """ClusterError (before anything is applied) when a push-proxy namespace runs pods that are not its own."""
    for namespace in namespaces:
        strangers = sorted(p["metadata"]["name"] for p in cluster.list("v1", "Pod", namespace=namespace)
                           if not _ours(p, instance))
        if strangers:
            shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
            raise ClusterError(f"namespace {namespace} runs pods meshreg does not manage ({shown}); the push "
                               "proxy needs a namespace of its own, because the Role there lets its holders "
                               "port-forward to every pod in it: set pushProxy.namespace to an unused name")


def _ours(pod: Object, instance: str) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return labels.get(INSTANCE) == instance and labels.get(NAME) == PUSH_PROXY


def is_ready(pod: Object | None) -> bool:
    """Running, Ready, and not on its way out."""
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return status.get("phase") == "Running" and conditions.get("Ready") == "True"


def ready_pod(*, cluster: ClusterClient, target: Target) -> str:
    """The newest ready push-proxy pod (it lives longest through a rollout); ClusterError saying why there is none."""
    try:
        pods = cluster.list("v1", "Pod", namespace=target.namespace, label_selector=target.selector)
    except ClusterError as e:
        raise ClusterError(f"{e}{forbidden_hint(e, target)}") from e
    ready = sorted((p for p in pods if is_ready(p)),
                   key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    if ready:
        return ready[-1]["metadata"]["name"]
    if not pods:
        raise ClusterError(f"no push-proxy pod in namespace {target.namespace} (registry {target.registry}); "
                           "run meshreg up, then meshreg status")
    names = ", ".join(f"{p['metadata']['name']} ({(p.get('status') or {}).get('phase', 'unknown')})" for p in pods)
    raise ClusterError(f"no ready push-proxy pod in namespace {target.namespace}: {names}; see meshreg status")


def forbidden_hint(error: ClusterError, target: Target) -> str:
    """Which Role to ask for, when RBAC refused a request about the push proxy's pods; "" for any other error."""
    if not isinstance(error, PermissionDenied):
        return ""
    return (f" (pushing through the push proxy needs the Role {target.role} in namespace {target.namespace}; "
            f"an admin grants it with: kubectl -n {target.namespace} create rolebinding NAME "
            f"--role={target.role} --user=YOU)")

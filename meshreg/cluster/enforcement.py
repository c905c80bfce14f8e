"""Whether Istio enforces anything on what `up` deployed: a registry pod without the istio-proxy sidecar takes
plaintext from any pod (no mTLS, no AuthorizationPolicy), and a node-proxy pod the injector skipped has no proxy at
all. `up` reports success only when every registry pod carries the sidecar and every node-proxy pod was injected."""

from __future__ import annotations

from collections.abc import Callable

from meshreg.cluster import parallel, selectors
from meshreg.cluster.api import ClusterClient, Object
from meshreg.errors import ClusterError
from meshreg.render.labels import REGISTRY

SIDECAR = "istio-proxy"
DATAPLANE_MODE = "istio.io/dataplane-mode"
SHOWN = 3  # pods named per problem; the count says how many more
INJECTION_FIX = ("Fix sidecar injection (the namespace's istio-injection or istio.io/rev label must match a running "
                 "istiod's injector, and no sidecar.istio.io/inject: \"false\" on the pods)")
AMBIENT_FIX = ("Fix ambient capture (the namespace needs istio.io/dataplane-mode=ambient, and istio-cni and ztunnel "
               "must run on the pods' nodes)")
CAPTURED = "ambient.istio.io/redirection"  # istio-cni's annotation on a pod ztunnel captures: "enabled"


def captured(pod: Object) -> bool:
    """Whether istio-cni handed the pod to ztunnel (the in-mesh state of an ambient pod)."""
    return (pod["metadata"].get("annotations") or {}).get(CAPTURED) == "enabled"


def has_sidecar(pod: Object) -> bool:
    """The pod carries Istio's proxy: an `istio-proxy` container, or a native sidecar (an init container with
    restartPolicy: Always, as Istio injects with ENABLE_NATIVE_SIDECARS)."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == SIDECAR for c in spec.get("containers") or []) or any(
        c.get("name") == SIDECAR and c.get("restartPolicy") == "Always" for c in spec.get("initContainers") or [])


def gateway_injected(pod: Object) -> bool:
    """The injector filled in the gateway: its `istio-proxy` container no longer has the placeholder image `auto`."""
    return any(c.get("name") == SIDECAR and c.get("image") not in (None, "", "auto")
               for c in (pod.get("spec") or {}).get("containers") or [])


def _is_gateway(workload: Object) -> bool:
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("annotations") or {}).get("inject.istio.io/templates") == "gateway"


def _enforced_by(workload: Object, ambient_namespaces: set[str]) -> str | None:
    """What must enforce on the workload's pods: its gateway proxy, its sidecar, ztunnel (an ambient registry), or
    nothing (kept out of the mesh on purpose, as the runtime config's pods)."""
    if _is_gateway(workload):
        return "gateway"
    labels = (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    if labels.get("sidecar.istio.io/inject") != "false":
        return "sidecar"
    in_ambient = workload["metadata"].get("namespace") in ambient_namespaces
    return "ztunnel" if in_ambient and REGISTRY in labels else None


def _running(pod: Object) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


# what enforces on a workload's pods -> whether it is in place on a pod
IN_PLACE: dict[str, Callable[[Object], bool]] = {"gateway": gateway_injected, "sidecar": has_sidecar,
                                                 "ztunnel": captured}


def check(*, cluster: ClusterClient, manifests: list[Object]) -> None:
    """Raise ClusterError, saying why and what to do, unless every pod of the rendered Deployments carries the
    sidecar and every pod of the rendered gateway DaemonSets was injected."""
    ambient_namespaces = _ambient_namespaces(manifests)
    workloads = [o for o in manifests if o["kind"] in ("Deployment", "DaemonSet")
                 and _enforced_by(o, ambient_namespaces) is not None]
    pods = parallel.values(lambda w: cluster.list("v1", "Pod", namespace=w["metadata"]["namespace"],
                                                  label_selector=selectors.of(w)), workloads)
    problems: list[str] = []
    restart: list[str] = []
    by: set[str] = set()
    for workload, found in zip(workloads, pods, strict=True):
        enforced = _enforced_by(workload, ambient_namespaces) or ""
        bad = _not_in_place(found, enforced)
        if bad:
            problems.append(_problem(workload, bad, gateway=enforced == "gateway", ambient=enforced == "ztunnel"))
            restart.append(f"{workload['kind'].lower()}/{workload['metadata']['name']}")
            by.add(enforced)
    if problems:
        raise _not_enforced(problems, restart=restart, by=by, namespace=workloads[0]["metadata"]["namespace"])


def _not_in_place(pods: list[Object], enforced: str) -> list[Object]:
    """The running pods on which what must enforce (`enforced`: gateway, sidecar or ztunnel) is not in place."""
    return [p for p in pods if _running(p) and not IN_PLACE[enforced](p)]


def _ambient_namespaces(manifests: list[Object]) -> set[str]:
    """The rendered Namespaces in ambient mode: ztunnel enforces there, on the pods without a sidecar."""
    return {o["metadata"]["name"] for o in manifests if o["kind"] == "Namespace" and
            (o["metadata"].get("labels") or {}).get(DATAPLANE_MODE) == "ambient"}


def _not_enforced(problems: list[str], *, restart: list[str], by: set[str], namespace: str) -> ClusterError:
    """Every problem, how to fix what causes them, and how to restart the pods once it is fixed."""
    fixes = ([INJECTION_FIX] if by & {"sidecar", "gateway"} else []) + ([AMBIENT_FIX] if "ztunnel" in by else [])
    return ClusterError("not enforced: " + "; ".join(problems) + ". " + " and ".join(fixes) + ", then restart "
                        f"the pods: kubectl -n {namespace} rollout restart {' '.join(restart)}")


def _problem(workload: Object, bad: list[Object], *, gateway: bool, ambient: bool = False) -> str:
    names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in bad[:SHOWN])
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    several = len(bad) > 1
    pods = f"{workload['metadata']['name']} pod{'s' if several else ''} {names}{more}"
    if ambient:
        return (f"{pods} {'are' if several else 'is'} not captured by ztunnel ({CAPTURED} is not enabled), so "
                "nothing enforces mTLS or the AuthorizationPolicies there")
    if gateway:
        return (f"{pods} {'were' if several else 'was'} not injected as an Istio gateway (istio-proxy still has the "
                "placeholder image auto), so no proxy serves the node-local port")
    return (f"{pods} {'have' if several else 'has'} no istio-proxy sidecar, so nothing enforces mTLS or the "
            "AuthorizationPolicies there: any pod can push")

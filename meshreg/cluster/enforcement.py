"""Whether Istio enforces anything on what `up` deployed: a registry pod without the istio-proxy sidecar takes
plaintext from any pod (no mTLS, no AuthorizationPolicy), and a node-proxy pod the injector skipped has no proxy at
all. `up` reports success only when every registry pod carries the sidecar and every node-proxy pod was injected."""

from __future__ import annotations

from meshreg.cluster import parallel
from meshreg.errors import ClusterError

SIDECAR = "istio-proxy"
SHOWN = 3  # pods named per problem; the count says how many more


def has_sidecar(pod: dict) -> bool:
    """The pod carries Istio's proxy: an `istio-proxy` container, or a native sidecar (an init container with
    restartPolicy: Always, as Istio injects with ENABLE_NATIVE_SIDECARS)."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == SIDECAR for c in spec.get("containers") or []) or any(
        c.get("name") == SIDECAR and c.get("restartPolicy") == "Always" for c in spec.get("initContainers") or [])


def gateway_injected(pod: dict) -> bool:
    """The injector filled in the gateway: its `istio-proxy` container no longer has the placeholder image `auto`."""
    return any(c.get("name") == SIDECAR and c.get("image") not in (None, "", "auto")
               for c in (pod.get("spec") or {}).get("containers") or [])


def _selector(workload: dict) -> str:
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _is_gateway(workload: dict) -> bool:
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (template.get("annotations") or {}).get("inject.istio.io/templates") == "gateway"


def _running(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


def check(*, cluster, manifests) -> None:
    """Raise ClusterError, saying why and what to do, unless every pod of the rendered Deployments carries the
    sidecar and every pod of the rendered gateway DaemonSets was injected."""
    workloads = [o for o in manifests if o["kind"] in ("Deployment", "DaemonSet")]
    pods = parallel.values(lambda w: cluster.list("v1", "Pod", namespace=w["metadata"]["namespace"],
                                                  label_selector=_selector(w)), workloads)
    problems, restart = [], []
    for workload, found in zip(workloads, pods):
        found = [p for p in found if _running(p)]
        gateway = _is_gateway(workload)
        bad = [p for p in found if not (gateway_injected(p) if gateway else has_sidecar(p))]
        if bad:
            problems.append(_problem(workload, bad, gateway=gateway))
            restart.append(f"{workload['kind'].lower()}/{workload['metadata']['name']}")
    if problems:
        namespace = workloads[0]["metadata"]["namespace"]
        raise ClusterError(
            "not enforced: " + "; ".join(problems) + ". Fix sidecar injection (the namespace's istio-injection or "
            "istio.io/rev label must match a running istiod's injector, and no sidecar.istio.io/inject: \"false\" "
            f"on the pods), then restart the pods: kubectl -n {namespace} rollout restart {' '.join(restart)}")


def _problem(workload: dict, bad: list, *, gateway: bool) -> str:
    names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in bad[:SHOWN])
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    name = workload["metadata"]["name"]
    if gateway:
        return (f"{name} pod{'s' if len(bad) > 1 else ''} {names}{more} {'were' if len(bad) > 1 else 'was'} "
                "not injected as an Istio gateway "
                f"(istio-proxy still has the placeholder image auto), so no proxy serves the node-local port")
    return (f"{name} pod{'s' if len(bad) > 1 else ''} {names}{more} "
            f"{'have' if len(bad) > 1 else 'has'} no istio-proxy sidecar, so nothing enforces mTLS or the "
            "AuthorizationPolicies there: any pod can push")

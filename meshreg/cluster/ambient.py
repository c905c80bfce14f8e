"""What ambient mode needs from a cluster, checked before `up` writes anything (doctor's `ambient` group, part of
up's preflight), and the ambient part of `status`: the Gateway API, Istio's istio-waypoint GatewayClass, ztunnel on
the nodes, an injector for the node proxy; then whether the waypoint is programmed.

`checks(...)` and `status(...)` take the rendered manifests, so they say nothing (and send no request) for a
sidecar-mode render.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.cluster.wait import rollout
from meshreg.errors import ClusterError

GATEWAY_API = "gateway.networking.k8s.io/v1"
WAYPOINT_CLASS = "istio-waypoint"
GATEWAY_API_INSTALL = ("install the Gateway API CRDs first (standard channel, "
                       "https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api)")


@dataclass(frozen=True)
class Check:
    """One thing ambient mode needs: whether it holds (None: could not tell), and what to do about it."""

    name: str
    ok: bool | None
    detail: str


def waypoints(manifests) -> list[dict]:
    return [o for o in manifests if o["kind"] == "Gateway" and o["apiVersion"] == GATEWAY_API
            and o["spec"].get("gatewayClassName") == WAYPOINT_CLASS]


def checks(*, cluster, manifests) -> list[Check]:
    """Each requirement of an ambient render, in the order a person would fix them; [] for a sidecar render."""
    if not waypoints(manifests):
        return []
    out = [_gateway_api(cluster)]
    if out[0].ok:
        out.append(_waypoint_class(cluster))
    # The gateway pods' injection (node proxy, push proxies) is doctor's istio check, as in sidecar mode.
    return out + [_ztunnel(cluster)]


def _gateway_api(cluster) -> Check:
    if "gateways" in cluster.served(GATEWAY_API):
        return Check("gateway-api", True, f"the Gateway API ({GATEWAY_API}) is served")
    return Check("gateway-api", False, f"{cluster.server} does not serve the Gateway API ({GATEWAY_API} gateways), "
                                       f"which the waypoint is made of; {GATEWAY_API_INSTALL}")


def _waypoint_class(cluster) -> Check:
    try:
        found = cluster.get(GATEWAY_API, "GatewayClass", WAYPOINT_CLASS)
    except ClusterError as e:
        return Check("waypoint-class", None, f"could not read GatewayClass {WAYPOINT_CLASS} ({e})")
    if found is None:
        return Check("waypoint-class", False, f"there is no GatewayClass {WAYPOINT_CLASS}: Istio is not installed "
                                              "with ambient support (istioctl install --set profile=ambient)")
    return Check("waypoint-class", True, f"GatewayClass {WAYPOINT_CLASS} exists")


def _ztunnel(cluster) -> Check:
    try:
        found = [d for d in cluster.list("apps/v1", "DaemonSet") if _is_ztunnel(d)]
    except ClusterError as e:
        return Check("ztunnel", None, f"could not look for ztunnel ({e}); without it the registry pods are not "
                                      "captured and no L4 policy protects them")
    if not found:
        return Check("ztunnel", False, "no ztunnel DaemonSet (pods labelled app=ztunnel) in the cluster: without it "
                                       "the registry pods are not captured and no L4 policy protects them; install "
                                       "Istio's ambient profile")
    where = ", ".join(f"{d['metadata'].get('namespace')}/{d['metadata']['name']}" for d in found)
    return Check("ztunnel", True, f"ztunnel runs ({where})")


def _is_ztunnel(daemon_set: dict) -> bool:
    """Istio's charts label ztunnel's pods app=ztunnel (istio-cni recognises ztunnel by that label)."""
    template = (daemon_set.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("labels") or {}).get("app") == "ztunnel"


def status(*, cluster, namespace: str, manifests) -> dict | None:
    """The waypoint's state for `status` (None for a sidecar render): programmed by istiod, rolled out, and how
    many registry pods ztunnel captures."""
    found = waypoints(manifests)
    if not found:
        return None
    name = found[0]["metadata"]["name"]
    live = cluster.get(GATEWAY_API, "Gateway", name, namespace=namespace)
    conditions = {c.get("type"): c for c in ((live or {}).get("status") or {}).get("conditions") or []}
    programmed = conditions.get("Programmed") or {}
    done, text = rollout(cluster.get("apps/v1", "Deployment", name, namespace=namespace))
    return {"name": name, "programmed": programmed.get("status") == "True",
            "message": programmed.get("message") or programmed.get("reason") or "not reported yet",
            "ready": done, "replicas": text}

"""What ambient mode needs from a cluster, checked before `up` writes anything (doctor's `ambient` group, part of
up's preflight): the Gateway API, Istio's istio-waypoint GatewayClass, ztunnel on the nodes, an injector for the node
proxy. (Whether the waypoint is programmed is part of `status`: meshreg.status.gather.)

`checks(...)` takes the rendered manifests, so it says nothing (and sends no request) for a sidecar-mode render.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.cluster.api import ClusterClient, Object
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


def waypoints(manifests: list[Object]) -> list[Object]:
    """The rendered waypoints: Gateways of Istio's istio-waypoint class."""
    return [o for o in manifests if o["kind"] == "Gateway" and o["apiVersion"] == GATEWAY_API
            and o["spec"].get("gatewayClassName") == WAYPOINT_CLASS]


def checks(*, cluster: ClusterClient, manifests: list[Object]) -> list[Check]:
    """Each requirement of an ambient render, in the order a person would fix them; [] for a sidecar render."""
    if not waypoints(manifests):
        return []
    out = [_gateway_api(cluster)]
    if out[0].ok:
        out.append(_waypoint_class(cluster))
    # The gateway pods' injection (node proxy, push proxies) is doctor's istio check, as in sidecar mode.
    return out + [_ztunnel(cluster)]


def _gateway_api(cluster: ClusterClient) -> Check:
    if "gateways" in cluster.served(GATEWAY_API):
        return Check("gateway-api", True, f"the Gateway API ({GATEWAY_API}) is served")
    return Check("gateway-api", False, f"{cluster.server} does not serve the Gateway API ({GATEWAY_API} gateways), "
                                       f"which the waypoint is made of; {GATEWAY_API_INSTALL}")


def _waypoint_class(cluster: ClusterClient) -> Check:
    try:
        found = cluster.get(GATEWAY_API, "GatewayClass", WAYPOINT_CLASS)
    except ClusterError as e:
        return Check("waypoint-class", None, f"could not read GatewayClass {WAYPOINT_CLASS} ({e})")
    if found is None:
        return Check("waypoint-class", False, f"there is no GatewayClass {WAYPOINT_CLASS}: Istio is not installed "
                                              "with ambient support (istioctl install --set profile=ambient)")
    return Check("waypoint-class", True, f"GatewayClass {WAYPOINT_CLASS} exists")


def _ztunnel(cluster: ClusterClient) -> Check:
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


def _is_ztunnel(daemon_set: Object) -> bool:
    """Istio's charts label ztunnel's pods app=ztunnel (istio-cni recognises ztunnel by that label)."""
    template = (daemon_set.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("labels") or {}).get("app") == "ztunnel"

"""What `spec.mesh: ambient` renders instead of sidecars: labels that enrol the namespace with ztunnel and send the
registry's Services through a waypoint, the waypoint itself (a Gateway API Gateway), and the L4 policy that lets
only the waypoint reach the registry pods, so that a request skipping the waypoint never reaches the registry.

Facts this relies on (Istio 1.24 or newer; docs/ambient.md cites them):
- a Gateway of class `istio-waypoint` makes istiod deploy a waypoint whose ServiceAccount, hence identity, is the
  Gateway's name;
- `istio.io/use-waypoint` on a Service sends in-mesh traffic addressed to it through that waypoint, and
  `istio.io/ingress-use-waypoint: "true"` does the same for gateways such as the node proxy;
- policies with `targetRefs` to a Service are enforced by its waypoint, with the client's identity; policies with a
  `selector` are enforced by ztunnel on the selected pods, which see the waypoint's identity.
"""

from __future__ import annotations

from meshreg.config import Config, Registry
from meshreg.config.mesh import WAYPOINT
from meshreg.objects import Labels, Object
from meshreg.render.labels import COMPONENT, INJECT, REGISTRY, is_ambient, metadata, registry_pods, revision

DATAPLANE_MODE = "istio.io/dataplane-mode"
USE_WAYPOINT = "istio.io/use-waypoint"
INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"
WAYPOINT_FOR = "istio.io/waypoint-for"
WAYPOINT_CLASS = "istio-waypoint"
HBONE_PORT = 15008
GATEWAY_API = "gateway.networking.k8s.io/v1"


def namespace_labels(cfg: Config) -> Labels:
    """ztunnel captures every pod of the namespace; no injection label, so the registry gets no sidecar."""
    return {DATAPLANE_MODE: "ambient"}


def registry_pod_labels(cfg: Config) -> Labels:
    """An explicit no: a sidecar (from a cluster-wide injection default) would take the pod out of ztunnel's
    capture, and with it the L4 policy that keeps everyone but the waypoint away."""
    return {INJECT: "false"}


def service_labels(cfg: Config) -> Labels:
    """In-mesh clients and gateways (the node proxy) reach the registry Service only through the waypoint."""
    return {USE_WAYPOINT: WAYPOINT, INGRESS_USE_WAYPOINT: "true"}


def target_refs(reg: Registry) -> Object:
    """How an L7 policy attaches in ambient mode: to the registry's Service, enforced by its waypoint."""
    return {"targetRefs": [{"group": "", "kind": "Service", "name": reg.name}]}


def waypoint_principal(cfg: Config) -> str:
    return cfg.principal(f"{cfg.namespace}/{WAYPOINT}")


def waypoint(cfg: Config) -> Object:
    """The waypoint, for Services only (`waypoint-for: service`); `istio.io/rev` picks the control plane that
    deploys and programs it."""
    meta = metadata(cfg, WAYPOINT, extra={COMPONENT: WAYPOINT, WAYPOINT_FOR: "service", **revision(cfg)})
    return {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": meta,
            "spec": {"gatewayClassName": WAYPOINT_CLASS,
                     "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}]}}


def allow_waypoint(cfg: Config, reg: Registry) -> Object:
    """Enforced by ztunnel on the registry pods: only the waypoint's identity may connect. Everything else that
    could reach a pod — a client dialling the pod IP, a sidecar or gateway that does not know the waypoint, plain
    text from outside the mesh — has another identity or none, and is refused before the registry sees a byte.
    Kubelet probes are not affected: Istio exempts them from ambient policy (they arrive from 169.254.7.127)."""
    meta = metadata(cfg, f"{reg.name}-allow-waypoint", extra={COMPONENT: "registry", REGISTRY: reg.name})
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta,
            "spec": {"selector": {"matchLabels": registry_pods(cfg, reg)}, "action": "ALLOW",
                     "rules": [{"from": [{"source": {"principals": [waypoint_principal(cfg)]}}]}]}}


def notices(cfg: Config) -> list[str]:
    """What a person deploying ambient mode must know that the manifests cannot say."""
    if not is_ambient(cfg) or not any(cfg.writers_of(r) for r in cfg.registries):
        return []
    return ["mesh: ambient: writers must themselves be in the ambient mesh (istio.io/dataplane-mode=ambient on "
            "their namespace); a writer with a sidecar does not go through the waypoint, and ztunnel refuses it."]

"""The node proxy: a self-managed Istio gateway on every node, so the kubelet pulls from localhost:PORT."""

from __future__ import annotations

from meshreg.config import REGISTRY_PORT, Config
from meshreg.objects import Labels, Object
from meshreg.render import podspec
from meshreg.render.labels import COMPONENT, common, metadata, node_proxy_pods, sidecar

NAME = "node-proxy"


def _pod_labels(cfg: Config) -> Labels:
    return {**common(cfg), **node_proxy_pods(cfg), COMPONENT: NAME, **sidecar(cfg)}


def port_name(port: int) -> str:
    return f"http-{port}"


def ports(cfg: Config) -> list[int]:
    """The ports the node proxy serves on each node: one per registry, in order."""
    return sorted(r.port for r in cfg.registries)


def daemon_set(cfg: Config) -> Object:
    np = cfg.node_proxy
    container = {
        "name": "istio-proxy",
        "image": "auto",  # filled in by Istio's gateway injection template
        # Without a policy the API server defaults `auto` (an untagged image) to Always, and Istio's injector keeps
        # what the pod spec says: a node without registry access (airgapped, preloaded) never starts the proxy.
        "imagePullPolicy": "IfNotPresent",
        # hostIP keeps the port on the node's loopback: only the node itself (its kubelet and runtime) reaches it.
        "ports": [{"name": port_name(p), "containerPort": p, "hostPort": p, "hostIP": np.host_ip, "protocol": "TCP"}
                  for p in ports(cfg)],
        "resources": np.resources.as_dict(),
    }
    template = {
        "metadata": {"labels": _pod_labels(cfg),
                     "annotations": {"inject.istio.io/templates": "gateway",
                                     "kubectl.kubernetes.io/default-container": "istio-proxy"}},
        "spec": {
            "serviceAccountName": NAME,
            # Every node must be able to pull, whatever its taints.
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 30,
            "containers": [container],
            **podspec.pull_secrets(cfg),
        },
    }
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": metadata(cfg, NAME, extra={COMPONENT: NAME}),
            "spec": {"selector": {"matchLabels": node_proxy_pods(cfg)},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                     "template": template}}


def service(cfg: Config) -> Object:
    """Istio makes a gateway's Envoy listen on the targetPort of the Service selecting it: PORT -> PORT."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(cfg, NAME),
            "spec": {"type": "ClusterIP", "selector": node_proxy_pods(cfg),
                     "ports": [{"name": port_name(p), "port": p, "targetPort": p, "protocol": "TCP",
                                "appProtocol": "http"} for p in ports(cfg)]}}


def gateway(cfg: Config) -> Object:
    # "./*": only VirtualServices from this namespace may bind to the node proxy.
    servers = [{"port": {"number": p, "name": port_name(p), "protocol": "HTTP"}, "hosts": ["./*"]}
               for p in ports(cfg)]
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": metadata(cfg, NAME),
            "spec": {"selector": node_proxy_pods(cfg), "servers": servers}}


def virtual_service(cfg: Config) -> Object:
    # No `timeout`: Istio then sets none, and layer pulls can take as long as they need (its CRD rejects 0s).
    routes = [{"name": reg.name, "match": [{"port": reg.port}],
               "route": [{"destination": {"host": cfg.service_name(reg),
                                          "port": {"number": REGISTRY_PORT}}}]}
              for reg in sorted(cfg.registries, key=lambda r: r.port)]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": metadata(cfg, NAME),
            "spec": {"hosts": ["*"], "gateways": [NAME], "exportTo": ["."], "http": routes}}


def allow_reads(cfg: Config) -> Object:
    """The kubelet has no mesh identity: the node proxy lets anyone on the node read, and nobody write."""
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": metadata(cfg, "node-proxy-allow-reads"),
            "spec": {"selector": {"matchLabels": node_proxy_pods(cfg)}, "action": "ALLOW",
                     "rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}]}}

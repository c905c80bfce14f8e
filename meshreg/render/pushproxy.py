"""The push proxy: an Istio gateway in a namespace of its own that people reach with `meshreg connect`
(a port-forward, so Kubernetes RBAC on `pods/portforward` there decides who), and that writes the registry's
`pushProxy.repositories` over mTLS as its own identity.

It listens on its pod's loopback only (Gateway `bind: 127.0.0.1`): a port-forward arrives there, while other pods
reaching the pod IP or the Service find nothing listening. It passes reads and uploads, never DELETE.
"""

from __future__ import annotations

from meshreg.config import PUSH_PROXY, REGISTRY_PORT, Config, PushProxy, Registry
from meshreg.config.model import CONNECT_ROLE
from meshreg.objects import Labels, Object
from meshreg.render import podspec
from meshreg.render.labels import COMPONENT, INSTANCE, NAME, REGISTRY, common, metadata, namespace_injection, sidecar
from meshreg.render.labels import selector as selector_text
from meshreg.render.nodeproxy import port_name

LABEL = "meshreg.dev/push-proxy"  # Gateway selectors match pods in every namespace: name the push proxy's own
ROLE = CONNECT_ROLE
# How long a replaced push-proxy pod keeps serving the uploads it has (a rollout starts the new pod first, and
# `meshreg connect` sends new connections there): it stops as soon as its last connection ends, at most this late.
DRAIN_SECONDS = 600
BIND = "127.0.0.1"
METHODS = ["GET", "HEAD", "PATCH", "POST", "PUT"]  # a push and a pull; no DELETE


def _proxy(reg: Registry) -> PushProxy:
    """The registry's push proxy: everything here is for a registry that has one."""
    assert reg.push_proxy is not None, f"registry {reg.name} has no push proxy"
    return reg.push_proxy


def pods(cfg: Config, reg: Registry) -> Labels:
    """Selector labels of a push proxy's pods (immutable once deployed)."""
    return {INSTANCE: cfg.name, NAME: PUSH_PROXY, LABEL: _proxy(reg).namespace}


def selector(cfg: Config, reg: Registry) -> str:
    """The same labels as a label selector, for listing the pods."""
    return selector_text(pods(cfg, reg))


def _meta(cfg: Config, reg: Registry, name: str) -> Object:
    return metadata(cfg, name, namespace=_proxy(reg).namespace, extra={COMPONENT: PUSH_PROXY, REGISTRY: reg.name})


def namespace(cfg: Config, reg: Registry) -> Object:
    # No hostPort, nothing privileged: a gateway pod meets the baseline Pod Security level.
    security = {"pod-security.kubernetes.io/enforce": "baseline"}
    extra = {COMPONENT: PUSH_PROXY, REGISTRY: reg.name, **namespace_injection(cfg), **security}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": metadata(cfg, _proxy(reg).namespace, namespace=None, extra=extra)}


def service_account(cfg: Config, reg: Registry) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(cfg, reg, PUSH_PROXY),
            "automountServiceAccountToken": False}


def role(cfg: Config, reg: Registry) -> Object:
    """What `meshreg connect` needs in the push proxy's namespace, and nothing anywhere else.

    `pods/portforward` needs `create` for SPDY (kubectl) and, since Kubernetes 1.35, for WebSockets too;
    before 1.35 a WebSocket port-forward (the Python client's) was authorized as `get`.
    """
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]},
             # kubectl port-forward deploy/push-proxy (or svc/push-proxy) resolves the pod from these.
             {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
             {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(cfg, reg, ROLE),
            "rules": rules}


def _pod_labels(cfg: Config, reg: Registry) -> Labels:
    return {**common(cfg), **pods(cfg, reg), COMPONENT: PUSH_PROXY, **sidecar(cfg)}


def deployment(cfg: Config, reg: Registry) -> Object:
    proxy = _proxy(reg)
    # imagePullPolicy: the API server would default `auto` to Always, which Istio's injector keeps (nodeproxy.py).
    container = {"name": "istio-proxy", "image": "auto",  # filled in by Istio's gateway injection template
                 "imagePullPolicy": "IfNotPresent",
                 "ports": [{"name": port_name(proxy.port), "containerPort": proxy.port, "protocol": "TCP"}],
                 # pilot-agent ends the drain when no connection is left (Istio 1.12+), not after the whole duration
                 "env": [{"name": "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "value": "true"}],
                 "resources": proxy.resources.as_dict()}
    drain = f'{{"terminationDrainDuration": "{DRAIN_SECONDS}s"}}'
    template = {
        "metadata": {"labels": _pod_labels(cfg, reg),
                     "annotations": {"inject.istio.io/templates": "gateway", "proxy.istio.io/config": drain,
                                     "kubectl.kubernetes.io/default-container": "istio-proxy"}},
        "spec": {"serviceAccountName": PUSH_PROXY, "terminationGracePeriodSeconds": DRAIN_SECONDS + 30,
                 "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [container], **podspec.placement(proxy.scheduling), **podspec.pull_secrets(cfg)},
    }
    # maxUnavailable 0: a rollout starts the new pod before stopping the old one, so `connect` always finds one.
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(cfg, reg, PUSH_PROXY),
            "spec": {"replicas": 1, "revisionHistoryLimit": 3, "selector": {"matchLabels": pods(cfg, reg)},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": template}}


def service(cfg: Config, reg: Registry) -> Object:
    """Istio makes a gateway's Envoy listen on the targetPort of the Service selecting it: PORT -> PORT."""
    port = _proxy(reg).port
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cfg, reg, PUSH_PROXY),
            "spec": {"type": "ClusterIP", "selector": pods(cfg, reg),
                     "ports": [{"name": port_name(port), "port": port, "targetPort": port, "protocol": "TCP",
                                "appProtocol": "http"}]}}


def gateway(cfg: Config, reg: Registry) -> Object:
    # bind: the listener is on the pod's loopback, where a port-forward arrives; "./*": only this namespace's routes.
    port = _proxy(reg).port
    server = {"port": {"number": port, "name": port_name(port), "protocol": "HTTP"}, "bind": BIND, "hosts": ["./*"]}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": _meta(cfg, reg, PUSH_PROXY),
            "spec": {"selector": pods(cfg, reg), "servers": [server]}}


def virtual_service(cfg: Config, reg: Registry) -> Object:
    # No `timeout`: Istio then sets none, and layer uploads take as long as they need (its CRD rejects 0s).
    route = {"name": reg.name, "route": [{"destination": {"host": cfg.service_name(reg),
                                                          "port": {"number": REGISTRY_PORT}}}]}
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": _meta(cfg, reg, PUSH_PROXY),
            "spec": {"hosts": ["*"], "gateways": [PUSH_PROXY], "exportTo": ["."], "http": [route]}}


def allow(cfg: Config, reg: Registry) -> Object:
    """What may pass through: the registry API's reads and uploads, no DELETE. The registry decides the scope."""
    rule = {"to": [{"operation": {"methods": list(METHODS), "paths": ["/v2/*"]}}]}
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": _meta(cfg, reg, f"{PUSH_PROXY}-allow"),
            "spec": {"selector": {"matchLabels": pods(cfg, reg)}, "action": "ALLOW", "rules": [rule]}}


def objects(cfg: Config, reg: Registry) -> list[Object]:
    """Every object of a registry's push proxy, all in its own namespace."""
    return [namespace(cfg, reg), service_account(cfg, reg), role(cfg, reg), service(cfg, reg),
            deployment(cfg, reg), allow(cfg, reg), gateway(cfg, reg), virtual_service(cfg, reg)]

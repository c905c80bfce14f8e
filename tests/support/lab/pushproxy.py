"""The push proxy in the lab: a plain-HTTP listener translated from the rendered Gateway, Service and
VirtualService, with the RBAC of the policies that select its pods, forwarding over mTLS with the push proxy's own
certificate (its ServiceAccount in its own namespace) to the registry's sidecar."""

from __future__ import annotations

from . import envoy, rbac
from .processes import free_port

UPSTREAM = "push-proxy-upstream"


def _one(objects: list[dict], kind: str, name: str, namespace: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name} in the render, found {len(found)}"
    return found[0]


def route(objects: list[dict], cfg, reg) -> tuple[str, str]:
    """(listen address, route timeout), after checking Gateway, Service and VirtualService lead to the registry."""
    ns = reg.push_proxy.namespace
    [server] = _one(objects, "Gateway", "push-proxy", ns)["spec"]["servers"]
    assert server["port"]["protocol"] == "HTTP" and server["port"]["number"] == reg.push_proxy.port
    assert server["hosts"] == ["./*"]
    [port] = _one(objects, "Service", "push-proxy", ns)["spec"]["ports"]
    assert port["port"] == server["port"]["number"] == port["targetPort"]  # Envoy listens on the targetPort
    vs = _one(objects, "VirtualService", "push-proxy", ns)["spec"]
    assert vs["gateways"] == ["push-proxy"] and vs["hosts"] == ["*"]
    [http] = vs["http"]
    assert "match" not in http, f"lab cannot translate the match {http.get('match')}"
    [dest] = http["route"]
    registry_port = _one(objects, "Service", reg.name, cfg.namespace)["spec"]["ports"][0]["port"]
    assert dest["destination"] == {"host": f"{reg.name}.{cfg.namespace}.svc.cluster.local",
                                   "port": {"number": registry_port}}
    return server.get("bind", "0.0.0.0"), http.get("timeout", "0s")  # no timeout field: Istio sets none


def listener_and_cluster(lab, reg) -> tuple[dict, dict]:
    """The push proxy's listener and upstream; sets lab.push_proxy_port and lab.push_proxy_identity."""
    ns = reg.push_proxy.namespace
    address, timeout = route(lab.objects, lab.cfg, reg)
    assert address == "127.0.0.1", "the push proxy must listen on its pod's loopback only"
    pod = _one(lab.objects, "Deployment", "push-proxy", ns)["spec"]["template"]
    lab.push_proxy_identity = lab.identity(f"{ns}/{pod['spec']['serviceAccountName']}")
    lab.push_proxy_port = free_port()
    policies = [o for o in lab.objects if rbac.selects(o, namespace=ns, pod_labels=pod["metadata"]["labels"])]
    assert policies, "no AuthorizationPolicy selects the push proxy"
    listener = envoy.gateway_listener("push-proxy", address=address, port=lab.push_proxy_port, cluster=UPSTREAM,
                                      rbac=rbac.http_filters(policies), route_timeout=timeout, tuning=lab.tuning,
                                      access_log=lab.access_logs("push-proxy", pod["metadata"]["labels"], mode="CLIENT",
                                                                 namespace=ns))
    cluster = envoy.sidecar_cluster(name=UPSTREAM, port=lab.sidecar_port, client=lab.push_proxy_identity,
                                    registry_uri=lab.registry_identity.uri, tuning=lab.tuning)
    return listener, cluster

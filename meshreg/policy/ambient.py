"""Istio's ambient data plane, hop by hop, for `policy check`: which hops a request crosses, and each hop's rules.

- ztunnel, on the registry pods: the policies that select them (selector, namespace-wide, root namespace), seen
  at L4 as istiod hands them to ztunnel (pilot/pkg/serviceregistry/kube/controller/ambient, handleRule): an ALLOW
  rule with an HTTP attribute is dropped (it never matches), a DENY rule keeps only its L4 conditions (so it matches
  more); policies with targetRef(s) are not sent to ztunnel at all. A STRICT PeerAuthentication refuses plain text.
- the waypoint of the registry's Service: the policies attached to that Service or to the waypoint Gateway with
  targetRefs, with Istio's usual CUSTOM/DENY/ALLOW semantics and the client's identity. It forwards as itself.
- the node proxy (a gateway with its own Envoy): its selector policies, then the waypoint when the Service says
  `istio.io/ingress-use-waypoint: "true"`, else straight to ztunnel.

A client that skips the waypoint (it dials the pod IP, or is a sidecar or gateway that does not know waypoints, or is
outside the mesh) reaches ztunnel with its own identity or none.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from meshreg.objects import Labels, Object
from meshreg.policy import fields
from meshreg.policy.rules import (
    Decision,
    Request,
    Workload,
    at_workload,
    decide,
    peer_authentication,
    policies,
    principal_of,
    selects,
)

ZTUNNEL, WAYPOINT, NODE_PROXY = "ztunnel", "waypoint", "node proxy"
DATAPLANE_MODE = "istio.io/dataplane-mode"
USE_WAYPOINT = "istio.io/use-waypoint"
INGRESS_USE_WAYPOINT = "istio.io/ingress-use-waypoint"
GATEWAY_API = "gateway.networking.k8s.io"
# What istiod calls HTTP attributes when it converts a policy for ztunnel.
L7_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
L7_SOURCE = ("requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks")
L4_WHEN = ("source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port")


def enrolled(objects: list[Object], workload: Workload | None) -> bool:
    """Whether ztunnel captures the workload: its namespace (or its pods) say `istio.io/dataplane-mode: ambient`."""
    if workload is None:
        return False
    mode = workload.labels.get(DATAPLANE_MODE) or _namespace_labels(objects, workload.namespace).get(DATAPLANE_MODE)
    return mode == "ambient" and workload.labels.get("sidecar.istio.io/inject") != "true"


def evaluate(objects: list[Object], registry: Workload, *, client: str | None, method: str, path: str,
             trust_domain: str, skip_waypoint: bool = False, node_proxy: Workload | None = None,
             gateway_hop: str = NODE_PROXY) -> Decision:
    """`client`: a principal, None for plain text from outside the mesh, or "node-proxy": through the gateway
    `node_proxy` (a push proxy is such a gateway too; `gateway_hop` names it)."""
    service = _find(objects, "v1", "Service", registry.name, registry.namespace)
    gateway = waypoint_of(objects, service)
    port = _service_port(service, registry)
    request = Request(client, method, path, f"{registry.name}.{registry.namespace}.svc.cluster.local:{port}", port)
    if client == "node-proxy":
        return _via_gateway(objects, registry, service=service, gateway=gateway, request=request, proxy=node_proxy,
                            trust_domain=trust_domain, hop=gateway_hop)
    if client is None or skip_waypoint or gateway is None:
        why = ("outside the mesh, the client sends plain text straight to the pod" if client is None else
               "the client skips the waypoint" if skip_waypoint else "the Service has no waypoint")
        return _hops([], at_ztunnel(objects, registry, principal=client, note=why))
    assert service is not None  # a waypoint is found through its Service
    first = at_waypoint(objects, gateway=gateway, service=service, request=request)
    if not first.allowed:
        return _hops([], first)
    return _hops([first], at_ztunnel(objects, registry, principal=waypoint_principal(gateway, trust_domain)))


def _via_gateway(objects: list[Object], registry: Workload, *, service: Object | None, gateway: Object | None,
                 request: Request, proxy: Workload | None, trust_domain: str, hop: str) -> Decision:
    if proxy is None:
        return Decision("DENY", None, None, "there is no node proxy (spec.nodeProxy.enabled is false)", hop)
    local = Request(None, request.method, request.path, f"localhost:{proxy.port}", proxy.port)
    first = _at(hop, at_workload(objects, proxy, local))
    if not first.allowed:
        return first
    identity = principal_of(f"{proxy.namespace}/{proxy.service_account}", trust_domain)
    if gateway is None or service is None or not ingress_uses_waypoint(objects, service):
        why = "the Service has no waypoint" if gateway is None else \
            f"the Service lacks {INGRESS_USE_WAYPOINT}: \"true\", so the gateway skips the waypoint"
        return _hops([first], at_ztunnel(objects, registry, principal=identity, note=why))
    second = at_waypoint(objects, gateway=gateway, service=service, request=Request(identity, *_rest(request)))
    if not second.allowed:
        return _hops([first], second)
    return _hops([first, second], at_ztunnel(objects, registry, principal=waypoint_principal(gateway, trust_domain)))


def _rest(request: Request) -> tuple[str, str, str, int]:
    return request.method, request.path, request.host, request.port


def at_waypoint(objects: list[Object], *, gateway: Object, service: Object, request: Request) -> Decision:
    """The policies attached (targetRefs) to the Service or to the waypoint, for the client's request."""
    attached_ = [p for p in policies(objects, "AuthorizationPolicy") if attached(p, service=service, gateway=gateway)]
    where = f"Service {service['metadata']['name']} or waypoint {gateway['metadata']['name']}"
    d = decide(attached_, request, no_allow=f"no ALLOW policy is attached to {where}, so Istio allows")
    who = request.principal or "no identity"
    return _at(WAYPOINT, d, f"as {who}")


def at_ztunnel(objects: list[Object], workload: Workload, *, principal: str | None, note: str = "") -> Decision:
    """ztunnel on the workload's node: STRICT mTLS, then the L4 view of the policies that select the workload."""
    peer = peer_authentication(objects, workload)
    context = f"as {principal or 'plain text'}" + (f" ({note})" if note else "")
    if principal is None and peer and peer[1] == "STRICT":
        return Decision("DENY", f"PeerAuthentication/{peer[0]}", None,
                        f"at {ZTUNNEL} {context}: STRICT mTLS refuses plain text before any policy", ZTUNNEL)
    views = [v for p in policies(objects, "AuthorizationPolicy") if selects(p, workload) for v in [l4_view(p)] if v]
    l4 = Request(principal, "", "", "", workload.port)  # ztunnel sees no method, path or host
    d = decide(views, l4, no_allow=f"no ALLOW policy selects {workload}, so Istio allows")
    return _at(ZTUNNEL, d, context)


def l4_view(policy: Object) -> Object | None:
    """The policy as ztunnel enforces it, or None when ztunnel ignores it (targetRefs; actions other than ALLOW
    and DENY, which istiod refuses to send to ztunnel)."""
    spec = fields.spec(policy)
    action = spec.get("action", "ALLOW")
    if fields.targets(spec) or action not in ("ALLOW", "DENY"):
        return None
    view = copy.deepcopy(policy)
    rules = []
    for rule in spec.get("rules") or []:
        if not _has_l7(rule):
            rules.append(rule)
        elif action == "DENY":  # "enforced without the HTTP rules": it matches more, so it is stricter
            rules.append(_without_l7(rule))
        # ALLOW: "rules matching HTTP attributes are omitted": the rule never matches
    view["spec"]["rules"] = rules
    return view


def _has_l7(rule: Object) -> bool:
    return (_sets_any(_clauses(rule, "to", "operation"), L7_OPERATION)
            or _sets_any(_clauses(rule, "from", "source"), L7_SOURCE)
            or any(w.get("key") not in L4_WHEN for w in rule.get("when") or []))


def _without_l7(rule: Object) -> Object:
    out = copy.deepcopy(rule)
    _drop(_clauses(out, "to", "operation"), L7_OPERATION)
    _drop(_clauses(out, "from", "source"), L7_SOURCE)
    if "when" in out:
        out["when"] = [w for w in out["when"] if w.get("key") in L4_WHEN]
    return out


def _clauses(rule: Object, key: str, clause: str) -> list[Object]:
    """The operations (`to`) or sources (`from`) of a rule, {} for an entry without one."""
    return [entry.get(clause) or {} for entry in rule.get(key) or []]


def _sets_any(clauses: list[Object], keys: Iterable[str]) -> bool:
    return any(c.get(k) for c in clauses for k in keys)


def _drop(clauses: list[Object], keys: Iterable[str]) -> None:
    for clause in clauses:
        for key in keys:
            clause.pop(key, None)


def attached(policy: Object, *, service: Object, gateway: Object) -> bool:
    """Whether a policy's targetRef(s) name the Service (core group) or the waypoint Gateway, in its namespace."""
    spec = policy.get("spec") or {}
    refs = list(spec.get("targetRefs") or []) + ([spec["targetRef"]] if spec.get("targetRef") else [])
    ns = policy["metadata"].get("namespace", "default")
    wanted = {("", "Service", service["metadata"]["name"]), (GATEWAY_API, "Gateway", gateway["metadata"]["name"])}
    return ns == service["metadata"].get("namespace", "default") and any(
        (r.get("group", ""), r.get("kind"), r.get("name")) in wanted and r.get("namespace", ns) == ns for r in refs)


def waypoint_of(objects: list[Object], service: Object | None) -> Object | None:
    """The Gateway the Service's traffic goes through: named by `istio.io/use-waypoint` on the Service (or its
    namespace), of class istio-waypoint, taking Service traffic (`istio.io/waypoint-for` service or all)."""
    if service is None:
        return None
    ns = fields.namespace(service)
    name = fields.labels(service).get(USE_WAYPOINT) or _namespace_labels(objects, ns).get(USE_WAYPOINT)
    gateway = _gateway(objects, name, ns)
    if gateway is None or gateway["spec"].get("gatewayClassName") != "istio-waypoint":
        return None
    return gateway if fields.labels(gateway).get("istio.io/waypoint-for", "service") in ("service", "all") else None


def _gateway(objects: list[Object], name: str | None, namespace: str) -> Object | None:
    """The Gateway API Gateway `name` in `namespace`."""
    return next((o for o in objects if o.get("kind") == "Gateway" and o.get("apiVersion", "").startswith(
        GATEWAY_API + "/") and o["metadata"]["name"] == name and fields.namespace(o) == namespace), None)


def ingress_uses_waypoint(objects: list[Object], service: Object) -> bool:
    ns = fields.namespace(service)
    value = fields.labels(service).get(INGRESS_USE_WAYPOINT,
                                       _namespace_labels(objects, ns).get(INGRESS_USE_WAYPOINT, ""))
    return value.lower() == "true"


def waypoint_principal(gateway: Object, trust_domain: str) -> str:
    """Istio deploys a waypoint as the ServiceAccount named after its Gateway (or the one its annotation names)."""
    meta = gateway["metadata"]
    account = (meta.get("annotations") or {}).get("gateway.istio.io/service-account", meta["name"])
    return principal_of(f"{meta.get('namespace', 'default')}/{account}", trust_domain)


def _at(hop: str, d: Decision, context: str = "") -> Decision:
    where = f"at the {hop}" if hop != ZTUNNEL else f"at {hop}"
    text = f"{where} {context}: {d.reason}" if context else f"{where}: {d.reason}"
    return Decision(d.decision, d.policy, d.rule, text, hop)


def _hops(passed: list[Decision], last: Decision) -> Decision:
    """The deciding hop: the one that denied, else the first that judged the request's method and path (the
    waypoint, or the node proxy), else ztunnel. The reason tells every hop crossed."""
    reason = "; then ".join([d.reason for d in passed] + [last.reason])
    if not last.allowed:
        return Decision("DENY", last.policy, last.rule, reason, last.hop)
    decider = next((d for d in passed if d.hop == WAYPOINT), passed[0] if passed else last)
    return Decision("ALLOW", decider.policy, decider.rule, reason, decider.hop)


def _find(objects: list[Object], api_version: str, kind: str, name: str,
          namespace: str | None = None) -> Object | None:
    for o in objects:
        if (o.get("apiVersion"), o.get("kind"), o["metadata"]["name"]) == (api_version, kind, name) and \
                (namespace is None or o["metadata"].get("namespace", "default") == namespace):
            return o
    return None


def _namespace_labels(objects: list[Object], namespace: str) -> Labels:
    """The labels of the Namespace `namespace` ({} when the objects do not hold it)."""
    return fields.labels(_find(objects, "v1", "Namespace", namespace))


def _service_port(service: Object | None, workload: Workload) -> int:
    ports = fields.spec(service or {}).get("ports") or []
    port: int = ports[0].get("port", workload.port) if ports else workload.port
    return port

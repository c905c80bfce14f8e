"""Decides offline whether the rendered policies let a request through, hop by hop along the path it takes:
straight to the registry's sidecar, or through the node proxy or a push proxy first. Each hop is decided by
meshreg.policy.rules; paths are compared after Istio's default normalization (meshreg.policy.normalize). When the
registry is in Istio's ambient mode, meshreg.policy.ambient follows the request through the waypoint and ztunnel
instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from meshreg.config import names
from meshreg.errors import UsageError
from meshreg.objects import Object
from meshreg.policy import ambient, routes
from meshreg.policy.ingress import Caller, caller, is_ingress_identity
from meshreg.policy.normalize import Rejected, normalize
from meshreg.policy.rules import (
    PRINCIPAL,
    Decision,
    NotEvaluable,
    Request,
    Workload,
    at_workload,
    peer_authentication,
    policies,
    principal_of,
)

if TYPE_CHECKING:  # the ingress's model loads with spec.ingress only
    from meshreg.config.model import Ingress

__all__ = ["Decision", "NotEvaluable", "check_request", "evaluate", "find_workload", "infer_trust_domain",
           "principal_of"]

REGISTRY = ("Deployment", "registry")
NODE_PROXY = ("DaemonSet", "node-proxy")
PUSH_PROXY = ("Deployment", "push-proxy")  # one per registry that has one, each in its own namespace
_REGISTRY_LABEL = "meshreg.dev/registry"
_PROXIES = ("anonymous", "node-proxy", "push-proxy")
_METHOD = re.compile(r"[A-Z][A-Z-]*")


def evaluate(objects: list[Object], *, identity: str, method: str, path: str,
             trust_domain: str | None = None, registry: str = REGISTRY[1], skip_waypoint: bool = False,
             ingress: Ingress | None = None) -> Decision:
    """Whether `identity` (NS/SA, node-proxy, push-proxy or anonymous; client:NAME or external through `ingress`,
    the config's spec.ingress) may send METHOD PATH to the registry named `registry`; `skip_waypoint` (ambient mode
    only): the client does not go through the registry's waypoint."""
    check_request(identity=identity, method=method, path=path)
    workload = find_workload(objects, (REGISTRY[0], registry))
    ambient_mode = workload is not None and ambient.enrolled(objects, workload)
    refused = _strict_refusal(objects, workload) if identity == "anonymous" and not ambient_mode else None
    if refused:  # the TLS handshake is over before Envoy reads the request line
        return refused
    try:
        normalized = normalize(path)
    except Rejected as e:
        return Decision("DENY", None, None, str(e))
    if workload is not None and ambient_mode:
        return _ambient(objects, workload, identity=identity, method=method, path=normalized, raw=path,
                        trust_domain=trust_domain, skip_waypoint=skip_waypoint, name=registry, ingress=ingress)
    if skip_waypoint:
        raise UsageError("--skip-waypoint: there is no waypoint in sidecar mode (spec.mesh: sidecar); the registry's "
                         "sidecar decides every request")
    return _sidecar(objects, workload, identity=identity, method=method, path=normalized, raw=path,
                    trust_domain=trust_domain, name=registry, ingress=ingress)


def _sidecar(objects: list[Object], registry: Workload | None, *, identity: str, method: str, path: str, raw: str,
             trust_domain: str | None, name: str, ingress: Ingress | None) -> Decision:
    """The registry's sidecar decides, after the node proxy, a push proxy or the ingress gateway when the request
    goes through one."""
    if identity == "anonymous":
        return _anonymous(objects, registry, method, path)
    if identity == "node-proxy":
        proxy = find_workload(objects, NODE_PROXY)
        if proxy is None:
            return Decision("DENY", None, None, "there is no node proxy (spec.nodeProxy.enabled is false)")
        return _via_proxy(objects, registry, proxy, what="node proxy", method=method, path=path,
                          trust_domain=trust_domain)
    if identity == "push-proxy":
        pushed = _push_proxy(objects, name)
        return pushed if isinstance(pushed, Decision) else \
            _via_proxy(objects, registry, pushed, what="push proxy", method=method, path=path,
                       trust_domain=trust_domain)
    if is_ingress_identity(identity):
        return _via_ingress(objects, registry, method=method, path=path, raw=raw, who=caller(ingress, identity),
                            ingress=ingress, trust_domain=trust_domain or infer_trust_domain(objects))
    principal = principal_of(identity, trust_domain or infer_trust_domain(objects))
    return at_workload(objects, registry, _request(registry, principal, method, path))


def _ambient(objects: list[Object], registry: Workload, *, identity: str, method: str, path: str, raw: str,
             trust_domain: str | None, skip_waypoint: bool, name: str, ingress: Ingress | None) -> Decision:
    if identity in ("node-proxy", "push-proxy") and skip_waypoint:
        raise UsageError(f"--skip-waypoint: the {identity.replace('-', ' ')}'s path follows its labels "
                         "(istio.io/ingress-use-waypoint "
                         "on the registry Service); check an NS/SA identity instead")
    trust_domain = trust_domain or infer_trust_domain(objects)
    if is_ingress_identity(identity):  # the ingress gateway reaches the registry through the waypoint
        return _via_ingress(objects, registry, method=method, path=path, raw=raw, who=caller(ingress, identity),
                            ingress=ingress, trust_domain=trust_domain, ambient_mode=True)
    if identity == "push-proxy":
        proxy = _push_proxy(objects, name)
        return proxy if isinstance(proxy, Decision) else \
            ambient.evaluate(objects, registry, client="node-proxy", method=method, path=path,
                             trust_domain=trust_domain, node_proxy=proxy, gateway_hop="push proxy")
    client = None if identity == "anonymous" else "node-proxy" if identity == "node-proxy" else \
        principal_of(identity, trust_domain)
    return ambient.evaluate(objects, registry, client=client, method=method, path=path, trust_domain=trust_domain,
                            skip_waypoint=skip_waypoint, node_proxy=find_workload(objects, NODE_PROXY))


def _push_proxy(objects: list[Object], name: str) -> Workload | Decision:
    """Registry `name`'s push proxy, or the DENY for a registry without one (sidecar and ambient mode alike)."""
    proxy = find_workload(objects, PUSH_PROXY, registry=name)
    if proxy is None:
        return Decision("DENY", None, None, f"registry {name} has no push proxy (pushProxy is not enabled)")
    return proxy


def check_request(*, identity: str, method: str, path: str) -> None:
    """Raise UsageError (one line) for an identity, method or path the evaluator cannot take."""
    if identity not in _PROXIES and not is_ingress_identity(identity):
        problem = names.check_identity(identity)
        if problem:
            raise UsageError(f"--as: {problem}, node-proxy, push-proxy, anonymous, client:NAME or external")
    if not _METHOD.fullmatch(method):
        raise UsageError(f"{method!r} is not an HTTP method (an uppercase token such as GET, HEAD, POST, PUT)")
    if not path.startswith("/"):
        raise UsageError(f"{path!r} is not a request path (it must start with '/', e.g. /v2/)")
    if any(not 0x21 <= ord(c) <= 0x7E for c in path):
        raise UsageError(f"{path!r} is not a request path (spaces and non-ASCII characters must be %-encoded)")


def infer_trust_domain(objects: list[Object]) -> str:
    """The one trust domain the policies name; any will do when they name none (no principal can differ)."""
    found = {m.group(1) for value in _source_principals(objects) if (m := PRINCIPAL.fullmatch(value))}
    if len(found) > 1:
        raise UsageError(f"the policies name several trust domains ({', '.join(sorted(found))}): pass trust_domain")
    return found.pop() if found else "cluster.local"


def _source_principals(objects: list[Object]) -> list[str]:
    """Every principal and notPrincipal in the sources of the AuthorizationPolicies' rules."""
    sources = [src.get("source", {}) for p in policies(objects, "AuthorizationPolicy")
               for rule in p["spec"].get("rules") or [] for src in rule.get("from") or []]
    return [value for source in sources for field in ("principals", "notPrincipals")
            for value in source.get(field) or []]


def find_workload(objects: list[Object], which: tuple[str, str], *, registry: str | None = None) -> Workload | None:
    """The workload KIND/NAME; with `registry`, the one labelled as serving that registry."""
    kind, name = which
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        if obj.get("kind") == kind and obj["metadata"]["name"] == name \
                and (registry is None or labels.get(_REGISTRY_LABEL) == registry):
            pod = obj["spec"]["template"]
            port = pod["spec"]["containers"][0].get("ports", [{}])[0].get("containerPort", 0)
            return Workload(kind, name, obj["metadata"].get("namespace", "default"), pod["metadata"]["labels"],
                            pod["spec"].get("serviceAccountName", "default"), port)
    return None


def _request(workload: Workload | None, principal: str | None, method: str, path: str) -> Request:
    if workload is None:
        return Request(principal, method, path, "", 0)
    host = (f"{workload.name}.{workload.namespace}.svc.cluster.local:{workload.port}" if workload.kind == "Deployment"
            else f"localhost:{workload.port}")
    return Request(principal, method, path, host, workload.port)


def _strict_refusal(objects: list[Object], registry: Workload | None) -> Decision | None:
    """The DENY of a plain-text request where STRICT mTLS is in force, before any HTTP is read."""
    peer = peer_authentication(objects, registry)
    if peer and peer[1] == "STRICT":
        return Decision("DENY", f"PeerAuthentication/{peer[0]}", None,
                        "STRICT mTLS rejects plain text before any AuthorizationPolicy: a request without a "
                        "mesh identity never reaches the registry")
    return None


def _anonymous(objects: list[Object], registry: Workload | None, method: str, path: str) -> Decision:
    return _strict_refusal(objects, registry) or at_workload(objects, registry, _request(registry, None, method, path))


def _via_proxy(objects: list[Object], registry: Workload | None, proxy: Workload, *, what: str, method: str,
               path: str, trust_domain: str | None) -> Decision:
    """Two hops: the proxy's own policies (the request arrives without a mesh identity), then the registry's
    policies for the proxy's identity."""
    first = at_workload(objects, proxy, _request(proxy, None, method, path))
    if not first.allowed:
        return Decision("DENY", first.policy, first.rule, f"at the {what}: {first.reason}")
    principal = principal_of(f"{proxy.namespace}/{proxy.service_account}",
                             trust_domain or infer_trust_domain(objects))
    second = at_workload(objects, registry, _request(registry, principal, method, path))
    return Decision(second.decision, second.policy, second.rule,
                    f"at the {what}: {first.reason}; then at the registry as {principal}: {second.reason}")


def _via_ingress(objects: list[Object], registry: Workload | None, *, method: str, path: str, raw: str, who: Caller,
                 ingress: Ingress | None, trust_domain: str, ambient_mode: bool = False) -> Decision:
    """At the ingress gateway as the caller (certificate, token or neither), then its routes (one may answer the
    request itself), then at the registry as the gateway (in ambient mode: through the registry's waypoint and
    ztunnel)."""
    assert ingress is not None  # caller() named `who` from it
    gw = ingress.gateway
    gateway = Workload("Deployment", "ingress gateway", gw.namespace, dict(gw.selector), gw.service_account, gw.port)
    first = at_workload(objects, gateway, Request(who.principal, method, path, ingress.address, gw.port, who.claims))
    if not first.allowed:
        return Decision("DENY", first.policy, first.rule, f"at the ingress gateway as {who.label}: {first.reason}")
    refused = routes.refusal(objects, ingress, method=method, path=path, raw=raw)
    if refused:
        return Decision("DENY", refused.policy, None, f"at the ingress gateway as {who.label}: {first.reason}; "
                                                      f"then {refused.reason}")
    principal = principal_of(gw.identity, trust_domain)
    if ambient_mode and registry is not None:  # in ambient mode the registry was found (and is enrolled)
        second = ambient.evaluate(objects, registry, client=principal, method=method, path=path,
                                  trust_domain=trust_domain)
    else:
        second = at_workload(objects, registry, _request(registry, principal, method, path))
    return Decision(second.decision, second.policy, second.rule,
                    f"at the ingress gateway as {who.label}: {first.reason}; then at the registry as {principal}: "
                    f"{second.reason}", second.hop)

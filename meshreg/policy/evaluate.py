"""Decides offline whether the rendered policies let a request through, hop by hop along the path it takes:
straight to the registry's sidecar, or through the node proxy first. Each hop is decided by meshreg.policy.rules;
paths are compared after Istio's default normalization (meshreg.policy.normalize).
"""

from __future__ import annotations

import re

from meshreg.config import names
from meshreg.errors import UsageError
from meshreg.policy.ingress import caller, is_ingress_identity
from meshreg.policy.normalize import Rejected, normalize
from meshreg.policy.rules import (PRINCIPAL, Decision, NotEvaluable, Request, Workload, at_workload,
                                  peer_authentication, policies)

__all__ = ["Decision", "NotEvaluable", "evaluate", "check_request", "find_workload", "infer_trust_domain",
           "principal_of"]

REGISTRY = ("Deployment", "registry")
NODE_PROXY = ("DaemonSet", "node-proxy")
_METHOD = re.compile(r"[A-Z][A-Z-]*")


def evaluate(objects: list[dict], *, identity: str, method: str, path: str,
             trust_domain: str | None = None, registry: str = REGISTRY[1], ingress=None) -> Decision:
    """Whether `identity` (NS/SA, node-proxy or anonymous; client:NAME or external through `ingress`, the
    config's spec.ingress) may send METHOD PATH to the registry named `registry`."""
    check_request(identity=identity, method=method, path=path)
    try:
        normalized = normalize(path)
    except Rejected as e:
        return Decision("DENY", None, None, str(e))
    registry = find_workload(objects, (REGISTRY[0], registry))
    if identity == "anonymous":
        return _anonymous(objects, registry, method, normalized)
    if identity == "node-proxy":
        return _via_node_proxy(objects, registry, method, normalized, trust_domain)
    if is_ingress_identity(identity):
        return _via_ingress(objects, registry, method, normalized, caller(ingress, identity), ingress,
                            trust_domain or infer_trust_domain(objects))
    principal = principal_of(identity, trust_domain or infer_trust_domain(objects))
    return at_workload(objects, registry, _request(registry, principal, method, normalized))


def check_request(*, identity: str, method: str, path: str) -> None:
    """Raise UsageError (one line) for an identity, method or path the evaluator cannot take."""
    if identity not in ("anonymous", "node-proxy") and not is_ingress_identity(identity):
        problem = names.check_identity(identity)
        if problem:
            raise UsageError(f"--as: {problem}, node-proxy, anonymous, client:NAME or external")
    if not _METHOD.fullmatch(method):
        raise UsageError(f"{method!r} is not an HTTP method (an uppercase token such as GET, HEAD, POST, PUT)")
    if not path.startswith("/"):
        raise UsageError(f"{path!r} is not a request path (it must start with '/', e.g. /v2/)")
    if any(not 0x21 <= ord(c) <= 0x7E for c in path):
        raise UsageError(f"{path!r} is not a request path (spaces and non-ASCII characters must be %-encoded)")


def principal_of(identity: str, trust_domain: str) -> str:
    ns, sa = identity.split("/")
    return f"{trust_domain}/ns/{ns}/sa/{sa}"


def infer_trust_domain(objects: list[dict]) -> str:
    """The one trust domain the policies name; any will do when they name none (no principal can differ)."""
    found = {m.group(1) for p in policies(objects, "AuthorizationPolicy") for rule in p["spec"].get("rules") or []
             for src in rule.get("from") or [] for field in ("principals", "notPrincipals")
             for value in src.get("source", {}).get(field) or [] if (m := PRINCIPAL.fullmatch(value))}
    if len(found) > 1:
        raise UsageError(f"the policies name several trust domains ({', '.join(sorted(found))}): pass trust_domain")
    return found.pop() if found else "cluster.local"


def find_workload(objects: list[dict], which: tuple[str, str]) -> Workload | None:
    kind, name = which
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
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


def _anonymous(objects, registry, method, path) -> Decision:
    peer = peer_authentication(objects, registry)
    if peer and peer[1] == "STRICT":
        return Decision("DENY", f"PeerAuthentication/{peer[0]}", None,
                        "STRICT mTLS rejects plain text before any AuthorizationPolicy: a request without a "
                        "mesh identity never reaches the registry")
    return at_workload(objects, registry, _request(registry, None, method, path))


def _via_node_proxy(objects, registry, method, path, trust_domain) -> Decision:
    proxy = find_workload(objects, NODE_PROXY)
    if proxy is None:
        return Decision("DENY", None, None, "there is no node proxy (spec.nodeProxy.enabled is false)")
    first = at_workload(objects, proxy, _request(proxy, None, method, path))
    if not first.allowed:
        return Decision("DENY", first.policy, first.rule, f"at the node proxy: {first.reason}")
    principal = principal_of(f"{proxy.namespace}/{proxy.service_account}",
                             trust_domain or infer_trust_domain(objects))
    second = at_workload(objects, registry, _request(registry, principal, method, path))
    return Decision(second.decision, second.policy, second.rule,
                    f"at the node proxy: {first.reason}; then at the registry as {principal}: {second.reason}")


def _via_ingress(objects, registry, method, path, who, ingress, trust_domain) -> Decision:
    """At the ingress gateway as the caller (certificate, token or neither), then at the registry as the gateway."""
    gw = ingress.gateway
    gateway = Workload("Deployment", "ingress gateway", gw.namespace, dict(gw.selector), gw.service_account, gw.port)
    first = at_workload(objects, gateway, Request(who.principal, method, path, ingress.address, gw.port, who.claims))
    if not first.allowed:
        return Decision("DENY", first.policy, first.rule, f"at the ingress gateway as {who.label}: {first.reason}")
    principal = principal_of(gw.identity, trust_domain)
    second = at_workload(objects, registry, _request(registry, principal, method, path))
    return Decision(second.decision, second.policy, second.rule,
                    f"at the ingress gateway as {who.label}: {first.reason}; then at the registry as {principal}: "
                    f"{second.reason}")

"""Istio AuthorizationPolicy -> Envoy network RBAC filters, as ztunnel enforces policies in ambient mode.

An independent second reading (it does not use meshreg's evaluator) of how istiod hands policies to ztunnel
(istio/istio pilot/pkg/serviceregistry/kube/controller/ambient, convertAuthorizationPolicy and handleRule):
- a policy with targetRef(s) is not for ztunnel; ztunnel supports only ALLOW and DENY;
- a rule that uses an HTTP attribute (hosts, methods, paths and their not- forms; requestPrincipals,
  remoteIpBlocks and their not- forms; a `when` key other than source.ip/namespace/principal, destination.ip/port)
  is dropped from an ALLOW policy ("omitted") and kept without those attributes in a DENY policy;
- what remains is matched on the connection: the peer's SPIFFE identity and the destination port.
DENY filters come first; with any ALLOW policy, a connection no ALLOW rule matches is closed.
"""

from __future__ import annotations

from .rbac import _any_of, _fields, _principal

RBAC = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
_L7_OPERATION = {"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}
_L7_SOURCE = {"requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks"}
_L4_WHEN = {"source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"}


def for_ztunnel(policy: dict) -> bool:
    spec = policy.get("spec") or {}
    return not (spec.get("targetRef") or spec.get("targetRefs")) and spec.get("action", "ALLOW") in ("ALLOW", "DENY")


def _l7(rule: dict) -> bool:
    return any(set(t.get("operation") or {}) & _L7_OPERATION for t in rule.get("to") or []) \
        or any(set(f.get("source") or {}) & _L7_SOURCE for f in rule.get("from") or []) \
        or any(w.get("key") not in _L4_WHEN for w in rule.get("when") or [])


def _identity(source: dict) -> dict:
    """The L4 part of a source: its principals (HTTP attributes left out)."""
    return _fields({k: v for k, v in source.items() if k not in _L7_SOURCE}, {"principals", "notPrincipals"},
                   {"principals": _principal}, all_key="and_ids", any_key="or_ids", neg="not_id")


def _permission(operation: dict) -> dict:
    """The L4 part of an operation: its destination ports (HTTP attributes left out)."""
    return _fields({k: v for k, v in operation.items() if k not in _L7_OPERATION}, {"ports", "notPorts"},
                   {"ports": lambda v: {"destination_port": int(v)}}, all_key="and_rules", any_key="or_rules",
                   neg="not_rule")


def rule_policy(rule: dict) -> dict:
    if rule.get("when"):
        raise NotImplementedError("lab L4 translator does not handle `when`")
    ids = [_identity(f.get("source") or {}) for f in rule.get("from") or []] or [{"any": True}]
    perms = [_permission(t.get("operation") or {}) for t in rule.get("to") or []] or [{"any": True}]
    return {"permissions": [_any_of(perms, "or_rules")], "principals": [_any_of(ids, "or_ids")]}


def network_filters(policies: list[dict]) -> list[dict]:
    """The network RBAC filters ztunnel's decisions amount to, for policies that select the workload."""
    by_action: dict = {"DENY": {}, "ALLOW": {}}
    for policy in sorted((p for p in policies if for_ztunnel(p)), key=lambda p: p["metadata"]["name"]):
        action = policy["spec"].get("action", "ALLOW")
        by_action[action].setdefault(policy["metadata"]["name"], None)
        for i, rule in enumerate(policy["spec"].get("rules") or []):
            if _l7(rule) and action == "ALLOW":
                continue  # never matches at ztunnel
            by_action[action][f"{policy['metadata']['name']}[{i}]"] = rule_policy(rule)
    filters = []
    for action in ("DENY", "ALLOW"):
        if by_action[action]:
            rules = {k: v for k, v in by_action[action].items() if v is not None}
            filters.append({"name": "envoy.filters.network.rbac", "typed_config": {
                "@type": RBAC, "stat_prefix": f"ztunnel_{action.lower()}", "rules": {"action": action,
                                                                                  "policies": rules}}})
    return filters

"""Istio AuthorizationPolicy -> Envoy RBAC filters, following Istio's documented translation.

An independent second reading of Istio's semantics (it does not use meshreg's evaluator):
- DENY policies go in one RBAC filter placed before a second filter holding the ALLOW policies;
  a workload with no ALLOW policy gets no ALLOW filter (everything not denied passes), one with ALLOW
  policies denies whatever none of their rules match (an ALLOW policy without rules matches nothing);
- each rule is one Envoy policy: `from` sources are ORed, `to` operations are ORed, from AND to;
  fields inside a source/operation are ANDed, values inside a field are ORed, notX fields are negated;
- principals match the authenticated peer's URI SAN with the `spiffe://` prefix Istio strips put back;
  `*` means any authenticated principal, `x*` is a prefix, `*x` a suffix;
- methods match the `:method` header, paths the (normalized) path without its query.
Any field this lab does not translate raises, so a policy meshreg renders never silently loses a condition.
"""

from __future__ import annotations

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
_SOURCE_FIELDS = {"principals", "notPrincipals"}
_OPERATION_FIELDS = {"methods", "notMethods", "paths", "notPaths"}


def _string_match(value: str, *, prefix: str = "") -> dict:
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    return {"exact": prefix + value}


def _any_of(matchers: list[dict], key: str) -> dict:
    return matchers[0] if len(matchers) == 1 else {key: {key[3:]: matchers}}


def _principal(value: str) -> dict:
    return {"authenticated": {"principal_name": _string_match(value, prefix="spiffe://")}}


def _method(value: str) -> dict:
    return {"header": {"name": ":method", "string_match": {"exact": value}}}


def _path(value: str) -> dict:
    return {"url_path": {"path": _string_match(value)}}


def _fields(spec: dict, allowed: set, translate: dict, *, all_key: str, any_key: str, neg: str) -> dict:
    unknown = set(spec) - allowed
    if unknown:
        raise NotImplementedError(f"lab RBAC translator does not handle {sorted(unknown)}")
    parts = []
    for field in sorted(spec):
        base = field[3].lower() + field[4:] if field.startswith("not") else field
        one = _any_of([translate[base](v) for v in spec[field]], any_key)
        parts.append({neg: one} if field.startswith("not") else one)
    if not parts:
        return {"any": True}
    return parts[0] if len(parts) == 1 else {all_key: {all_key[4:]: parts}}


def _source(source: dict) -> dict:
    return _fields(source, _SOURCE_FIELDS, {"principals": _principal},
                   all_key="and_ids", any_key="or_ids", neg="not_id")


def _operation(operation: dict) -> dict:
    return _fields(operation, _OPERATION_FIELDS, {"methods": _method, "paths": _path},
                   all_key="and_rules", any_key="or_rules", neg="not_rule")


def rule_policy(rule: dict) -> dict:
    """One Istio rule as one Envoy RBAC policy."""
    if set(rule) - {"from", "to"}:
        raise NotImplementedError(f"lab RBAC translator does not handle rule keys {sorted(set(rule) - {'from', 'to'})}")
    principals = [_source(f["source"]) for f in rule.get("from", [])] or [{"any": True}]
    permissions = [_operation(t["operation"]) for t in rule.get("to", [])] or [{"any": True}]
    return {"permissions": [_any_of(permissions, "or_rules")], "principals": [_any_of(principals, "or_ids")]}


def selects(policy: dict, *, namespace: str, pod_labels: dict) -> bool:
    """Whether an AuthorizationPolicy applies to a pod with these labels in `namespace` (no root-namespace policies)."""
    if policy.get("kind") != "AuthorizationPolicy" or policy["metadata"].get("namespace") != namespace:
        return False
    spec = policy.get("spec") or {}
    if "targetRef" in spec or "targetRefs" in spec:
        raise NotImplementedError("lab RBAC translator does not handle targetRefs")
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    return all(pod_labels.get(k) == v for k, v in wanted.items())


def http_filters(policies: list[dict]) -> list[dict]:
    """The RBAC HTTP filters Istio would install for these (already selected) policies, DENY first."""
    by_action: dict = {"DENY": {}, "ALLOW": {}}
    for policy in sorted(policies, key=lambda p: p["metadata"]["name"]):
        spec = policy.get("spec") or {}
        action = spec.get("action", "ALLOW")
        if action not in by_action:
            raise NotImplementedError(f"lab RBAC translator does not handle action {action}")
        by_action[action].setdefault(policy["metadata"]["name"], None)  # an ALLOW policy with no rules still counts
        for i, rule in enumerate(spec.get("rules") or []):
            by_action[action][f"{policy['metadata']['name']}[{i}]"] = rule_policy(rule)
    filters = []
    for action in ("DENY", "ALLOW"):
        if by_action[action]:
            envoy_policies = {k: v for k, v in by_action[action].items() if v is not None}
            filters.append({"name": f"rbac-{action.lower()}",
                            "typed_config": {"@type": RBAC, "rules": {"action": action, "policies": envoy_policies}}})
    return filters

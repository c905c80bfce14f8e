"""Istio AuthorizationPolicy -> Envoy RBAC filters, following Istio's documented translation.

An independent second reading of Istio's semantics (it does not use meshreg's evaluator):
- DENY policies go in one RBAC filter placed before a second filter holding the ALLOW policies;
  a workload with no ALLOW policy gets no ALLOW filter (everything not denied passes), one with ALLOW
  policies denies whatever none of their rules match (an ALLOW policy without rules matches nothing);
- each rule is one Envoy policy: `from` sources are ORed, `to` operations are ORed, from AND to;
  fields inside a source/operation are ANDed, values inside a field are ORed, notX fields are negated;
- principals match the authenticated peer's URI SAN with the `spiffe://` prefix Istio strips put back;
  `*` means any authenticated principal, `x*` is a prefix, `*x` a suffix;
- methods match the `:method` header, paths the (normalized) path without its query, hosts the `:authority`
  header ignoring case;
- request principals (Istio 1.22+) are split at the last '/' into an issuer and a subject, each matched against the
  JWT payload the jwt_authn filter keeps in its metadata (`payload.iss`, `payload.sub`); `when` conditions on
  `request.auth.claims[...]` match the payload claim as a string or as a list holding a match, and go with the
  principals of the rule.
Any field this lab does not translate raises, so a policy meshreg renders never silently loses a condition.
"""

from __future__ import annotations

import re

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
JWT_FILTER = "envoy.filters.http.jwt_authn"
_SOURCE_FIELDS = {"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals"}
_OPERATION_FIELDS = {"methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"}


def _string_match(value: str, *, prefix: str = "", ignore_case: bool = False) -> dict:
    case = {"ignore_case": True} if ignore_case else {}
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1], **case}
    if value.startswith("*"):
        return {"suffix": value[1:], **case}
    return {"exact": prefix + value, **case}


def _payload(claims: list[str], value: dict) -> dict:
    """A principal matching the JWT payload jwt_authn keeps at metadata[envoy.filters.http.jwt_authn].payload."""
    path = [{"key": "payload"}, *({"key": c} for c in claims)]
    return {"metadata": {"filter": JWT_FILTER, "path": path, "value": value}}


def _request_principal(value: str) -> dict:
    idx = value.rfind("/")
    iss, sub = (value[:idx], value[idx + 1:]) if idx >= 0 else (value, "")
    anything = {"safe_regex": {"regex": ".+"}}
    if value == "*":
        match_iss, match_sub = anything, anything
    elif value.startswith("*"):
        match_iss = (anything if iss == "*" else {"suffix": iss[1:]}) if idx >= 0 else anything
        match_sub = {"exact": sub} if idx >= 0 else {"suffix": value[1:]}
    elif value.endswith("*"):
        match_iss = {"exact": iss} if idx >= 0 else {"prefix": value[:-1]}
        match_sub = (anything if sub == "*" else {"prefix": sub[:-1]}) if idx >= 0 else anything
    else:
        match_iss, match_sub = {"exact": iss}, {"exact": sub}
    return {"and_ids": {"ids": [_payload(["iss"], {"string_match": match_iss}),
                                _payload(["sub"], {"string_match": match_sub})]}}


def _claims(values: list[str], key: str) -> dict:
    names = re.findall(r"\[([^\[\]]+)\]", key.removeprefix("request.auth.claims"))
    if not key.startswith("request.auth.claims[") or not names:
        raise NotImplementedError(f"lab RBAC translator does not handle when key {key}")
    one = [{"string_match": _string_match(v)} for v in values]
    value = one[0] if len(one) == 1 else {"or_match": {"value_matchers": one}}
    return _payload(names, {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}})


def _when(condition: dict) -> list[dict]:
    unknown = set(condition) - {"key", "values", "notValues"}
    if unknown:
        raise NotImplementedError(f"lab RBAC translator does not handle {sorted(unknown)} in when")
    out = []
    if condition.get("values"):
        out.append(_claims(condition["values"], condition["key"]))
    if condition.get("notValues"):
        out.append({"not_id": _claims(condition["notValues"], condition["key"])})
    return out


def _any_of(matchers: list[dict], key: str) -> dict:
    return matchers[0] if len(matchers) == 1 else {key: {key[3:]: matchers}}


def _principal(value: str) -> dict:
    return {"authenticated": {"principal_name": _string_match(value, prefix="spiffe://")}}


def _host(value: str) -> dict:
    if value == "*":
        return {"header": {"name": ":authority", "present_match": True}}
    return {"header": {"name": ":authority", "string_match": _string_match(value, ignore_case=True)}}


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
    return _fields(source, _SOURCE_FIELDS, {"principals": _principal, "requestPrincipals": _request_principal},
                   all_key="and_ids", any_key="or_ids", neg="not_id")


def _operation(operation: dict) -> dict:
    return _fields(operation, _OPERATION_FIELDS, {"methods": _method, "paths": _path, "hosts": _host},
                   all_key="and_rules", any_key="or_rules", neg="not_rule")


def rule_policy(rule: dict) -> dict:
    """One Istio rule as one Envoy RBAC policy."""
    if set(rule) - {"from", "to", "when"}:
        raise NotImplementedError(f"lab RBAC translator does not handle rule keys {sorted(set(rule) - {'from', 'to'})}")
    principals = [_source(f["source"]) for f in rule.get("from", [])] or [{"any": True}]
    whens = [p for c in rule.get("when", []) for p in _when(c)]
    if whens:  # Istio adds the conditions to every source of the rule
        principals = [{"and_ids": {"ids": [p, *whens]}} for p in principals]
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
        for i, rule in enumerate(spec.get("rules") or []):  # named as Istio names them (authz/builder/builder.go)
            meta = policy["metadata"]
            by_action[action][f"ns[{meta['namespace']}]-policy[{meta['name']}]-rule[{i}]"] = rule_policy(rule)
    filters = []
    for action in ("DENY", "ALLOW"):
        if by_action[action]:
            envoy_policies = {k: v for k, v in by_action[action].items() if v is not None}
            filters.append({"name": f"rbac-{action.lower()}",
                            "typed_config": {"@type": RBAC, "rules": {"action": action, "policies": envoy_policies}}})
    return filters

"""Istio's AuthorizationPolicy semantics at one workload, as documented: which policies select it, then CUSTOM,
DENY and ALLOW in that order, and how a rule matches.

With no ALLOW policy selecting the workload the request is allowed, otherwise whatever no ALLOW rule matches is
denied. Values in one field are ORed, fields in a source or operation are ANDed, the `from`/`to` entries of a rule
are ORed within and ANDed with each other, rules are ORed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshreg.errors import MeshregError
from meshreg.objects import Labels, Object
from meshreg.policy import claims, fields
from meshreg.policy.claims import Claims
from meshreg.policy.strings import istio_match as _string_match

ROOT_NAMESPACE = "istio-system"  # Istio's default root namespace: policies there without a selector apply mesh-wide
PRINCIPAL = re.compile(r"([^/]+)/ns/([^/]+)/sa/([^/]+)")
_SOURCE_FIELDS = ("principals", "notPrincipals", "namespaces", "notNamespaces", "requestPrincipals",
                  "notRequestPrincipals")
_OPERATION_FIELDS = ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths")


class NotEvaluable(MeshregError):
    """A policy depends on something only the cluster knows (an external authorizer, IPs, headers)."""

    exit_code = 1


@dataclass(frozen=True)
class Decision:
    """The outcome for one request, with the policy and rule index that decided it and why."""

    decision: str  # "ALLOW" or "DENY"
    policy: str | None
    rule: int | None
    reason: str
    hop: str | None = None  # in ambient mode: "node proxy", "waypoint" or "ztunnel", the hop that decided

    @property
    def allowed(self) -> bool:
        return self.decision == "ALLOW"


@dataclass(frozen=True)
class Request:
    """One request as a policy sees it: who sends it (mTLS peer, JWT claims), and what and where it asks."""

    principal: str | None  # None: plain text, no peer certificate
    method: str
    path: str  # normalized, without the query
    host: str
    port: int
    claims: Claims | None = None  # the payload of a JWT the RequestAuthentication accepted; None: no token


@dataclass(frozen=True)
class Workload:
    """A rendered workload a policy may apply to: its kind, name, namespace, pod labels, identity and port."""

    kind: str
    name: str
    namespace: str
    labels: Labels
    service_account: str
    port: int

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def principal_of(identity: str, trust_domain: str) -> str:
    """`builds/kaniko` -> `<trust_domain>/ns/builds/sa/kaniko`."""
    ns, sa = identity.split("/")
    return f"{trust_domain}/ns/{ns}/sa/{sa}"


def policies(objects: list[Object], kind: str) -> list[Object]:
    """The Istio security objects (AuthorizationPolicy, PeerAuthentication) of one kind."""
    return [o for o in objects if o.get("kind") == kind and o.get("apiVersion", "").startswith("security.istio.io/")]


def selects(policy: Object, workload: Workload) -> bool:
    spec, ns = fields.spec(policy), fields.namespace(policy)
    if fields.targets(spec):
        return False  # attached to a Gateway/Service/waypoint, not to a sidecar selected by labels
    wanted = fields.match_labels(spec)
    labelled = all(workload.labels.get(k) == v for k, v in wanted.items())
    if ns == ROOT_NAMESPACE and ns != workload.namespace:
        # An AuthorizationPolicy in the root namespace applies mesh-wide, to the pods its selector picks in every
        # namespace; a PeerAuthentication there only without a selector (the mesh-wide default).
        return labelled if policy.get("kind") == "AuthorizationPolicy" else not wanted
    return ns == workload.namespace and labelled


def peer_authentication(objects: list[Object], workload: Workload | None) -> tuple[str, str] | None:
    """(name, mode) of the PeerAuthentication in force: workload selector, then namespace, then mesh-wide."""
    if workload is None:
        return None
    ranked = []
    for pa in policies(objects, "PeerAuthentication"):
        if selects(pa, workload):
            specific = bool(fields.match_labels(fields.spec(pa)))
            local = pa["metadata"].get("namespace") == workload.namespace
            mode = (pa["spec"].get("portLevelMtls") or {}).get(str(workload.port), {}).get("mode") \
                or (pa["spec"].get("mtls") or {}).get("mode", "UNSET")
            ranked.append((specific, local, pa["metadata"]["name"], mode))
    ranked.sort(reverse=True)
    return (ranked[0][2], ranked[0][3]) if ranked else None


def at_workload(objects: list[Object], workload: Workload | None, request: Request) -> Decision:
    """CUSTOM, then DENY, then ALLOW policies selecting `workload`, for one request."""
    if workload is None:
        return Decision("DENY", None, None, "the objects hold no registry Deployment to send the request to")
    selected = [p for p in policies(objects, "AuthorizationPolicy") if selects(p, workload)]
    return decide(selected, request, no_allow=f"no ALLOW policy selects {workload}, so Istio allows")


def decide(selected: list[Object], request: Request, *, no_allow: str) -> Decision:
    """CUSTOM, then DENY, then ALLOW among the policies that apply where the request is decided; `no_allow` is
    the reason when none of them is an ALLOW policy."""
    by_action = {a: [p for p in selected if fields.spec(p).get("action", "ALLOW") == a]
                 for a in ("CUSTOM", "DENY", "ALLOW")}
    for policy, index, _ in _matches(by_action["CUSTOM"], request):
        raise NotEvaluable(f"CUSTOM policy {policy} rule {index} sends this request to an external authorizer, "
                           "which cannot be evaluated offline")
    for policy, index, why in _matches(by_action["DENY"], request):
        return Decision("DENY", policy, index, f"DENY rule matches: {why}")
    if not by_action["ALLOW"]:
        return Decision("ALLOW", None, None, no_allow)
    for policy, index, why in _matches(by_action["ALLOW"], request):
        return Decision("ALLOW", policy, index, f"ALLOW rule matches: {why}")
    misses = "; ".join(f"{p['metadata']['name']}: {_miss(p, request)}" for p in by_action["ALLOW"])
    return Decision("DENY", None, None, f"no ALLOW rule matches ({misses})")


def _matches(policies: list[Object], request: Request) -> Iterator[tuple[str, int, str]]:
    for policy in policies:
        for index, rule in enumerate(policy["spec"].get("rules") or []):
            ok, why = match_rule(rule, request, where=f"{policy['metadata']['name']} rule {index}")
            if ok:
                yield policy["metadata"]["name"], index, why


def _miss(policy: Object, request: Request) -> str:
    rules = policy["spec"].get("rules") or []
    if not rules:
        return "no rules"
    whys = [match_rule(rule, request, where=f"{policy['metadata']['name']} rule {i}")[1] for i, rule in
            enumerate(rules)]
    return ", ".join(f"rule {i}: {why}" for i, why in enumerate(whys))


def match_rule(rule: Object, request: Request, *, where: str) -> tuple[bool, str]:
    """Whether one rule matches, and the facts that made it match or the first that did not."""
    parts = []
    for key, clause in (("from", "source"), ("to", "operation")):
        entries = rule.get(key) or []
        if not entries:
            continue  # absent: no constraint
        ok, fact = _match_entries(entries, clause, request, where=where)
        if not ok:
            return False, fact
        parts.append(fact)
    ok, facts = _match_when(rule.get("when") or [], request, where=where)
    if not ok:
        return False, facts[0]
    return True, " and ".join(parts + facts) or "the rule has no conditions"


def _match_entries(entries: list[Object], clause: str, request: Request, *, where: str) -> tuple[bool, str]:
    """`from` or `to`: the first entry whose source or operation (`clause`) matches, else why none does."""
    results = [_match_clause(entry.get(clause) or {}, request, where=where) for entry in entries]
    hit = next((why for ok, why in results if ok), None)
    if hit is None:
        return False, " / ".join(why for _, why in results)
    return True, hit


def _match_when(conditions: list[Object], request: Request, *, where: str) -> tuple[bool, list[str]]:
    """Every `when` condition must match: (True, the facts of all), or (False, [the first that does not])."""
    facts = []
    for condition in conditions:
        if not claims.evaluable(condition):
            raise NotEvaluable(f"{where} has a `when` condition on {condition.get('key')}, which cannot be "
                               "evaluated offline")
        ok, fact = claims.match_condition(condition, request.claims)
        if not ok:
            return False, [fact]
        facts.append(fact)
    return True, facts


def _match_clause(clause: Object, request: Request, *, where: str) -> tuple[bool, str]:
    """A source or operation: every field set must match (empty lists count as unset)."""
    facts, unknown = [], []
    for field, values in clause.items():
        if not values:
            continue
        if field not in _SOURCE_FIELDS + _OPERATION_FIELDS:
            unknown.append(field)
            continue
        ok, fact = _match_field(field, values, request, where=where)
        if not ok:
            return False, fact
        facts.append(fact)
    if unknown:
        raise NotEvaluable(f"{where} uses {', '.join(unknown)}, which cannot be evaluated offline")
    return True, " and ".join(facts)


def _match_field(field: str, values: list[Any], request: Request, *, where: str) -> tuple[bool, str]:
    negative = field.startswith("not")
    base = field[3].lower() + field[4:] if negative else field
    if base == "requestPrincipals":
        return claims.match_request_principals(values, request.claims, negative=negative, field=field)
    label, value = _attribute(base, request)
    if base == "paths" and any("{" in v for v in values):
        raise NotEvaluable(f"{where} uses path templates ({{*}}, {{**}}), which are not evaluated offline")
    found = _found(base, value, values)
    shown = value if value is not None else "none (no peer certificate)"
    listed = f"{field} [{', '.join(map(str, values))}]"
    return found != negative, f"{label} {shown} {'is' if found else 'is not'} in {listed}"


def _found(base: str, value: str | None, values: list[Any]) -> bool:
    """Whether the request's attribute `value` matches one of `values` (hosts: without case, port or not)."""
    if value is None:
        return False
    if any(_string_match(v, value, ignore_case=base == "hosts") for v in values):
        return True
    # A Host header may carry the port or not.
    return base == "hosts" and any(_string_match(v, value.rsplit(":", 1)[0], ignore_case=True) for v in values)


def _attribute(base: str, request: Request) -> tuple[str, str | None]:
    peer = PRINCIPAL.fullmatch(request.principal or "")
    return {
        "principals": ("principal", request.principal),
        "namespaces": ("source namespace", peer.group(2) if peer else None),
        "hosts": ("host", request.host),
        "ports": ("port", str(request.port)),
        "methods": ("method", request.method),
        "paths": ("path", request.path),
    }[base]


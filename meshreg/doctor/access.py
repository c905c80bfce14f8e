"""Check 9: who can bypass the mesh. Port-forward, exec and attach reach the registry's port inside its pod, behind
the sidecar that enforces the policies; editing the AuthorizationPolicies rewrites them. `who_can` answers "which
subjects may do X in namespace N" from Roles, ClusterRoles (aggregated ones included) and their bindings, with
RBAC's own matching (wildcards, `*/subresource`, resourceNames)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.selectors import matches
from meshreg.config import PushProxy
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, ok, warn

CHECK = "bypass"
RBAC = "rbac.authorization.k8s.io/v1"
Request = tuple[str, str, str]  # (verb, API group, resource[/subresource])
# (verb, API group, resource[/subresource]) -> what it lets a subject do. `get` opens exec, attach and
# port-forward over WebSocket where the API server does not also require `create` for that upgrade.
BYPASS = {
    **{(verb, "", f"pods/{sub}"): what for sub, what in (("portforward", "port-forward"), ("exec", "exec"),
                                                        ("attach", "attach")) for verb in ("create", "get")},
    **{(verb, "security.istio.io", "authorizationpolicies"): "edit AuthorizationPolicies"
       for verb in ("create", "update", "patch", "delete")},
}


@dataclass(frozen=True)
class Grant:
    """A subject allowed one request, and through which binding and role."""

    subject: str  # "User alice", "Group dev", "ServiceAccount ci/runner"
    request: Request
    binding: str
    role: str
    names: tuple[str, ...] = ()  # resourceNames the rule is limited to


def allows(rule: Object, verb: str, group: str, resource: str,
           name: str | None = None) -> tuple[bool, tuple[str, ...]]:
    """RBAC's rule matching for one request; (matched, resourceNames it is limited to)."""
    if not (_lists(rule.get("verbs"), verb) and _lists(rule.get("apiGroups"), group)):
        return False, ()
    if not _lists_resource(rule.get("resources"), resource):
        return False, ()
    names = tuple(rule.get("resourceNames") or ())
    return (not names or name is None or name in names), names


def _lists(values: list[str] | None, wanted: str) -> bool:
    """A rule's verbs or API groups hold `wanted`, or `*`."""
    return "*" in (values or []) or wanted in (values or [])


def _lists_resource(resources: list[str] | None, resource: str) -> bool:
    """A rule's resources hold `resource`, `*`, or for a subresource `*/subresource`."""
    sub = resource.partition("/")[2]
    return any(r in ("*", resource) or (sub and r == f"*/{sub}") for r in resources or [])


def rules_of(ref: Object, *, roles: dict[str, Object], cluster_roles: dict[str, Object],
             seen: set[str] | None = None) -> list[Object]:
    """A role's rules; an aggregated ClusterRole also gets those of every ClusterRole its selectors pick."""
    if ref.get("kind") == "Role":
        found: list[Object] = (roles.get(ref.get("name") or "") or {}).get("rules") or []
        return found
    seen = seen or set()
    role = cluster_roles.get(ref.get("name") or "")
    if role is None or ref.get("name") in seen:
        return []
    seen.add(ref["name"])
    return list(role.get("rules") or []) + _aggregated(role, roles=roles, cluster_roles=cluster_roles, seen=seen)


def _aggregated(role: Object, *, roles: dict[str, Object], cluster_roles: dict[str, Object],
                seen: set[str]) -> list[Object]:
    """The rules of every ClusterRole an aggregated ClusterRole's selectors pick."""
    rules = []
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        for other in cluster_roles.values():
            if matches(selector, other["metadata"].get("labels") or {}):
                rules += rules_of({"kind": "ClusterRole", "name": other["metadata"]["name"]}, roles=roles,
                                  cluster_roles=cluster_roles, seen=seen)
    return rules


def _everything(rule: Object) -> bool:
    """`*` verbs on `*` resources in `*` groups, not limited by name: a cluster admin's rule."""
    return all("*" in (rule.get(k) or []) for k in ("verbs", "apiGroups", "resources")) \
        and not rule.get("resourceNames")


def _subject(s: Object) -> str:
    if s.get("kind") == "ServiceAccount":
        return f"ServiceAccount {s.get('namespace')}/{s.get('name')}"
    return f"{s.get('kind')} {s.get('name')}"


def who_can(cluster: ClusterClient, *, namespace: str,
            requests: Sequence[Request]) -> tuple[list[Grant], list[str]]:
    """(grants of `requests` [(verb, group, resource)] in `namespace` to anyone but cluster admins, the cluster
    admins left out). Bindings the API server keeps for its own components (`system:` ClusterRoleBindings) are left
    out too."""
    cluster_roles = {r["metadata"]["name"]: r for r in cluster.list(RBAC, "ClusterRole")}
    roles = {r["metadata"]["name"]: r for r in cluster.list(RBAC, "Role", namespace=namespace)}
    bindings = [(b, rules_of(b["roleRef"], roles=roles, cluster_roles=cluster_roles))
                for b in cluster.list(RBAC, "ClusterRoleBinding") + cluster.list(RBAC, "RoleBinding",
                                                                                 namespace=namespace)]
    admins = _admins(bindings)
    grants = [grant for b, rules in bindings if not _system(b)
              for grant in _grants(b, rules, namespace=namespace, requests=requests, admins=admins)]
    return grants, admins


def _admins(bindings: list[tuple[Object, list[Object]]]) -> list[str]:
    """The subjects of ClusterRoleBindings to a role that may do everything, everywhere."""
    return sorted({_subject(s) for b, rules in bindings if b["kind"] == "ClusterRoleBinding"
                   and any(_everything(r) for r in rules) for s in b.get("subjects") or []})


def _system(binding: Object) -> bool:
    """A ClusterRoleBinding the API server keeps for its own components."""
    return binding["kind"] == "ClusterRoleBinding" and binding["metadata"]["name"].startswith("system:")


def _grants(binding: Object, rules: list[Object], *, namespace: str, requests: Sequence[Request],
            admins: list[str]) -> list[Grant]:
    """What one binding grants its subjects (cluster admins left out) of `requests`."""
    kind, ref = binding["kind"], binding["roleRef"]
    where = f"{kind} " + (f"{namespace}/" if kind == "RoleBinding" else "") + binding["metadata"]["name"]
    role = f"{ref.get('kind')} {ref.get('name')}"
    out = []
    for s in binding.get("subjects") or []:
        if _subject(s) in admins:
            continue
        for request in requests:
            names = _granted(rules, request)
            if names is not None:
                out.append(Grant(_subject(s), request, where, role, names))
    return out


def _granted(rules: list[Object], request: Request) -> tuple[str, ...] | None:
    """None when no rule allows `request`; else the resourceNames the allowing rules limit it to (() for none)."""
    hits = [allows(r, *request) for r in rules]
    if not any(matched for matched, _ in hits):
        return None
    return tuple(sorted({n for matched, names in hits if matched for n in names}))


def check(facts: Facts) -> list[Result]:
    return _bypass(facts) + [_push_proxy(facts, reg.name, reg.push_proxy) for reg in facts.cfg.registries
                             if reg.push_proxy]


def _bypass(facts: Facts) -> list[Result]:
    ns = facts.cfg.namespace
    grants, admins = who_can(facts.cluster, namespace=ns, requests=list(BYPASS))
    if not grants:
        return [ok(CHECK, f"only cluster admins ({_few(admins)}) may exec, attach or port-forward into pods in {ns} "
                          "or edit its AuthorizationPolicies")]
    by_subject: dict[str, list[Grant]] = {}
    for g in grants:
        by_subject.setdefault(g.subject, []).append(g)
    return [warn(CHECK, f"{subject} may {_actions(found)} in namespace {ns}, bypassing the mesh's policies "
                        f"({_via(found)})",
                 "if that is not intended, remove the binding or narrow the role; the registry itself has no "
                 "other authentication") for subject, found in sorted(by_subject.items())]


def _push_proxy(facts: Facts, registry: str, proxy: PushProxy) -> Result:
    """Who may push through a registry's push proxy: whoever may port-forward in its namespace (meshreg connect)."""
    ns = proxy.namespace
    grants, admins = who_can(facts.cluster, namespace=ns, requests=[("create", "", "pods/portforward"),
                                                                     ("get", "", "pods/portforward")])
    holders = sorted({g.subject for g in grants})
    where = f"the push proxy of registry {registry} (namespace {ns}, repositories {', '.join(proxy.repositories)})"
    if not holders:
        return ok(CHECK, f"only cluster admins ({_few(admins)}) may push through {where}; grant others with "
                         f"kubectl -n {ns} create rolebinding NAME --role=meshreg-connect --user=USER")
    return ok(CHECK, f"{', '.join(holders)} may push through {where} ({_via(grants)})")


def _actions(grants: list[Grant]) -> str:
    seen: list[str] = []
    for g in grants:
        what = BYPASS.get(g.request, " ".join(g.request))
        what += f" (only {', '.join(g.names)})" if g.names else ""
        if what not in seen:
            seen.append(what)
    return ", ".join(seen)


def _via(grants: list[Grant]) -> str:
    return "; ".join(sorted({f"{g.binding} -> {g.role}" for g in grants}))


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") if names else "none found"

"""Check 9: who can bypass the mesh. Port-forward, exec and attach reach the registry's port inside its pod, behind
the sidecar that enforces the policies; editing the AuthorizationPolicies rewrites them. `who_can` answers "which
subjects may do X in namespace N" from Roles, ClusterRoles (aggregated ones included) and their bindings, with
RBAC's own matching (wildcards, `*/subresource`, resourceNames)."""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.doctor import ok, warn
from meshreg.cluster.selectors import matches

CHECK = "bypass"
RBAC = "rbac.authorization.k8s.io/v1"
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
    request: tuple  # (verb, group, resource)
    binding: str
    role: str
    names: tuple = ()  # resourceNames the rule is limited to


def allows(rule: dict, verb: str, group: str, resource: str, name: str | None = None) -> tuple[bool, tuple]:
    """RBAC's rule matching for one request; (matched, resourceNames it is limited to)."""
    verbs, groups = rule.get("verbs") or [], rule.get("apiGroups") or []
    if not (("*" in verbs or verb in verbs) and ("*" in groups or group in groups)):
        return False, ()
    sub = resource.partition("/")[2]
    if not any(r in ("*", resource) or (sub and r == f"*/{sub}") for r in rule.get("resources") or []):
        return False, ()
    names = tuple(rule.get("resourceNames") or ())
    return (not names or name is None or name in names), names


def rules_of(ref: dict, *, roles: dict, cluster_roles: dict, seen=None) -> list:
    """A role's rules; an aggregated ClusterRole also gets those of every ClusterRole its selectors pick."""
    if ref.get("kind") == "Role":
        return (roles.get(ref.get("name")) or {}).get("rules") or []
    seen = seen or set()
    role = cluster_roles.get(ref.get("name"))
    if role is None or ref.get("name") in seen:
        return []
    seen.add(ref["name"])
    rules = list(role.get("rules") or [])
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        for other in cluster_roles.values():
            if matches(selector, other["metadata"].get("labels") or {}):
                rules += rules_of({"kind": "ClusterRole", "name": other["metadata"]["name"]}, roles=roles,
                                  cluster_roles=cluster_roles, seen=seen)
    return rules


def _everything(rule: dict) -> bool:
    """`*` verbs on `*` resources in `*` groups, not limited by name: a cluster admin's rule."""
    return all("*" in (rule.get(k) or []) for k in ("verbs", "apiGroups", "resources")) \
        and not rule.get("resourceNames")


def _subject(s: dict) -> str:
    if s.get("kind") == "ServiceAccount":
        return f"ServiceAccount {s.get('namespace')}/{s.get('name')}"
    return f"{s.get('kind')} {s.get('name')}"


def who_can(cluster, *, namespace: str, requests) -> tuple[list[Grant], list[str]]:
    """(grants of `requests` [(verb, group, resource)] in `namespace` to anyone but cluster admins, the cluster
    admins left out). Bindings the API server keeps for its own components (`system:` ClusterRoleBindings) are left
    out too."""
    cluster_roles = {r["metadata"]["name"]: r for r in cluster.list(RBAC, "ClusterRole")}
    roles = {r["metadata"]["name"]: r for r in cluster.list(RBAC, "Role", namespace=namespace)}
    bindings = cluster.list(RBAC, "ClusterRoleBinding") + cluster.list(RBAC, "RoleBinding", namespace=namespace)
    admins = sorted({_subject(s) for b in bindings if b["kind"] == "ClusterRoleBinding"
                     and any(_everything(r) for r in rules_of(b["roleRef"], roles=roles, cluster_roles=cluster_roles))
                     for s in b.get("subjects") or []})
    grants = []
    for b in bindings:
        if b["kind"] == "ClusterRoleBinding" and b["metadata"]["name"].startswith("system:"):
            continue
        rules = rules_of(b["roleRef"], roles=roles, cluster_roles=cluster_roles)
        where = f"{b['kind']} " + (f"{namespace}/" if b["kind"] == "RoleBinding" else "") + b["metadata"]["name"]
        role = f"{b['roleRef'].get('kind')} {b['roleRef'].get('name')}"
        for s in b.get("subjects") or []:
            if _subject(s) in admins:
                continue
            for request in requests:
                hits = [allows(r, *request) for r in rules]
                if any(ok for ok, _ in hits):
                    names = tuple(sorted({n for ok, ns in hits if ok for n in ns}))
                    grants.append(Grant(_subject(s), request, where, role, names))
    return grants, admins


def check(facts) -> list:
    return _bypass(facts) + [_push_proxy(facts, reg) for reg in facts.cfg.registries if reg.push_proxy]


def _bypass(facts) -> list:
    ns = facts.cfg.namespace
    grants, admins = who_can(facts.cluster, namespace=ns, requests=list(BYPASS))
    if not grants:
        return [ok(CHECK, f"only cluster admins ({_few(admins)}) may exec, attach or port-forward into pods in {ns} "
                          "or edit its AuthorizationPolicies")]
    by_subject: dict = {}
    for g in grants:
        by_subject.setdefault(g.subject, []).append(g)
    return [warn(CHECK, f"{subject} may {_actions(found)} in namespace {ns}, bypassing the mesh's policies "
                        f"({_via(found)})",
                 "if that is not intended, remove the binding or narrow the role; the registry itself has no "
                 "other authentication") for subject, found in sorted(by_subject.items())]


def _push_proxy(facts, reg):
    """Who may push through a registry's push proxy: whoever may port-forward in its namespace (meshreg connect)."""
    ns = reg.push_proxy.namespace
    grants, admins = who_can(facts.cluster, namespace=ns, requests=[("create", "", "pods/portforward"),
                                                                     ("get", "", "pods/portforward")])
    holders = sorted({g.subject for g in grants})
    where = f"the push proxy of registry {reg.name} (namespace {ns}, repositories {', '.join(reg.push_proxy.repositories)})"
    if not holders:
        return ok(CHECK, f"only cluster admins ({_few(admins)}) may push through {where}; grant others with "
                         f"kubectl -n {ns} create rolebinding NAME --role=meshreg-connect --user=USER")
    return ok(CHECK, f"{', '.join(holders)} may push through {where} ({_via(grants)})")


def _actions(grants) -> str:
    seen = []
    for g in grants:
        what = BYPASS.get(g.request, " ".join(g.request))
        what += f" (only {', '.join(g.names)})" if g.names else ""
        if what not in seen:
            seen.append(what)
    return ", ".join(seen)


def _via(grants) -> str:
    return "; ".join(sorted({f"{g.binding} -> {g.role}" for g in grants}))


def _few(names) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") if names else "none found"

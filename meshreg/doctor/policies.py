"""Check 5: Istio policies meshreg did not render that touch the registry or the node proxy: CUSTOM (ext_authz),
ALLOW and DENY AuthorizationPolicies in the registry's namespace or the mesh root namespace that select their pods,
other PeerAuthentications selecting them, and the mesh-wide mTLS mode."""

from __future__ import annotations

from meshreg.cluster.api import Object
from meshreg.cluster.selectors import matches
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, ok, warn

CHECK = "policies"
SECURITY = "security.istio.io/v1"
WHY = {
    "CUSTOM": ("sends every request, pushes included, to an external authorizer first (which may deny it, and "
               "returns 413 on large layers if it buffers bodies)",
               "exclude the registry's pods from it (selector), or make sure the authorizer allows writers and "
               "never buffers request bodies"),
    "DENY": ("may deny writers or the node proxy before meshreg's rules are reached",
             "check it with kubectl get authorizationpolicy -o yaml; narrow its selector or rules if it hits the "
             "registry"),
    "ALLOW": ("adds ALLOW rules next to meshreg's: it can widen who may read (never who may write: meshreg's DENY "
              "runs first)", "narrow its selector if readers must stay as configured"),
}


def selects(policy: Object, *, namespace: str, labels: dict[str, str], root: str) -> bool:
    """Istio's selection: a policy selects pods in its own namespace; one in the root namespace selects pods in
    every namespace; an absent selector selects all of them. Policies attached with targetRef(s) do not select
    sidecars."""
    spec = policy.get("spec") or {}
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False
    where = policy["metadata"].get("namespace")
    return where in (namespace, root) and matches(spec.get("selector"), labels)


def check(facts: Facts) -> list[Result]:
    root = facts.root_namespace()
    namespaces = sorted({facts.cfg.namespace, root})
    policies = [p for ns in namespaces for p in facts.cluster.list(SECURITY, "AuthorizationPolicy", namespace=ns)]
    peers = [p for ns in namespaces for p in facts.cluster.list(SECURITY, "PeerAuthentication", namespace=ns)]
    pods = facts.pod_templates()
    out = []
    for policy in _foreign(facts.manifests, policies=policies, peers=peers):
        hit = _selected(policy, pods, namespace=facts.cfg.namespace, root=root)
        if hit:
            out.append(_finding(policy, hit, root))
    if not out:
        out.append(ok(CHECK, f"no other AuthorizationPolicy or PeerAuthentication in {' or '.join(namespaces)} "
                             "selects the registry or the node proxy"))
    return out + [_mesh_wide(peers, root)]


def _key(obj: Object) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _foreign(manifests: list[Object], *, policies: list[Object], peers: list[Object]) -> list[Object]:
    """The policies and PeerAuthentications meshreg did not render."""
    own = {_key(o) for o in manifests}
    # PeerAuthentications without a selector (namespace- and mesh-wide) yield to meshreg's workload one
    return [p for p in policies + [p for p in peers if (p.get("spec") or {}).get("selector")] if _key(p) not in own]


def _selected(policy: Object, pods: dict[str, dict[str, str]], *, namespace: str, root: str) -> list[str]:
    """The workloads (`Kind name`) a policy applies to."""
    return [w for w, labels in pods.items()  # mTLS settings do not apply to the node proxy's gateway port
            if selects(policy, namespace=namespace, labels=labels, root=root)
            and (policy["kind"] == "AuthorizationPolicy" or w.startswith("Deployment"))]


def _finding(policy: Object, workloads: list[str], root: str) -> Result:
    name = f"{policy['kind']} {policy['metadata']['namespace']}/{policy['metadata']['name']}"
    scope = "mesh-wide" if policy["metadata"]["namespace"] == root and not (policy.get("spec") or {}).get(
        "selector") else f"selecting {', '.join(workloads)}"
    if policy["kind"] == "PeerAuthentication":
        mode = ((policy.get("spec") or {}).get("mtls") or {}).get("mode", "UNSET")
        return warn(CHECK, f"{name} ({mode}) also selects {', '.join(workloads)}; with two workload "
                           "PeerAuthentications Istio applies the oldest, which may not be meshreg's STRICT one",
                    "remove it or narrow its selector")
    action = (policy.get("spec") or {}).get("action") or "ALLOW"
    if action not in WHY:  # AUDIT decides nothing
        return ok(CHECK, f"{name} ({action}, {scope}) only marks requests for auditing")
    what, fix = WHY[action]
    return warn(CHECK, f"{name} ({action}, {scope}) {what}", fix)


def _mesh_wide(peers: list[Object], root: str) -> Result:
    wide = [p for p in peers if p["metadata"].get("namespace") == root and not (p.get("spec") or {}).get("selector")]
    mode = ((wide[0].get("spec") or {}).get("mtls") or {}).get("mode", "UNSET") if wide else None
    if mode == "STRICT":
        return ok(CHECK, f"mesh-wide mTLS is STRICT ({root}/{wide[0]['metadata']['name']})")
    text = f"mesh-wide mTLS is {mode}" if mode else "no mesh-wide PeerAuthentication (Istio's default: PERMISSIVE)"
    return warn(CHECK, f"{text}: the registry is STRICT through its own policy, but other workloads accept "
                       "plain text",
                f"for a mesh that only speaks mTLS, apply a PeerAuthentication named default in {root} with "
                "mtls.mode STRICT")

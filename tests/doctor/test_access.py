"""Who can bypass the mesh (doctor check 9) and the reusable `who_can`, with RBAC's own matching rules."""

from __future__ import annotations

from meshreg.doctor.access import allows, who_can
from support.doctor_helpers import check, cluster_with_istio

RBAC = "rbac.authorization.k8s.io/v1"
EXEC = ("create", "", "pods/exec")
PORT_FORWARD = ("create", "", "pods/portforward")


def cluster_role(name, rules=(), labels=None, aggregate=None):
    obj = {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
           "rules": list(rules)}
    if aggregate:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": aggregate}]}
    return obj


def binding(name, role, subjects, *, namespace=None, role_kind="ClusterRole"):
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role},
            "subjects": subjects}


def user(name):
    return {"kind": "User", "name": name}


def kubernetes_defaults(fake):
    """cluster-admin bound to system:masters, and `edit` aggregated from a labelled role (the controller has not
    filled it in: meshreg aggregates by itself)."""
    fake.put(cluster_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
    fake.put(binding("cluster-admin", "cluster-admin", [{"kind": "Group", "name": "system:masters"}]))
    fake.put(cluster_role("edit", aggregate={"rbac.authorization.k8s.io/aggregate-to-edit": "true"}))
    fake.put(cluster_role("system:aggregate-to-edit", [
        {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}],
        labels={"rbac.authorization.k8s.io/aggregate-to-edit": "true"}))


def test_rbac_matches_wildcards_and_star_slash_subresource_but_not_pods_slash_star():
    assert allows({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, *EXEC)[0]
    assert allows({"verbs": ["create"], "apiGroups": [""], "resources": ["*/exec"]}, *EXEC)[0]
    assert not allows({"verbs": ["create"], "apiGroups": [""], "resources": ["pods/*"]}, *EXEC)[0]
    assert not allows({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}, *EXEC)[0]
    assert not allows({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/exec"]}, *EXEC)[0]
    assert not allows({"verbs": ["create"], "apiGroups": ["apps"], "resources": ["pods/exec"]}, *EXEC)[0]


def test_only_cluster_admins_can_bypass_in_a_fresh_cluster():
    fake = cluster_with_istio()
    kubernetes_defaults(fake)
    [result] = check(fake, "bypass")
    assert (result.status, result.message) == (
        "OK", "only cluster admins (Group system:masters) may exec, attach or port-forward into pods in meshreg or "
              "edit its AuthorizationPolicies")


def test_a_namespace_editor_through_an_aggregated_role_may_bypass():
    fake = cluster_with_istio()
    kubernetes_defaults(fake)
    fake.put(binding("devs", "edit", [user("alice"), {"kind": "ServiceAccount", "name": "ci", "namespace": "ops"}],
                     namespace="meshreg"))
    results = check(fake, "bypass")
    assert [r.status for r in results] == ["WARN", "WARN"]
    assert results[1].message == ("User alice may port-forward, exec, attach in namespace meshreg, bypassing the "
                                  "mesh's policies (RoleBinding meshreg/devs -> ClusterRole edit)")
    assert results[0].message.startswith("ServiceAccount ops/ci may port-forward")


def test_who_can_finds_a_cluster_wide_grant_and_ignores_other_namespaces_and_system_bindings():
    fake = cluster_with_istio()
    kubernetes_defaults(fake)
    fake.put(cluster_role("forwarder", [{"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]))
    fake.put(binding("tunnels", "forwarder", [{"kind": "Group", "name": "support"}]))
    fake.put(binding("elsewhere", "edit", [user("bob")], namespace="apps"))
    fake.put(binding("system:controller:x", "edit", [{"kind": "ServiceAccount", "name": "x",
                                                      "namespace": "kube-system"}]))
    grants, admins = who_can(fake, namespace="push-proxy", requests=[PORT_FORWARD])
    assert [(g.subject, g.binding, g.role) for g in grants] == [
        ("Group support", "ClusterRoleBinding tunnels", "ClusterRole forwarder")]
    assert admins == ["Group system:masters"]


def test_a_role_limited_to_named_policies_is_reported_with_the_names():
    fake = cluster_with_istio()
    fake.put({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "policy-editor", "namespace": "meshreg"},
              "rules": [{"apiGroups": ["security.istio.io"], "resources": ["authorizationpolicies"],
                         "verbs": ["update", "patch"], "resourceNames": ["registry-deny-writes"]}]})
    fake.put(binding("editors", "policy-editor", [user("carol")], namespace="meshreg", role_kind="Role"))
    [result] = check(fake, "bypass")
    assert result.message.startswith("User carol may edit AuthorizationPolicies (only registry-deny-writes) in "
                                     "namespace meshreg")


def test_get_on_exec_counts_because_websocket_upgrades_are_gets():
    fake = cluster_with_istio()
    fake.put(cluster_role("viewer-exec", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]))
    fake.put(binding("viewers", "viewer-exec", [user("dave")], namespace="meshreg"))
    [result] = check(fake, "bypass")
    assert result.status == "WARN" and result.message.startswith("User dave may exec in namespace meshreg")


PUSH_PROXY = "apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n" \
             "  pushProxy: {repositories: [dev/]}\n"


def test_doctor_names_who_may_push_through_the_push_proxy_and_nobody_from_the_registry_namespace():
    fake = cluster_with_istio()
    kubernetes_defaults(fake)
    fake.put({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "meshreg-connect", "namespace": "meshreg-push"},
              "rules": [{"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]}]})
    before = check(fake, "bypass", PUSH_PROXY)
    assert before[-1].message.startswith("only cluster admins (Group system:masters) may push through the push proxy "
                                         "of registry registry (namespace meshreg-push, repositories dev/); grant "
                                         "others with kubectl -n meshreg-push create rolebinding")
    fake.put(binding("alice-push", "meshreg-connect", [user("alice")], namespace="meshreg-push", role_kind="Role"))
    after = check(fake, "bypass", PUSH_PROXY)
    assert after[-1].status == "OK" and after[-1].message == (
        "User alice may push through the push proxy of registry registry (namespace meshreg-push, repositories "
        "dev/) (RoleBinding meshreg-push/alice-push -> Role meshreg-connect)")
    assert after[0].message.startswith("only cluster admins")  # the Role gives nothing in the registry's namespace

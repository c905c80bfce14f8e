"""The ambient hops on hand-written objects: expected values are Istio's documented (or coded) ambient behaviour."""

from __future__ import annotations

import pytest

from meshreg.errors import UsageError
from meshreg.policy.ambient import l4_view
from meshreg.policy.evaluate import evaluate

LABELS = {"app": "registry"}
WAYPOINT = "td/ns/ns/sa/waypoint"
WRITE = ("POST", "/v2/a/blobs/uploads/")


def namespace(**labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "labels": {
        "istio.io/dataplane-mode": "ambient", **labels}}}


def service(**labels):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "registry", "namespace": "ns",
                                                                "labels": labels},
            "spec": {"selector": LABELS, "ports": [{"port": 5000}]}}


def gateway(name="waypoint", *, traffic="service", annotations=None):
    meta = {"name": name, "namespace": "ns", "labels": {"istio.io/waypoint-for": traffic}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": meta,
            "spec": {"gatewayClassName": "istio-waypoint",
                     "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}}


def deployment(kind="Deployment", name="registry", labels=LABELS, port=5000):
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": name, "containers": [{"ports": [{"containerPort": port}]}]}}}}


def strict():
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "registry", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": LABELS}, "mtls": {"mode": "STRICT"}}}


def policy(name, action, rules, *, target=None, labels=LABELS):
    spec = {"action": action, "rules": rules}
    if target is not None:
        spec["targetRefs"] = [target]
    elif labels is not None:
        spec["selector"] = {"matchLabels": labels}
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


TO_SERVICE = {"group": "", "kind": "Service", "name": "registry"}
ONLY_WAYPOINT = policy("allow-waypoint", "ALLOW", [{"from": [{"source": {"principals": [WAYPOINT]}}]}])
WRITES_FROM_B = policy("writes", "ALLOW", [{"from": [{"source": {"principals": ["td/ns/a/sa/b"]}}],
                                            "to": [{"operation": {"methods": ["POST"]}}]}], target=TO_SERVICE)


def mesh(*extra, svc=None, ns=None):
    return [ns or namespace(), svc or service(**{"istio.io/use-waypoint": "waypoint"}), gateway(), deployment(),
            strict(), *extra]


def decide(objs, method="GET", path="/v2/", identity="a/b", **kw):
    return evaluate(objs, identity=identity, method=method, path=path, trust_domain="td", **kw)


def test_an_attached_policy_decides_at_the_waypoint_with_the_clients_identity():
    d = decide(mesh(WRITES_FROM_B, ONLY_WAYPOINT), *WRITE)
    assert (d.decision, d.hop, d.policy) == ("ALLOW", "waypoint", "writes")
    assert "then at ztunnel as td/ns/ns/sa/waypoint" in d.reason


def test_the_waypoints_identity_is_the_account_named_by_its_annotation_when_set():
    objs = mesh(WRITES_FROM_B, ONLY_WAYPOINT)
    objs[2] = gateway(annotations={"gateway.istio.io/service-account": "other"})
    d = decide(objs, *WRITE)
    assert (d.decision, d.hop) == ("DENY", "ztunnel") and "as td/ns/ns/sa/other" in d.reason


def test_a_policy_attached_to_the_waypoint_gateway_applies_to_its_services():
    deny = policy("no-posts", "DENY", [{"to": [{"operation": {"methods": ["POST"]}}]}],
                  target={"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"})
    d = decide(mesh(WRITES_FROM_B, deny), *WRITE)
    assert (d.decision, d.hop, d.policy) == ("DENY", "waypoint", "no-posts")


def test_a_selector_policy_is_not_enforced_at_the_waypoint():
    only_b = policy("only-b", "ALLOW", [{"from": [{"source": {"principals": ["td/ns/x/sa/y"]}}]}])
    d = decide(mesh(only_b), identity="x/y")
    # ztunnel sees the waypoint, not x/y: the selector policy refuses it there.
    assert (d.decision, d.hop, d.policy) == ("DENY", "ztunnel", None)


def test_a_client_that_skips_the_waypoint_meets_ztunnel_with_its_own_identity():
    d = decide(mesh(WRITES_FROM_B, ONLY_WAYPOINT), *WRITE, skip_waypoint=True)
    assert (d.decision, d.hop) == ("DENY", "ztunnel") and "as td/ns/a/sa/b (the client skips the waypoint)" in d.reason


def test_without_the_l4_policy_a_client_that_skips_the_waypoint_gets_through():
    d = decide(mesh(WRITES_FROM_B), *WRITE, skip_waypoint=True)
    assert (d.decision, d.hop) == ("ALLOW", "ztunnel")  # why meshreg renders registry-allow-waypoint


def test_a_service_without_use_waypoint_has_no_waypoint_hop():
    d = decide(mesh(WRITES_FROM_B, svc=service()), *WRITE)
    assert (d.decision, d.hop) == ("ALLOW", "ztunnel") and "the Service has no waypoint" in d.reason


def test_a_namespace_use_waypoint_label_applies_to_its_services():
    d = decide(mesh(WRITES_FROM_B, ONLY_WAYPOINT, svc=service(), ns=namespace(**{"istio.io/use-waypoint": "waypoint"})),
               *WRITE)
    assert (d.decision, d.hop) == ("ALLOW", "waypoint")


def test_a_waypoint_for_workloads_only_does_not_take_service_traffic():
    objs = mesh(WRITES_FROM_B)
    objs[2] = gateway(traffic="workload")
    assert decide(objs, *WRITE).hop == "ztunnel"


def test_plain_text_from_outside_the_mesh_is_refused_by_strict_mtls_at_ztunnel():
    d = decide(mesh(), identity="anonymous")
    assert (d.decision, d.hop, d.policy) == ("DENY", "ztunnel", "PeerAuthentication/registry")


def test_ztunnel_drops_an_allow_rule_with_http_attributes_so_it_allows_nothing():
    l7 = policy("get-only", "ALLOW", [{"from": [{"source": {"principals": [WAYPOINT]}}],
                                       "to": [{"operation": {"methods": ["GET"]}}]}])
    assert l4_view(l7)["spec"]["rules"] == []
    d = decide(mesh(l7))
    assert (d.decision, d.hop) == ("DENY", "ztunnel") and "get-only: no rules" in d.reason


def test_ztunnel_enforces_a_deny_rule_without_its_http_attributes_so_it_denies_more():
    l7 = policy("no-posts-from-waypoint", "DENY", [{"from": [{"source": {"principals": [WAYPOINT]}}],
                                                    "to": [{"operation": {"methods": ["POST"], "ports": ["5000"]}}]}])
    assert l4_view(l7)["spec"]["rules"] == [{"from": [{"source": {"principals": [WAYPOINT]}}],
                                            "to": [{"operation": {"ports": ["5000"]}}]}]
    d = decide(mesh(l7), "GET", "/v2/")  # a GET, yet ztunnel cannot tell: the L4 part matches
    assert (d.decision, d.hop, d.policy) == ("DENY", "ztunnel", "no-posts-from-waypoint")


def test_ztunnel_ignores_policies_with_target_refs_and_custom_actions():
    custom = policy("ext", "CUSTOM", [{}])
    custom["spec"]["provider"] = {"name": "x"}
    assert l4_view(WRITES_FROM_B) is None and l4_view(custom) is None
    assert decide(mesh(custom), skip_waypoint=True).allowed


def test_the_node_proxy_reaches_the_waypoint_only_with_ingress_use_waypoint():
    proxy = deployment("DaemonSet", "node-proxy", {"app": "node-proxy"}, 5000)
    reads = policy("reads", "ALLOW", [{"to": [{"operation": {"methods": ["GET"]}}]}], target=TO_SERVICE)
    with_label = service(**{"istio.io/use-waypoint": "waypoint", "istio.io/ingress-use-waypoint": "true"})
    through = decide(mesh(proxy, reads, ONLY_WAYPOINT, svc=with_label), identity="node-proxy")
    skipped = decide(mesh(proxy, reads, ONLY_WAYPOINT), identity="node-proxy")
    assert (through.decision, through.hop) == ("ALLOW", "waypoint")
    assert through.reason.startswith("at the node proxy: ") and "at the waypoint as td/ns/ns/sa/node-proxy" in \
        through.reason
    assert (skipped.decision, skipped.hop) == ("DENY", "ztunnel")
    assert "lacks istio.io/ingress-use-waypoint" in skipped.reason


def test_skip_waypoint_is_a_usage_error_for_the_node_proxy_and_in_sidecar_mode():
    with pytest.raises(UsageError, match="the node proxy's path follows its labels"):
        decide(mesh(), identity="node-proxy", skip_waypoint=True)
    sidecar = [deployment(), strict()]
    with pytest.raises(UsageError, match="there is no waypoint in sidecar mode"):
        decide(sidecar, skip_waypoint=True)


def test_the_push_proxy_goes_through_its_own_policy_then_the_waypoint_then_ztunnel():
    from meshreg import config
    from meshreg.render import render
    from support.configs import minimal

    cfg = config.from_text(minimal("  mesh: ambient\n  pushProxy: {repositories: [dev/]}\n"), name="m.yaml")
    objects = render(cfg)
    inside = evaluate(objects, identity="push-proxy", method="POST", path="/v2/dev/app/blobs/uploads/")
    assert inside.allowed and inside.reason.startswith("at the push proxy: ") and "then at the waypoint as " \
        "cluster.local/ns/meshreg-push/sa/push-proxy" in inside.reason and "then at ztunnel" in inside.reason
    outside = evaluate(objects, identity="push-proxy", method="POST", path="/v2/other/app/blobs/uploads/")
    assert not outside.allowed and outside.hop == "waypoint"
    deleted = evaluate(objects, identity="push-proxy", method="DELETE", path="/v2/dev/app/manifests/latest")
    assert not deleted.allowed and deleted.hop == "push proxy"
    with pytest.raises(UsageError, match="--skip-waypoint: the push proxy's path follows its labels"):
        evaluate(objects, identity="push-proxy", method="GET", path="/v2/", skip_waypoint=True)

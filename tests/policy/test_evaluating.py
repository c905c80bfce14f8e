"""The evaluator on small hand-written policies: expected values are Istio's documented behaviour."""

from __future__ import annotations

import pytest

from meshreg.errors import UsageError
from meshreg.policy.evaluate import NotEvaluable, evaluate

LABELS = {"app": "registry"}


def objects(*policies, strict=True):
    """A registry Deployment in namespace ns, its STRICT PeerAuthentication, and the given policies."""
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "ns"},
                  "spec": {"template": {"metadata": {"labels": LABELS}, "spec": {
                      "serviceAccountName": "registry", "containers": [{"ports": [{"containerPort": 5000}]}]}}}}
    peer = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "registry", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": LABELS}, "mtls": {"mode": "STRICT"}}}
    return [deployment, *([peer] if strict else []), *policies]


def policy(name, action, rules, *, namespace="ns", labels=LABELS):
    spec = {"action": action, "rules": rules}
    if labels is not None:
        spec["selector"] = {"matchLabels": labels}
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def decide(objs, method="GET", path="/v2/", identity="a/b"):
    return evaluate(objs, identity=identity, method=method, path=path, trust_domain="td")


def test_no_allow_policy_on_the_workload_allows():
    assert decide(objects()).decision == "ALLOW"


def test_an_allow_policy_selecting_another_workload_does_not_count():
    assert decide(objects(policy("other", "ALLOW", [], labels={"app": "web"}))).decision == "ALLOW"


def test_an_allow_policy_in_another_namespace_does_not_count():
    assert decide(objects(policy("other", "ALLOW", [], namespace="elsewhere"))).decision == "ALLOW"


def test_an_allow_policy_without_rules_denies_everything():
    assert decide(objects(policy("deny-all", "ALLOW", []))).decision == "DENY"


def test_a_namespace_wide_allow_policy_without_selector_applies():
    assert decide(objects(policy("ns-wide", "ALLOW", [], labels=None))).decision == "DENY"


def test_a_root_namespace_policy_with_a_selector_applies_to_matching_pods_in_every_namespace():
    deny = [{"to": [{"operation": {"methods": ["GET"]}}]}]
    matching = decide(objects(policy("mesh-deny", "DENY", deny, namespace="istio-system")))
    assert (matching.decision, matching.policy) == ("DENY", "mesh-deny")
    other = decide(objects(policy("mesh-deny", "DENY", deny, namespace="istio-system", labels={"app": "web"})))
    assert other.decision == "ALLOW"
    assert decide(objects(policy("mesh-wide", "DENY", deny, namespace="istio-system", labels=None))).decision == "DENY"


def test_a_rule_with_no_conditions_matches_every_request():
    d = decide(objects(policy("allow-all", "ALLOW", [{}])), method="DELETE")
    assert (d.decision, d.policy, d.rule) == ("ALLOW", "allow-all", 0)


def test_deny_is_evaluated_before_allow():
    objs = objects(policy("allow-all", "ALLOW", [{}]), policy("no-post", "DENY", [{"to": [
        {"operation": {"methods": ["POST"]}}]}]))
    d = decide(objs, method="POST")
    assert (d.decision, d.policy, d.rule) == ("DENY", "no-post", 0)


def test_the_rule_index_names_the_rule_that_matched():
    objs = objects(policy("p", "ALLOW", [{"to": [{"operation": {"methods": ["PUT"]}}]},
                                         {"to": [{"operation": {"methods": ["GET"]}}]}]))
    assert decide(objs).rule == 1


def test_fields_of_one_operation_must_all_match():
    rule = {"to": [{"operation": {"methods": ["GET"], "paths": ["/v2/a/*"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule])), path="/v2/b/x").decision == "DENY"


def test_operations_in_one_to_list_are_alternatives():
    rule = {"to": [{"operation": {"methods": ["PUT"]}}, {"operation": {"paths": ["/v2/"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule]))).decision == "ALLOW"


def test_from_and_to_must_both_match():
    rule = {"from": [{"source": {"principals": ["td/ns/x/sa/y"]}}], "to": [{"operation": {"methods": ["GET"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule]))).decision == "DENY"


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/v2/a", "/v2/a", True), ("/v2/a", "/v2/a/", False), ("/v2/a/*", "/v2/a/b/c", True),
    ("/v2/a/*", "/v2/ab", False), ("*/manifests/x", "/v2/a/manifests/x", True), ("*", "/anything", True),
])
def test_paths_match_exactly_by_prefix_by_suffix_or_any(pattern, path, matches):
    rule = {"to": [{"operation": {"paths": [pattern]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule])), path=path).allowed is matches


def test_paths_are_matched_without_the_query_string():
    rule = {"to": [{"operation": {"paths": ["/v2/a/blobs/uploads/1"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule])), path="/v2/a/blobs/uploads/1?digest=x").allowed


def test_paths_are_matched_after_dot_segments_and_encoded_dots_are_resolved():
    deny = policy("no-b", "DENY", [{"to": [{"operation": {"paths": ["/v2/b/*"]}}]}])
    assert decide(objects(deny), path="/v2/a/%2e%2e/b/x").decision == "DENY"


def test_an_encoded_slash_is_not_decoded_so_a_positive_path_rule_misses_it():
    deny = policy("no-b", "DENY", [{"to": [{"operation": {"paths": ["/v2/b/*"]}}]}])
    assert decide(objects(deny), path="/v2/b%2Fx/blobs/uploads/").decision == "ALLOW"


def test_an_encoded_slash_is_caught_by_not_paths():
    deny = policy("only-a", "DENY", [{"to": [{"operation": {"notPaths": ["/v2/a/*"]}}]}])
    assert decide(objects(deny), path="/v2/a%2Fx/blobs/uploads/").decision == "DENY"


def test_a_leading_double_slash_is_not_merged_so_a_prefix_rule_misses_it():
    """Istio's default normalization does not merge slashes, leading ones included (Envoy, real istiod: 403)."""
    allow = policy("a", "ALLOW", [{"to": [{"operation": {"paths": ["/v2/a/*"]}}]}])
    deny = policy("not-a", "DENY", [{"to": [{"operation": {"methods": ["PUT"], "notPaths": ["/v2/a/*"]}}]}])
    assert decide(objects(allow), path="//v2/a/app/manifests/v1").decision == "DENY"
    put = decide(objects(deny), method="PUT", path="//v2/a/app/manifests/v1")
    assert (put.decision, put.policy) == ("DENY", "not-a")
    assert decide(objects(allow), path="//../v2/a/app/manifests/v1").allowed  # `..` climbs back over the empty one


def test_not_methods_matches_every_other_method():
    deny = policy("writes", "DENY", [{"to": [{"operation": {"notMethods": ["GET", "HEAD"]}}]}])
    assert [decide(objects(deny), method=m).decision for m in ("HEAD", "PATCH")] == ["ALLOW", "DENY"]


def test_principal_wildcard_means_any_authenticated_identity():
    rule = {"from": [{"source": {"principals": ["*"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule]))).allowed


def test_principal_prefix_matches_every_service_account_of_a_namespace():
    rule = {"from": [{"source": {"principals": ["td/ns/a/sa/*"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule])), identity="a/anything").allowed


def test_namespaces_are_taken_from_the_peer_principal():
    rule = {"from": [{"source": {"namespaces": ["a"]}}]}
    objs = objects(policy("p", "ALLOW", [rule]))
    assert [decide(objs, identity=i).decision for i in ("a/x", "b/x")] == ["ALLOW", "DENY"]


def test_plain_text_is_rejected_by_strict_mtls_before_any_policy():
    d = decide(objects(policy("allow-all", "ALLOW", [{}])), identity="anonymous")
    assert (d.decision, d.policy) == ("DENY", "PeerAuthentication/registry")


def test_plain_text_is_refused_by_strict_mtls_before_envoy_reads_its_path():
    d = decide(objects(policy("allow-all", "ALLOW", [{}])), identity="anonymous", path="/v2/a%00/x")
    assert (d.decision, d.policy) == ("DENY", "PeerAuthentication/registry")


def test_plain_text_has_no_principal_so_any_principal_rule_misses_it():
    rule = {"from": [{"source": {"principals": ["*"]}}]}
    assert decide(objects(policy("p", "ALLOW", [rule]), strict=False), identity="anonymous").decision == "DENY"


def test_plain_text_has_no_principal_so_not_principals_matches_it():
    deny = policy("d", "DENY", [{"from": [{"source": {"notPrincipals": ["td/ns/a/sa/b"]}}]}])
    assert decide(objects(deny, strict=False), identity="anonymous").decision == "DENY"


def test_a_matching_custom_policy_cannot_be_evaluated_offline():
    with pytest.raises(NotEvaluable):
        decide(objects(policy("ext", "CUSTOM", [{}])))


def test_a_custom_policy_whose_rules_do_not_match_is_skipped():
    custom = policy("ext", "CUSTOM", [{"to": [{"operation": {"methods": ["POST"]}}]}])
    assert decide(objects(custom)).allowed


def test_when_conditions_cannot_be_evaluated_offline():
    with pytest.raises(NotEvaluable):
        decide(objects(policy("p", "ALLOW", [{"when": [{"key": "request.headers[x]", "values": ["y"]}]}])))


def test_a_percent_zero_zero_path_is_rejected_before_any_policy():
    assert decide(objects(policy("allow-all", "ALLOW", [{}])), path="/v2/a%00/x").decision == "DENY"


def test_the_node_proxy_needs_both_hops_to_allow():
    objs = objects(policy("allow-all", "ALLOW", [{}]))  # no node-proxy DaemonSet rendered
    assert decide(objs, identity="node-proxy").decision == "DENY"


@pytest.mark.parametrize(("identity", "method", "path"), [
    ("Bad/x", "GET", "/v2/"), ("a", "GET", "/v2/"), ("a/b", "get", "/v2/"), ("a/b", "G T", "/v2/"),
    ("a/b", "GET", "v2/"), ("a/b", "GET", "/v2/ x"),
])
def test_bad_input_is_one_usage_error(identity, method, path):
    with pytest.raises(UsageError):
        decide(objects(), identity=identity, method=method, path=path)

"""Rendered objects pass real Kubernetes and Istio schemas (offline), and those checks do catch mistakes."""

from __future__ import annotations

import copy
import functools

import pytest
from kubernetes_validate import utils as kv_utils

from meshreg import config
from meshreg.render import render
from support.configs import AMBIENT, GC_CONFIG, SEVERAL_WRITERS
from support.validation import (
    MISSING_SCHEMAS,
    SCHEMAS,
    check_crd_object,
    describe,
    is_custom,
    kubernetes_versions,
    validate_crd_object,
    validate_kubernetes,
)

needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=MISSING_SCHEMAS)

CONFIGS = {
    "default": lambda: config.DEFAULT,
    "several-writers": lambda: config.from_text(
        SEVERAL_WRITERS + "  nodeProxy:\n    enabled: true\n    port: 5001\n", name="several-writers.yaml"),
    "no-node-proxy": lambda: config.from_text(
        SEVERAL_WRITERS + "  nodeProxy:\n    enabled: false\n", name="no-node-proxy.yaml"),
    "ambient": lambda: config.from_text(AMBIENT, name="ambient.yaml"),
    "gc": lambda: config.from_text(GC_CONFIG, name="gc.yaml"),
}
VERSIONS = kubernetes_versions()


@functools.cache
def rendered(name: str) -> tuple[dict, ...]:
    return tuple(render(CONFIGS[name]()))


def one(name: str, kind: str, object_name: str) -> dict:
    """A deep copy of one rendered object, safe to mutate."""
    matches = [o for o in rendered(name) if o["kind"] == kind and o["metadata"]["name"] == object_name]
    assert len(matches) == 1, f"expected one {kind}/{object_name} in the {name} render"
    return copy.deepcopy(matches[0])


def test_kubernetes_versions_span_1_29_to_the_newest_kubernetes_validate_ships():
    newest = kv_utils.major_minor(kv_utils.all_versions()[-1])
    minors = [int(v.split(".")[1]) for v in VERSIONS]
    assert (VERSIONS[0], VERSIONS[-1]) == ("1.29", newest)
    assert minors == list(range(29, minors[-1] + 1))


def test_the_several_writers_config_renders_a_scoped_writer_and_the_node_proxy():
    kinds = {o["kind"] for o in rendered("several-writers")}
    deny = one("several-writers", "AuthorizationPolicy", "registry-deny-writes")
    assert {"DaemonSet", "Gateway", "VirtualService"} <= kinds
    assert "notPaths" in str(deny["spec"]["rules"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", CONFIGS)
def test_built_in_objects_pass_kubernetes_validate_strict(name, version):
    objects = [o for o in rendered(name) if not is_custom(o)]
    errors = [e for o in objects for e in validate_kubernetes(o, version)]
    assert objects and errors == []


@needs_schemas
@pytest.mark.parametrize("name", CONFIGS)
def test_istio_objects_pass_their_crd_schemas_and_cel_rules(name):
    objects = [o for o in rendered(name) if is_custom(o)]
    errors = [e for o in objects for e in validate_crd_object(o)]
    assert objects and errors == []


@needs_schemas
@pytest.mark.parametrize("name", CONFIGS)
def test_every_cel_rule_met_by_the_rendered_objects_is_evaluated_not_skipped(name):
    results = {describe(o): check_crd_object(o) for o in rendered(name) if is_custom(o)}
    skipped = {k: r.skipped for k, r in results.items() if r.skipped}
    assert skipped == {}
    assert sum(len(r.evaluated) for r in results.values()) > 0


# --- the validators are not no-ops ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_an_unknown_field_in_a_deployment_is_rejected(version):
    deployment = one("default", "Deployment", "registry")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = validate_kubernetes(deployment, version)
    assert len(errors) == 1 and "imagePullPolicyy" in errors[0]


@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_a_host_port_given_as_a_string_is_rejected(version):
    daemon_set = one("default", "DaemonSet", "node-proxy")
    daemon_set["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPort"] = "5000"
    errors = validate_kubernetes(daemon_set, version)
    assert len(errors) == 1 and "hostPort" in errors[0] and "integer" in errors[0]


def test_a_kind_unknown_to_kubernetes_is_rejected():
    service = one("default", "Service", "registry") | {"kind": "Servise"}
    assert validate_kubernetes(service, VERSIONS[-1]) != []


@needs_schemas
def test_a_zero_route_timeout_is_rejected_by_istios_duration_rule():
    route = one("default", "VirtualService", "node-proxy")
    route["spec"]["http"][0]["timeout"] = "0s"
    errors = validate_crd_object(route)
    assert len(errors) == 1
    assert "spec.http[0].timeout" in errors[0] and "duration(self) >= duration('1ms')" in errors[0]


@needs_schemas
@pytest.mark.parametrize("timeout", ["1ms", "300ms", "1h30m", "2.5s"])
def test_a_positive_go_duration_route_timeout_is_accepted(timeout):
    route = one("default", "VirtualService", "node-proxy")
    route["spec"]["http"][0]["timeout"] = timeout
    assert validate_crd_object(route) == []


@needs_schemas
@pytest.mark.parametrize("timeout", ["1d", "10", "5 s", "999us"])
def test_a_route_timeout_that_go_cannot_parse_or_below_1ms_is_rejected(timeout):
    route = one("default", "VirtualService", "node-proxy")
    route["spec"]["http"][0]["timeout"] = timeout
    assert len(validate_crd_object(route)) == 1


@needs_schemas
def test_an_authorization_policy_action_outside_the_enum_is_rejected():
    policy = one("default", "AuthorizationPolicy", "registry-deny-writes")
    policy["spec"]["action"] = "REJECT"
    errors = validate_crd_object(policy)
    assert len(errors) == 1 and "spec.action" in errors[0] and "'REJECT' is not one of" in errors[0]


@needs_schemas
def test_methods_given_as_a_string_instead_of_a_list_are_rejected():
    policy = one("default", "AuthorizationPolicy", "node-proxy-allow-reads")
    policy["spec"]["rules"][0]["to"][0]["operation"]["methods"] = "GET"
    errors = validate_crd_object(policy)
    assert len(errors) == 1 and "methods" in errors[0] and "not of type 'array'" in errors[0]


@needs_schemas
def test_a_gateway_server_without_a_port_is_rejected():
    gateway = one("default", "Gateway", "node-proxy")
    del gateway["spec"]["servers"][0]["port"]
    errors = validate_crd_object(gateway)
    assert len(errors) == 1 and "spec.servers[0]" in errors[0] and "'port' is a required property" in errors[0]


@needs_schemas
def test_an_unknown_field_that_the_api_server_would_prune_is_rejected():
    peer = one("default", "PeerAuthentication", "registry")
    peer["spec"]["mtls"]["modee"] = "STRICT"
    errors = validate_crd_object(peer)
    assert len(errors) == 1 and "spec.mtls" in errors[0] and "'modee' was unexpected" in errors[0]


@needs_schemas
def test_an_unknown_metadata_field_on_an_istio_object_is_rejected():
    peer = one("default", "PeerAuthentication", "registry")
    peer["metadata"]["lables"] = {"a": "b"}
    errors = validate_crd_object(peer)
    assert len(errors) == 1 and "metadata" in errors[0] and "'lables' was unexpected" in errors[0]


@needs_schemas
def test_a_wildcard_in_a_policy_selector_label_is_rejected_by_istios_rule():
    policy = one("default", "AuthorizationPolicy", "registry-allow-reads")
    label = sorted(policy["spec"]["selector"]["matchLabels"])[0]
    policy["spec"]["selector"]["matchLabels"][label] = "registry-*"
    errors = validate_crd_object(policy)
    assert len(errors) == 1 and f"spec.selector.matchLabels[{label}]" in errors[0] and "contains" in errors[0]


@needs_schemas
def test_a_policy_with_both_a_selector_and_a_target_ref_is_rejected_by_istios_rule():
    policy = one("default", "AuthorizationPolicy", "registry-allow-reads")
    policy["spec"]["targetRef"] = {"kind": "Service", "group": "", "name": "registry"}
    errors = validate_crd_object(policy)
    assert len(errors) == 1 and errors[0].startswith("AuthorizationPolicy/registry-allow-reads: spec: ")


@needs_schemas
def test_an_api_version_the_crd_does_not_serve_is_rejected():
    policy = one("default", "AuthorizationPolicy", "registry-allow-reads") | {"apiVersion": "security.istio.io/v2"}
    errors = validate_crd_object(policy)
    assert len(errors) == 1 and "not served" in errors[0]


WASM = {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "w"}}


@needs_schemas
@pytest.mark.parametrize("url", ["oci://ghcr.io/acme/filter:1", "https://example.com/f.wasm", "ghcr.io/acme/f:1"])
def test_istios_url_rule_accepts_a_wasm_plugin_url_with_an_allowed_scheme(url):
    assert validate_crd_object(WASM | {"spec": {"url": url}}) == []


@needs_schemas
def test_istios_url_rule_rejects_a_wasm_plugin_url_with_another_scheme():
    errors = validate_crd_object(WASM | {"spec": {"url": "ftp://example.com/f.wasm"}})
    assert len(errors) == 1 and "url must have schema" in errors[0]

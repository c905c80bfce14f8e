"""spec.audit: the Telemetry objects that make the enforcing proxies log every write and refusal, where each one
attaches, and what they log; checked against Istio's CRD schemas and CEL rules, and the filter against a real CEL
evaluator."""

from __future__ import annotations

import celpy
import pytest

from meshreg import config
from meshreg.errors import ConfigError
from meshreg.render import notices, render
from meshreg.render.audit import WRITES_AND_REFUSALS, host_filter
from support.configs import AMBIENT, SEVERAL_WRITERS, minimal
from support.ingress_configs import CLIENTS, HOST, ingress_text, load
from support.validation import MISSING_SCHEMAS, SCHEMAS, validate_crd_object

needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=MISSING_SCHEMAS)


def telemetries(cfg: config.Config) -> dict[tuple[str, str], dict]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in render(cfg) if o["kind"] == "Telemetry"}


def several() -> config.Config:
    return config.from_text(SEVERAL_WRITERS, name="m.yaml")


def test_each_registry_gets_a_telemetry_that_selects_exactly_its_pods():
    cfg = config.from_text(minimal("""\
  registries:
    - {name: images, default: true, port: 5000, writers: [{serviceAccount: builds/kaniko}]}
    - {name: cache, role: mirror, port: 5001, mirror: {upstream: "https://ghcr.io"}}
"""), name="m.yaml")
    found = telemetries(cfg)
    assert sorted(found) == [("meshreg", "cache-audit"), ("meshreg", "images-audit")]
    deployments = {o["metadata"]["name"]: o for o in render(cfg) if o["kind"] == "Deployment"}
    for name in ("images", "cache"):
        selector = found[("meshreg", f"{name}-audit")]["spec"]["selector"]["matchLabels"]
        assert selector == deployments[name]["spec"]["selector"]["matchLabels"]


def test_the_audit_provider_logs_the_sidecars_inbound_side_with_the_writes_and_refusals_filter():
    [spec] = [t["spec"] for t in telemetries(several()).values()]
    keep, audit = spec["accessLogging"]
    assert keep == {"providers": [{"name": "envoy"}]}  # unfiltered, both directions: the usual access log stays
    assert audit == {"providers": [{"name": "meshreg-audit"}], "match": {"mode": "SERVER"},
                     "filter": {"expression": WRITES_AND_REFUSALS}}


def test_keep_providers_and_the_provider_name_come_from_the_config():
    cfg = config.from_text(minimal("  audit: {provider: registry-audit, keepProviders: [otel, envoy]}\n"),
                           name="m.yaml")
    [spec] = [t["spec"] for t in telemetries(cfg).values()]
    assert spec["accessLogging"][0] == {"providers": [{"name": "otel"}, {"name": "envoy"}]}
    assert spec["accessLogging"][1]["providers"] == [{"name": "registry-audit"}]


def test_with_no_providers_to_keep_the_telemetry_names_only_the_audit_provider():
    cfg = config.from_text(minimal("  audit: {keepProviders: []}\n"), name="m.yaml")
    [spec] = [t["spec"] for t in telemetries(cfg).values()]
    assert [e["providers"] for e in spec["accessLogging"]] == [[{"name": "meshreg-audit"}]]


def test_audit_disabled_renders_no_telemetry():
    cfg = config.from_text(minimal("  audit: {enabled: false}\n"), name="m.yaml")
    assert telemetries(cfg) == {}


def test_ambient_mode_audits_at_the_waypoint_which_sees_the_client():
    found = telemetries(config.from_text(AMBIENT, name="ambient.yaml"))
    assert list(found) == [("registry", "waypoint-audit")]
    spec = found[("registry", "waypoint-audit")]["spec"]
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}]
    assert "selector" not in spec and "match" not in spec["accessLogging"][1]


def test_a_dedicated_ingress_gateway_audits_only_its_host(tmp_path):
    cfg = load(tmp_path, ingress_text(clients=CLIENTS, extra="    gateway: {dedicated: true}\n"))
    found = telemetries(cfg)
    spec = found[("istio-system", "meshreg-dev-ingress-audit")]["spec"]
    assert spec["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    assert spec["accessLogging"][1]["filter"] == {"expression": host_filter(HOST)}
    assert ("meshreg", "registry-audit") in found  # the registry's own records too


def test_a_shared_ingress_gateway_gets_no_telemetry_and_render_says_why(tmp_path):
    cfg = load(tmp_path)
    assert [k for k in telemetries(cfg) if k[0] == "istio-system"] == []
    assert any("the ingress gateway is shared" in n and "docs/audit.md" in n for n in notices(cfg))


@needs_schemas
@pytest.mark.parametrize("case", ["sidecar", "ambient", "dedicated-ingress"])
def test_every_audit_telemetry_passes_istios_crd_schema_and_cel_rules(case, tmp_path):
    cfg = {"sidecar": several, "ambient": lambda: config.from_text(AMBIENT, name="a.yaml"),
           "dedicated-ingress": lambda: load(tmp_path, ingress_text(clients=CLIENTS,
                                                                    extra="    gateway: {dedicated: true}\n"))}[case]()
    found = telemetries(cfg)
    assert found
    for obj in found.values():
        assert validate_crd_object(obj) == []


def _logged(expression: str, method: str, code: int, host: str = HOST, details: str = "via_upstream") -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    activation = {"request": celpy.json_to_cel({"method": method, "host": host}),
                  "response": celpy.json_to_cel({"code": code, "code_details": details})}
    return bool(program.evaluate(activation))


@pytest.mark.parametrize(("method", "code", "details", "logged"), [
    ("PUT", 201, "via_upstream", True), ("POST", 202, "via_upstream", True), ("PATCH", 202, "via_upstream", True),
    ("DELETE", 202, "via_upstream", True), ("PUT", 500, "via_upstream", True), ("GET", 200, "via_upstream", False),
    ("POST", 403, "rbac_access_denied_matched_policy[none]", True),
    ("GET", 403, "rbac_access_denied_matched_policy[none]", True),
    ("HEAD", 403, "rbac_access_denied_matched_policy[none]", True), ("HEAD", 404, "via_upstream", False),
    ("HEAD", 401, "jwt_authn_access_denied{Jwt_is_expired}", True),  # a refused token
    ("GET", 401, "direct_response", False),  # the ingress's token challenge to an anonymous ping
    ("CONNECT", 200, "via_upstream", False)])
def test_the_filter_keeps_every_write_and_every_refused_read(method, code, details, logged):
    assert _logged(WRITES_AND_REFUSALS, method, code, details=details) is logged


@pytest.mark.parametrize(("host", "logged"), [(HOST, True), (f"{HOST}:443", True), ("other.example.com", False),
                                              (f"{HOST}.evil.example", False)])
def test_the_gateway_filter_keeps_only_the_ingress_host(host, logged):
    assert _logged(host_filter(HOST), "PUT", 201, host=host) is logged


@pytest.mark.parametrize(("spec", "message"), [
    ("  audit: {enabled: yes-please}\n", "spec.audit.enabled: expected true or false"),
    ("  audit: {provider: 'bad name'}\n", "spec.audit.provider: 'bad name' is not a provider name"),
    ("  audit: {keepProviders: [envoy, envoy]}\n", "spec.audit.keepProviders[1]: 'envoy' is listed twice"),
    ("  audit: {keepProviders: [Meshreg-Audit]}\n",
     "spec.audit.keepProviders[0]: 'Meshreg-Audit' is the audit provider itself"),
    ("  audit: {provder: x}\n", "spec.audit.provder: unknown key (did you mean 'provider'?)"),
])
def test_bad_audit_settings_are_one_line_naming_the_field(spec, message):
    with pytest.raises(ConfigError) as e:
        config.from_text(minimal(spec), name="m.yaml")
    assert message in str(e.value) and str(e.value).startswith("m.yaml:5: ")

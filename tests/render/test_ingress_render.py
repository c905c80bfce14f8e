"""The ingress objects: on the gateway's namespace and selector, scoped to the ingress host, valid against the
Kubernetes and Istio schemas (CEL rules included), and the registry admitting the gateway for its clients' prefixes."""

from __future__ import annotations

import base64

import pytest

from meshreg.errors import ConfigError
from meshreg.render import ingress, manifests, render
from support.ingress_configs import CLIENTS, GATEWAY, GITHUB, HOST, ISSUER, ingress_text, load
from support.validation import MISSING_SCHEMAS, SCHEMAS, check_crd_object, errors_in, is_custom, kubernetes_versions

needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=MISSING_SCHEMAS)
DEDICATED = "    gateway: {dedicated: true}\n"


def _ingress_objects(cfg) -> dict:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(cfg)
            if o["metadata"].get("namespace") == "istio-system"}


@pytest.fixture
def cfg(tmp_path):
    return load(tmp_path)


def test_every_ingress_object_sits_in_the_gateways_namespace_with_the_instance_labels(cfg):
    objs = _ingress_objects(cfg)
    assert sorted(objs) == [("AuthorizationPolicy", "meshreg-dev-ingress-deny"), ("Gateway", "meshreg-dev-ingress"),
                            ("RequestAuthentication", "meshreg-dev-ingress"), ("Secret", "registry-tls-cacert"),
                            ("VirtualService", "meshreg-dev-ingress")]
    for obj in objs.values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "dev" and labels["app.kubernetes.io/managed-by"] == "meshreg"


def test_the_ca_secret_holds_the_ca_certificate_and_crl_and_no_key(cfg):
    secret = _ingress_objects(cfg)[("Secret", "registry-tls-cacert")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"ca.crt": cfg.ingress.ca_pem, "ca.crl": cfg.ingress.crl_pem}
    assert "PRIVATE KEY" not in str(data)


@pytest.mark.parametrize("methods, mode", [(("mtls",), "MUTUAL"), (("jwt",), "SIMPLE"),
                                           (("mtls", "jwt"), "OPTIONAL_MUTUAL")])
def test_the_gateway_asks_for_certificates_only_as_the_clients_need(tmp_path, methods, mode):
    token = f"subject: s, issuer: {ISSUER}, "
    clients = "".join(f"      - {{name: c-{m}, method: {m}, {token if m == 'jwt' else ''}repositories: [x/]}}\n"
                      for m in methods)
    objs = _ingress_objects(load(tmp_path, ingress_text(clients=clients)))
    [server] = objs[("Gateway", "meshreg-dev-ingress")]["spec"]["servers"]
    assert server["tls"] == {"mode": mode, "credentialName": "registry-tls", "minProtocolVersion": "TLSV1_2"}
    assert server["hosts"] == [f"./{HOST}"] and server["port"]["protocol"] == "HTTPS"
    assert (("Secret", "registry-tls-cacert") in objs) == ("mtls" in methods)


def test_the_virtual_service_routes_the_host_to_the_registry_with_no_timeout(cfg):
    vs = _ingress_objects(cfg)[("VirtualService", "meshreg-dev-ingress")]["spec"]
    assert vs["hosts"] == [HOST] and vs["gateways"] == ["meshreg-dev-ingress"] and vs["exportTo"] == ["."]
    route = vs["http"][-1]
    assert "timeout" not in route and "match" not in route
    assert route["route"] == [{"destination": {"host": "registry.meshreg.svc.cluster.local", "port": {"number": 5000}}}]


def _routes(objs: dict) -> dict:
    return {r["name"]: r for r in objs[("VirtualService", "meshreg-dev-ingress")]["spec"]["http"]}


def test_token_clients_get_a_bearer_challenge_at_the_ping_without_credentials(cfg):
    challenge = _routes(_ingress_objects(cfg))["token-challenge"]
    assert challenge["match"] == [{"uri": {"exact": "/v2/"}, "withoutHeaders": {
        "x-forwarded-client-cert": {}, "@request.auth.claims.iss": {"regex": ".+"}}}]
    assert challenge["directResponse"]["status"] == 401
    assert challenge["headers"]["response"]["set"]["www-authenticate"].startswith(f'Bearer realm="https://{HOST}/')


def test_without_token_clients_there_is_no_challenge_and_no_ping_exception(tmp_path):
    clients = "      - {name: c, method: mtls, repositories: [x/]}\n"
    objs = _ingress_objects(load(tmp_path, ingress_text(clients=clients)))
    assert list(_routes(objs)) == ["refuse-mount", "registry"]  # x/ is also all c may read
    first = objs[("AuthorizationPolicy", "meshreg-dev-ingress-deny")]["spec"]["rules"][0]
    assert first["to"] == [{"operation": {"hosts": [HOST, f"{HOST}:*"]}}]


def test_the_request_authentication_lists_each_issuer_with_its_keys_and_audiences(cfg):
    ra = _ingress_objects(cfg)[("RequestAuthentication", "meshreg-dev-ingress")]["spec"]
    assert ra["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    assert [(r["issuer"], r["audiences"], sorted(r)) for r in ra["jwtRules"]] == [
        (ISSUER, [HOST], ["audiences", "fromHeaders", "issuer", "jwks"]),
        (GITHUB, [HOST], ["audiences", "fromHeaders", "issuer", "jwksUri"])]


def test_tokens_are_taken_from_the_authorization_header_only(cfg):
    """Not also from `?access_token=`, Envoy's default: a token in a URL lands in logs along the way."""
    ra = _ingress_objects(cfg)[("RequestAuthentication", "meshreg-dev-ingress")]["spec"]
    assert all(r["fromHeaders"] == [{"name": "Authorization", "prefix": "Bearer "}] and "fromParams" not in r
               for r in ra["jwtRules"])
    refusal = _routes(_ingress_objects(cfg))["refuse-query-token"]
    assert refusal["match"] == [{"queryParams": {"access_token": {"regex": ".*"}}}]
    assert refusal["fault"] == {"abort": {"httpStatus": 400, "percentage": {"value": 100}}}


def test_the_refusals_come_before_the_challenge_and_the_registry(cfg):
    assert list(_routes(_ingress_objects(cfg))) == ["refuse-mount", "refuse-query-token", "token-challenge",
                                                    "registry"]


def test_mounts_are_refused_when_a_client_may_read_less_than_everything(cfg):
    mount = _routes(_ingress_objects(cfg))["refuse-mount"]
    # 401 without a challenge (containerd uploads instead), as an abort fault: Istio before 1.15 has no directResponse
    # and drops a VirtualService that uses one
    assert mount["fault"] == {"abort": {"httpStatus": 401, "percentage": {"value": 100}}} and "headers" not in mount
    assert mount["route"] == _routes(_ingress_objects(cfg))["registry"]["route"]
    [query, body] = mount["match"]
    assert set(query) == {"headers"} and set(query["headers"]) == {":path"}
    assert body["method"] == {"exact": "POST"} and set(body["headers"]) == {"content-type"}


def test_no_mount_is_refused_when_every_client_reads_everything(tmp_path):
    clients = (f"      - {{name: a, method: jwt, issuer: {ISSUER}, subject: a, repositories: [a/], "
               "readRepositories: ['*']}\n      - {name: b, method: mtls, repositories: ['*']}\n")
    routes = _routes(_ingress_objects(load(tmp_path, ingress_text(clients=clients))))
    assert "refuse-mount" not in routes and "refuse-query-token" in routes


@pytest.mark.parametrize(("path", "refused"), [
    ("/v2/a/blobs/uploads/?mount=sha256:x&from=b", True),
    ("/v2/a/blobs/uploads/?from=b&mount=sha256:x", True),
    ("/v2/a/blobs/uploads/?m%6Funt=sha256:x&from=b", True),
    ("/v2/a/blobs/uploads/?%6D%6F%75%6E%74=sha256:x&from=b", True),
    ("/v2/a/blobs/uploads/?x=1;mount=sha256:x", True),
    ("/v2/a/blobs/uploads/?mount=", False),  # an empty mount is no mount (distribution needs both values)
    ("/v2/a/blobs/uploads/?amount=1", False),
    ("/v2/a/blobs/uploads/", False),
    ("/v2/mount=x/blobs/uploads/", False),
    ("/v2/a/blobs/uploads/abc?_state=x&digest=sha256:y", False),
])
def test_the_mount_refusal_matches_every_spelling_of_mount_and_nothing_else(path, refused):
    import re

    from meshreg.render import refusals

    assert (re.fullmatch(refusals.MOUNT_PATH, path) is not None) == refused


def test_every_gateway_rule_is_scoped_to_the_ingress_host(cfg):
    deny = _ingress_objects(cfg)[("AuthorizationPolicy", "meshreg-dev-ingress-deny")]["spec"]
    assert deny["action"] == "DENY" and deny["selector"] == {"matchLabels": {"istio": "ingressgateway"}}
    for rule in deny["rules"]:
        assert [t["operation"]["hosts"] for t in rule["to"]] == [[HOST, f"{HOST}:*"]]


def test_a_shared_gateway_gets_no_allow_policy_and_a_dedicated_one_does(tmp_path):
    shared = _ingress_objects(load(tmp_path / "a"))
    dedicated = _ingress_objects(load(tmp_path / "b", ingress_text(clients=CLIENTS, extra=DEDICATED)))
    assert ("AuthorizationPolicy", "meshreg-dev-ingress-allow") not in shared
    allow = dedicated[("AuthorizationPolicy", "meshreg-dev-ingress-allow")]["spec"]
    assert allow["action"] == "ALLOW" and len(allow["rules"]) == 5  # the ping (for the token challenge), each client
    assert allow["rules"][0] == {"to": [{"operation": {"hosts": [HOST, f"{HOST}:*"], "paths": ["/v2/"],
                                                       "methods": ["GET", "HEAD"]}}]}


def test_unauthenticated_requests_are_denied_but_the_ping_by_the_first_rules(cfg):
    first, second = _ingress_objects(cfg)[("AuthorizationPolicy", "meshreg-dev-ingress-deny")]["spec"]["rules"][:2]
    assert first["from"] == second["from"]
    assert first["to"][0]["operation"]["notPaths"] == ["/v2/"]
    assert second["to"][0]["operation"] == {"hosts": [HOST, f"{HOST}:*"], "paths": ["/v2/"],
                                            "notMethods": ["GET", "HEAD"]}
    assert first["from"] == [{"source": {
        "notPrincipals": [f"{HOST}/client/loader", f"{HOST}/client/team-a-ci"],
        "notRequestPrincipals": [f"{ISSUER}/ci-bot", f"{GITHUB}/*"]}}]


def test_a_subject_istio_cannot_split_is_matched_as_the_sub_claim(cfg):
    by = {c.name: c for c in cfg.ingress.clients}
    assert ingress.identity(cfg.ingress, by["bot"]) == ({"requestPrincipals": [f"{ISSUER}/ci-bot"]}, [])
    assert ingress.identity(cfg.ingress, by["app-ci"]) == (
        {"requestPrincipals": [f"{GITHUB}/*"]},
        [{"key": "request.auth.claims[sub]", "values": ["repo:acme/app:ref:refs/heads/*"]}])


def test_an_ingress_without_clients_denies_everything_for_its_host(tmp_path):
    objs = _ingress_objects(load(tmp_path, ingress_text(clients="      []\n")))
    rules = objs[("AuthorizationPolicy", "meshreg-dev-ingress-deny")]["spec"]["rules"]
    assert rules == [{"to": [{"operation": {"hosts": [HOST, f"{HOST}:*"]}}]}]


def test_the_registry_lets_the_gateway_write_only_its_clients_prefixes(cfg):
    deny = next(o for o in render(cfg) if o["metadata"]["name"] == "registry-deny-writes")["spec"]["rules"]
    scoped = [r for r in deny if r.get("from") == [{"source": {"principals": [GATEWAY]}}]]
    assert [r["to"][0]["operation"]["notPaths"] for r in scoped] == [
        ["/v2/acme/app/*", "/v2/bots/*", "/v2/images/*", "/v2/team-a/*"]]


def test_rendering_without_a_ca_says_to_create_it(tmp_path):
    with pytest.raises(ConfigError, match=r"spec.ingress.clientCA: no CA in .* `meshreg certs init`"):
        render(load(tmp_path, ca=False))


def test_the_render_is_byte_identical_twice(cfg):
    assert manifests.dump_all(render(cfg)) == manifests.dump_all(render(cfg))


def test_a_jwt_issuer_on_a_shared_gateway_is_a_notice_and_no_clients_another(tmp_path):
    from meshreg.render import notices

    assert any("RequestAuthentication applies to every host" in n for n in notices(load(tmp_path / "a")))
    assert any("no clients" in n for n in notices(load(tmp_path / "b", ingress_text(clients="      []\n"))))


@pytest.mark.parametrize("extra", ["", DEDICATED], ids=["shared", "dedicated"])
def test_ingress_objects_pass_kubernetes_validate(tmp_path, extra):
    objects = [o for o in render(load(tmp_path, ingress_text(clients=CLIENTS, extra=extra))) if not is_custom(o)]
    assert errors_in(objects, kubernetes_versions()) == []


@needs_schemas
@pytest.mark.parametrize("extra", ["", DEDICATED], ids=["shared", "dedicated"])
def test_ingress_objects_pass_their_crd_schemas_with_every_cel_rule_evaluated(tmp_path, extra):
    objects = [o for o in render(load(tmp_path, ingress_text(clients=CLIENTS, extra=extra))) if is_custom(o)]
    results = [check_crd_object(o) for o in objects]
    assert [e for r in results for e in r.errors] == []
    assert [s for r in results for s in r.skipped] == []
    assert {o["kind"] for o in objects} >= {"Gateway", "VirtualService", "RequestAuthentication", "AuthorizationPolicy"}


def test_an_issuer_no_client_uses_is_left_out_of_the_request_authentication(tmp_path):
    clients = f"      - {{name: bot, method: jwt, issuer: {ISSUER}, subject: s, repositories: [b/]}}\n"
    objs = _ingress_objects(load(tmp_path, ingress_text(clients=clients)))
    ra = objs[("RequestAuthentication", "meshreg-dev-ingress")]
    assert [r["issuer"] for r in ra["spec"]["jwtRules"]] == [ISSUER]


def test_a_host_without_a_dot_is_named_as_one_istio_never_binds(tmp_path):
    """Istio resolves a VirtualService host without a dot as <host>.<namespace>.svc.cluster.local (seen on a real
    istiod: the gateway got no virtual host for `localhost`), so the render says so."""
    from meshreg.config import from_text

    text = ingress_text(clients=CLIENTS).replace(f"host: {HOST}", "host: localhost")
    cfg = from_text(text, name=str(tmp_path / "meshreg.yaml"))
    assert any("localhost.istio-system.svc.cluster.local" in n for n in ingress.notices(cfg))
    assert not any("without a dot" in n for n in ingress.notices(load(tmp_path / "dotted")))

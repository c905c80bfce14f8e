"""`policy check` through the ingress: the gateway hop (certificates, tokens, claims) then the registry hop, and
Istio's JWT matching (request principals split at the last '/', claims as strings or lists)."""

from __future__ import annotations

import pytest

from meshreg.errors import UsageError
from meshreg.policy import claims
from meshreg.policy.evaluate import evaluate
from meshreg.policy.rules import Request, match_rule
from meshreg.render import render
from support.ingress_configs import CLIENTS, GATEWAY, GITHUB, ISSUER, ingress_text, load

PUSH = ["POST /v2/{r}/blobs/uploads/", "PATCH /v2/{r}/blobs/uploads/u", "PUT /v2/{r}/manifests/v1"]


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    """The shared-gateway and dedicated-gateway renders of the same clients."""
    out = {}
    for name, extra in (("shared", ""), ("dedicated", "    gateway: {dedicated: true}\n")):
        cfg = load(tmp_path_factory.mktemp(name), ingress_text(clients=CLIENTS, extra=extra))
        out[name] = (cfg, render(cfg))
    return out


def check(setup, identity, method, path):
    cfg, objects = setup
    return evaluate(objects, identity=identity, method=method, path=path, trust_domain=cfg.trust_domain,
                    ingress=cfg.ingress)


CASES = [  # identity, method, path, allowed
    ("client:loader", "POST", "/v2/images/app/blobs/uploads/", True),
    ("client:loader", "DELETE", "/v2/images/app/manifests/sha256:0", True),
    ("client:loader", "POST", "/v2/team-a/app/blobs/uploads/", False),
    ("client:loader", "POST", "/v2/imagesx/app/blobs/uploads/", False),
    ("client:loader", "POST", "/v2/images%2Fapp/blobs/uploads/", False),
    ("client:loader", "POST", "/v2/images/../team-a/app/blobs/uploads/", False),
    ("client:loader", "POST", "/v2/images/%2e%2e/team-a/app/blobs/uploads/", False),
    ("client:loader", "GET", "/v2/team-a/app/manifests/v1", False),
    ("client:loader", "GET", "/v2/_catalog", False),
    ("client:loader", "GET", "/v2/", True),
    ("client:team-a-ci", "GET", "/v2/images/app/manifests/v1", True),
    ("client:team-a-ci", "DELETE", "/v2/team-a/app/manifests/sha256:0", False),
    ("client:team-a-ci", "OPTIONS", "/v2/team-a/app/manifests/v1", False),
    ("client:bot", "PUT", "/v2/bots/x/manifests/v1", True),
    ("client:bot", "PUT", "/v2/images/x/manifests/v1", False),
    ("client:app-ci", "PUT", "/v2/acme/app/manifests/v1", True),
    ("client:app-ci", "PUT", "/v2/acme/lib/manifests/v1", False),
    ("client:app-ci", "GET", "/v2/acme/lib/manifests/v1", True),
    ("client:app-ci", "GET", "/v2/images/x/manifests/v1", False),
    ("external", "GET", "/v2/", True),  # the ping passes the policies; the route answers the token challenge
    ("external", "HEAD", "/v2/", True),
    ("external", "POST", "/v2/", False),
    ("external", "GET", "/v2/_catalog", False),
    ("external", "POST", "/v2/images/app/blobs/uploads/", False),
]


@pytest.mark.parametrize("setup", ["shared", "dedicated"])
@pytest.mark.parametrize("identity, method, path, allowed", CASES)
def test_a_request_through_the_ingress_gets_its_clients_decision(setups, setup, identity, method, path, allowed):
    decision = check(setups[setup], identity, method, path)
    assert decision.allowed is allowed, decision.reason
    if not allowed:
        assert "at the ingress gateway" in decision.reason


def test_a_denial_names_the_gateway_policy_and_rule(setups):
    d = check(setups["shared"], "client:loader", "POST", "/v2/team-a/app/blobs/uploads/")
    assert (d.policy, d.decision) == ("meshreg-dev-ingress-deny", "DENY")
    assert "notPaths [/v2/images/*]" in d.reason


def test_an_allowed_request_is_then_decided_at_the_registry_as_the_gateway(setups):
    d = check(setups["shared"], "client:bot", "PUT", "/v2/bots/x/manifests/v1")
    assert d.policy == "registry-allow-writes" and f"then at the registry as {GATEWAY}" in d.reason


def test_the_registry_refuses_the_gateway_outside_its_clients_prefixes(setups):
    cfg, objects = setups["shared"]
    gateway = "istio-system/istio-ingressgateway-service-account"
    for repo, allowed in (("bots/x", True), ("builds/x", False), ("other/x", False)):
        d = evaluate(objects, identity=gateway, method="POST", path=f"/v2/{repo}/blobs/uploads/",
                     trust_domain=cfg.trust_domain)
        assert d.allowed is allowed, d.reason


MOUNT = "?mount=sha256:0&from=builds/secret"


@pytest.mark.parametrize("identity, method, path, refused_by", [
    ("client:app-ci", "POST", f"/v2/acme/app/blobs/uploads/{MOUNT}", "refuse-mount"),
    ("client:app-ci", "POST", "/v2/acme/app/blobs/uploads/?m%6Funt=sha256:0&from=builds/secret", "refuse-mount"),
    ("client:loader", "POST", f"/v2/images/app/blobs/uploads/{MOUNT}", "refuse-mount"),
    ("client:bot", "PUT", "/v2/bots/x/manifests/v1?access_token=t", "refuse-query-token"),
    ("external", "GET", "/v2/?access_token=t", "refuse-query-token"),
])
def test_the_ingress_routes_refuse_mounts_and_query_tokens_after_the_policies(setups, identity, method, path,
                                                                              refused_by):
    d = check(setups["shared"], identity, method, path)
    assert (d.decision, d.policy) == ("DENY", "VirtualService/meshreg-dev-ingress")
    assert f"the route {refused_by} answers" in d.reason


@pytest.mark.parametrize("identity, method, path", [
    ("client:app-ci", "POST", "/v2/acme/app/blobs/uploads/"),  # an upload without a mount goes on
    ("client:app-ci", "POST", "/v2/acme/app/blobs/uploads/?amount=1"),
    ("external", "GET", "/v2/"),  # the challenge route is not a refusal: policy check leaves it to the registry hop
])
def test_requests_that_no_refusal_route_matches_go_on_to_the_registry(setups, identity, method, path):
    assert check(setups["shared"], identity, method, path).allowed


def test_a_policy_denial_comes_before_the_routes(setups):
    d = check(setups["shared"], "client:app-ci", "POST", f"/v2/builds/x/blobs/uploads/{MOUNT}")
    assert d.policy == "meshreg-dev-ingress-deny"


def test_an_unknown_client_or_a_config_without_ingress_is_bad_input(setups, tmp_path):
    with pytest.raises(UsageError, match="no client named 'ghost'"):
        check(setups["shared"], "client:ghost", "GET", "/v2/")
    with pytest.raises(UsageError, match=r"the config has no spec.ingress"):
        evaluate([], identity="external", method="GET", path="/v2/", ingress=None)


# --- Istio's JWT matching, case by case (pilot/pkg/security/authz/model/generator.go, Istio 1.22-1.30) ---------------

@pytest.mark.parametrize("pattern, iss, sub, matches", [
    (f"{ISSUER}/bot", ISSUER, "bot", True),
    (f"{ISSUER}/bot", ISSUER, "bot2", False),
    (f"{ISSUER}/*", ISSUER, "anything", True),
    (f"{ISSUER}/b*", ISSUER, "bot", True),
    ("*/bot", "https://any.example", "bot", True),
    ("*.example.com/bot", ISSUER, "bot", True),
    ("*", "x", "y", True),
    ("*bot", "x", "robot", True),
    ("iss*", "issuer", "anything", True),
    ("https://iss*", "https://issuer", "anything", False),  # split at the last '/' too: "https:/" + "iss*"
    # A subject with '/' cannot be written as <iss>/<sub>: Istio splits at the last '/'.
    (f"{GITHUB}/repo:acme/app:ref:refs/heads/main", GITHUB, "repo:acme/app:ref:refs/heads/main", False),
    (f"{GITHUB}/*", GITHUB, "repo:acme/app:ref:refs/heads/main", True),
])
def test_request_principals_match_as_istio_splits_them(pattern, iss, sub, matches):
    ok, _ = claims.match_request_principals([pattern], {"iss": iss, "sub": sub}, negative=False,
                                            field="requestPrincipals")
    assert ok is matches


def test_without_a_token_no_request_principal_matches_and_every_negation_does():
    assert claims.match_request_principals(["*"], None, negative=False, field="requestPrincipals")[0] is False
    assert claims.match_request_principals(["*"], None, negative=True, field="notRequestPrincipals")[0] is True


@pytest.mark.parametrize("condition, payload, matches", [
    ({"key": "request.auth.claims[org]", "values": ["acme"]}, {"org": "acme"}, True),
    ({"key": "request.auth.claims[org]", "values": ["acme"]}, {"org": ["x", "acme"]}, True),
    ({"key": "request.auth.claims[org]", "values": ["ac*"]}, {"org": "acme"}, True),
    ({"key": "request.auth.claims[org]", "values": ["acme"]}, {}, False),
    ({"key": "request.auth.claims[org]", "notValues": ["acme"]}, {}, True),
    ({"key": "request.auth.claims[org]", "notValues": ["acme"]}, {"org": "acme"}, False),
    ({"key": "request.auth.claims[org]", "values": ["1"]}, {"org": 1}, False),
    ({"key": "request.auth.claims[a][b]", "values": ["c"]}, {"a": {"b": "c"}}, True),
])
def test_claim_conditions_match_strings_and_lists(condition, payload, matches):
    assert claims.match_condition(condition, payload)[0] is matches


def test_a_rule_with_claims_matches_only_a_token_that_has_them():
    rule = {"from": [{"source": {"requestPrincipals": [f"{ISSUER}/*"]}}],
            "when": [{"key": "request.auth.claims[sub]", "values": ["a/b"]}]}
    def req(payload):
        return Request(None, "GET", "/v2/", "h", 443, payload)
    assert match_rule(rule, req({"iss": ISSUER, "sub": "a/b"}), where="r")[0]
    assert not match_rule(rule, req({"iss": ISSUER, "sub": "a/c"}), where="r")[0]
    assert not match_rule(rule, req(None), where="r")[0]


def test_a_readonly_registrys_ingress_clients_publish_beside_its_publisher(tmp_path):
    from support.configs import minimal

    text = minimal("""\
  registries:
    - {name: images, port: 5000, default: true, writers: [{serviceAccount: builds/kaniko}]}
    - {name: services, port: 5001, role: readonly, publisher: ops/loader}
  ingress:
    host: registry.example.com
    registry: services
    credentialName: tls
    clients: [{name: airgap, method: mtls, repositories: [gitpod/]}]
""")
    cfg = load(tmp_path, text)
    objects = render(cfg)

    def decide(identity, repo, registry="services"):
        return evaluate(objects, identity=identity, method="PUT", path=f"/v2/{repo}/manifests/v1", registry=registry,
                        trust_domain=cfg.trust_domain, ingress=cfg.ingress).allowed

    assert decide("client:airgap", "gitpod/server") and decide("ops/loader", "anything/x")
    assert not decide("client:airgap", "other/x")
    assert not decide("istio-system/istio-ingressgateway-service-account", "gitpod/server", registry="images")

"""spec.ingress: read with its defaults, and every mistake one line naming file, line and field."""

from __future__ import annotations

import json

import pytest

from meshreg import config
from meshreg.errors import ConfigError
from support.configs import minimal
from support.ingress_configs import CLIENTS, GATEWAY, GITHUB, HOST, ISSUER, ingress_text, jwks, load, signing_key


def test_the_ingress_is_read_with_its_defaults(tmp_path):
    ing = load(tmp_path).ingress
    assert (ing.host, ing.registry, ing.credential_name) == (HOST, "registry", "registry-tls")
    gw = ing.gateway
    assert (gw.namespace, gw.selector, gw.service_account, gw.port, gw.dedicated) == (
        "istio-system", {"istio": "ingressgateway"}, "istio-ingressgateway-service-account", 443, False)
    assert [i.issuer for i in ing.issuers] == [ISSUER, GITHUB] and ing.issuers[1].jwks_uri.endswith("/jwks")
    assert ing.client_ca == str(tmp_path / "ingress-ca") and ing.ca_pem.startswith("-----BEGIN CERTIFICATE")
    assert ing.crl_pem.startswith("-----BEGIN X509 CRL")


def test_clients_keep_their_method_scopes_and_token_identity(tmp_path):
    ing = load(tmp_path).ingress
    by = {c.name: c for c in ing.clients}
    assert by["loader"].read_repositories == by["loader"].repositories == ("images/",) and by["loader"].delete
    assert by["team-a-ci"].read_repositories == ("*",)
    assert (by["bot"].issuer, by["bot"].subject, by["bot"].claims) == (ISSUER, "ci-bot", ())
    assert by["app-ci"].claims == (("job_workflow_ref", ("acme/workflows/*", "acme/app/*")),
                                   ("repository_owner", ("acme",)))
    assert ing.principal(by["loader"]) == f"{HOST}/client/loader"


def test_the_gateway_writes_the_union_of_its_clients_prefixes(tmp_path):
    cfg = load(tmp_path)
    writers = {w.service_account: w for w in cfg.writers_of(cfg.registry)}
    gateway = writers["istio-system/istio-ingressgateway-service-account"]
    assert gateway.repositories == ("acme/app/", "bots/", "images/", "team-a/") and gateway.delete
    assert cfg.principal(gateway.service_account) == GATEWAY
    assert cfg.writers == (writers["builds/kaniko"],)  # the listed writers are unchanged


def test_a_client_of_every_repository_makes_the_gateway_a_writer_of_every_repository(tmp_path):
    text = ingress_text(clients="      - {name: all, method: mtls, repositories: ['*']}\n"
                                "      - {name: some, method: mtls, repositories: [a/]}\n")
    cfg = load(tmp_path, text)
    assert cfg.writers_of(cfg.registry)[-1].repositories == ("*",)


def test_an_ingress_without_clients_adds_no_writer(tmp_path):
    cfg = load(tmp_path, ingress_text(clients="      []\n"))
    assert [w.service_account for w in cfg.writers_of(cfg.registry)] == ["builds/kaniko"]


def test_the_only_issuer_is_a_jwt_clients_default(tmp_path):
    text = ingress_text(clients="      - {name: bot, method: jwt, subject: x, repositories: [b/]}\n")
    github = f"      - issuer: {GITHUB}\n        audiences: [{HOST}]\n        jwksUri: {GITHUB}/.well-known/jwks\n"
    text = text.replace(github, "")
    assert load(tmp_path, text).ingress.clients[0].issuer == ISSUER


def test_without_a_ca_the_config_loads_and_holds_no_ca_yet(tmp_path):
    ing = load(tmp_path, ca=False).ingress
    assert ing.ca_pem is None and ing.crl_pem is None


def test_the_ingress_serves_the_registry_it_names(tmp_path):
    text = minimal(f"""\
  registries:
    - {{name: images, port: 5000, default: true}}
    - {{name: services, port: 5001, role: readonly, publisher: ops/loader}}
  ingress:
    host: {HOST}
    registry: services
    credentialName: tls
    clients: [{{name: loader, method: mtls, repositories: [gitpod/]}}]
""")
    cfg = load(tmp_path, text)
    images, services = cfg.registries
    assert [w.service_account for w in cfg.writers_of(services)] == [
        "ops/loader", "istio-system/istio-ingressgateway-service-account"]
    assert [w.service_account for w in cfg.writers_of(images)] == []


def _jwks_with(key: dict) -> str:
    return json.dumps({"keys": [key]})


def _private_jwk() -> str:
    return _jwks_with(signing_key().as_dict(private=True))


BAD = {
    "unknown method": (("method: mtls\n        repositories: [images/]",
                        "method: basic\n        repositories: [images/]"),
                       "clients[0].method: 'basic' is not an authentication method (expected one of: mtls, jwt)"),
    "client without scopes": (("repositories: [images/]", "repositories: []"),
                              "clients[0].repositories: empty"),
    "client without repositories": (("        repositories: [images/]\n", ""),
                                    "clients[0]: missing required key 'repositories'"),
    "duplicate client names": (("name: team-a-ci", "name: loader"),
                               "clients[1].name: 'loader' is already the name of clients[0]"),
    "jwks not JSON": ((jwks(), "{not json"), "issuers[0].jwks: is not JSON"),
    "jwks without keys": ((jwks(), '{"keys": []}'), "issuers[0].jwks: is not a JWKS"),
    "jwks with a broken key": ((jwks(), '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA"}]}'),
                               "issuers[0].jwks: keys[0] does not parse as a JWK"),
    "jwks with an unknown kty": ((jwks(), '{"keys": [{"kty": "XYZ"}]}'), "keys[0] does not parse as a JWK"),
    "jwks with a private key": ((jwks(), _private_jwk()), "keys[0] holds private key parameters (d)"),
    "jwks with a symmetric key": ((jwks(), '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'),
                                  "keys[0] is a symmetric (oct) key"),
    "host with a port": ((f"host: {HOST}", f"host: {HOST}:443"), "spec.ingress.host: 'registry.example.com:443' is "
                                                                 "not a DNS name"),
    "host in upper case": ((f"host: {HOST}", "host: Registry.example.com"), "is not a DNS name"),
    "host with a scheme": ((f"host: {HOST}", f"host: https://{HOST}"), "is not a DNS name"),
    "host as a wildcard": ((f"host: {HOST}", "host: '*.example.com'"), "is not a DNS name"),
    "jwks uri over http": ((f"jwksUri: {GITHUB}", "jwksUri: http://token.example.com"), "is not an https:// URL"),
    "both jwks and a uri": ((f"        jwksUri: {GITHUB}/.well-known/jwks\n",
                             f"        jwksUri: {GITHUB}/.well-known/jwks\n        jwks: '{jwks()}'\n"),
                            "issuers[1]: set exactly one of jwks"),
    "no audiences": ((f"        audiences: [{HOST}]\n        jwks:", "        audiences: []\n        jwks:"),
                     "issuers[0].audiences: empty"),
    "jwt client with an unknown issuer": ((f"issuer: {ISSUER}\n        subject", "issuer: https://x\n        subject"),
                                          "clients[2].issuer: 'https://x' is not in spec.ingress.issuers"),
    "jwt client without an issuer among several": ((f"        issuer: {ISSUER}\n        subject", "        subject"),
                                                   "clients[2]: missing required key 'issuer' (several issuers"),
    "jwt client without a subject": (("        subject: ci-bot\n", ""), "clients[2]: missing required key 'subject'"),
    "subject with a star inside": (("subject: ci-bot", "subject: 'ci*bot'"), "'*' may only stand alone or at one end"),
    "claims naming sub": (("claims: {repository_owner: acme,", "claims: {sub: acme,"),
                          "clients[3].claims.sub: 'sub' is matched by the client's subject"),
    "mtls client with a subject": (("        delete: true\n", "        delete: true\n        subject: x\n"),
                                   "clients[0].subject: only a jwt client has subject"),
    "delete without deleteEnabled": (("registry: {deleteEnabled: true}", "registry: {deleteEnabled: false}"),
                                     "clients[0].delete: grants DELETE but registry 'registry' has deleteEnabled"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_ingress_is_one_line_naming_the_field(tmp_path, case):
    (old, new), expected = BAD[case]
    text = ingress_text(clients=CLIENTS)
    assert old in text, f"the case does not apply: {old!r}"
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text.replace(old, new, 1))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'meshreg.yaml'}:")
    assert expected in message


def test_two_clients_with_one_issuer_and_subject_are_refused(tmp_path):
    clients = f"""\
      - {{name: a, method: jwt, issuer: {ISSUER}, subject: bot, repositories: [a/]}}
      - {{name: b, method: jwt, issuer: {ISSUER}, subject: bot, repositories: [b/]}}
"""
    with pytest.raises(ConfigError, match=r"clients\[1\]\.subject: clients\[0\] already has issuer"):
        load(tmp_path, ingress_text(clients=clients))


@pytest.mark.parametrize("spec, expected", [
    ("  writers:\n    - serviceAccount: istio-system/istio-ingressgateway-service-account\n", "is also writers[0]"),
])
def test_the_gateway_cannot_also_be_a_writer(tmp_path, spec, expected):
    text = ingress_text(clients=CLIENTS).replace("  writers:\n    - serviceAccount: builds/kaniko\n"
                                                 "      repositories: [builds/]\n", spec)
    with pytest.raises(ConfigError, match=r"spec\.ingress\.gateway\.serviceAccount: .*" + expected.replace("[", r"\[")):
        load(tmp_path, text)


def test_a_mirror_is_never_served_by_the_ingress(tmp_path):
    text = minimal(f"""\
  registries:
    - {{name: cache, port: 5000, role: mirror, mirror: {{upstream: https://ghcr.io}}}}
  ingress: {{host: {HOST}, credentialName: tls, clients: []}}
""")
    with pytest.raises(ConfigError, match=r"spec.ingress.registry: 'cache' is a mirror"):
        load(tmp_path, text)


def test_an_empty_gateway_selector_is_refused(tmp_path):
    text = ingress_text(clients=CLIENTS, extra="    gateway: {selector: {}}\n")
    with pytest.raises(ConfigError, match=r"spec.ingress.gateway.selector: empty"):
        load(tmp_path, text)


def test_a_dedicated_gateway_with_its_own_labels_and_port(tmp_path):
    extra = ("    gateway: {namespace: registry-ingress, selector: {app: registry-gateway}, serviceAccount: gw,"
             " port: 8443, dedicated: true}\n")
    ing = load(tmp_path, ingress_text(clients=CLIENTS, extra=extra)).ingress
    assert (ing.gateway.identity, ing.gateway.port, ing.address) == ("registry-ingress/gw", 8443, f"{HOST}:8443")


def test_the_default_config_has_no_ingress():
    assert config.DEFAULT.ingress is None

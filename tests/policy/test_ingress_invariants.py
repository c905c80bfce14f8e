"""The ingress against the evaluator: over random clients, no client writes outside its prefixes through the
gateway (whatever the path trick), each can write what it covers, and nobody without credentials writes (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshreg import config
from meshreg import render as rendering
from meshreg.pki.authority import Authority
from meshreg.policy.evaluate import evaluate
from support.ingress_configs import HOST, ISSUER, jwks

PREFIXES = ["team-a/", "team-ab/", "team-a/app/", "b/", "shared/base/"]
WRITES = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TRICKS = ["/v2/{r}/blobs/uploads/", "/v2/{r}/manifests/x", "/v2/x/../{r}/blobs/uploads/", "/v2/{e}/blobs/uploads/",
          "/v2//{r}/manifests/x", "/v2/{r}/%2e%2e/{r}/manifests/x", "/v2/{r}/blobs/uploads/?from=b/app"]
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
scopes = st.one_of(st.just(["*"]), st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True))


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ca")
    Authority.create(directory / "ingress-ca", domain=HOST, days=1)
    return directory


@st.composite
def clients(draw):
    out = []
    for i in range(draw(st.integers(1, 3))):
        client = {"name": f"c{i}", "method": draw(st.sampled_from(["mtls", "jwt"])), "repositories": draw(scopes),
                  "delete": draw(st.booleans())}
        if client["method"] == "jwt":
            client.update(issuer=ISSUER, subject=draw(st.sampled_from([f"bot-{i}", f"repo:acme/c{i}:*"])))
        out.append(client)
    return out, draw(st.booleans())


def make(ca_dir, spec_clients, dedicated):
    ingress = {"host": HOST, "credentialName": "tls", "gateway": {"dedicated": dedicated}, "clients": spec_clients,
               "issuers": [{"issuer": ISSUER, "audiences": [HOST], "jwks": jwks()}]}
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "t"},
           "spec": {"registry": {"deleteEnabled": True}, "ingress": ingress}}
    return config.from_text(json.dumps(doc), name=str(ca_dir / "random.yaml"))


def allowed(cfg, identity, method, path) -> bool:
    return evaluate(rendering.render(cfg), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain, ingress=cfg.ingress).allowed


def covers(client, repo: str) -> bool:
    return client.repositories == ("*",) or any((repo + "/").startswith(p) for p in client.repositories)


@FAST
@given(clients(), st.sampled_from(PREFIXES), st.sampled_from(WRITES), st.sampled_from(TRICKS))
def test_no_client_writes_outside_its_prefixes_through_the_ingress(ca_dir, drawn, prefix, method, trick):
    cfg = make(ca_dir, *drawn)
    repo = prefix + "app"
    path = trick.format(r=repo, e=repo.replace("/", "%2F"))
    for client in cfg.ingress.clients:
        if allowed(cfg, f"client:{client.name}", method, path):
            assert covers(client, repo), (client, method, path)  # the registry decodes %2F: repo is the target
            assert method != "DELETE" or client.delete


@FAST
@given(clients(), st.sampled_from(PREFIXES), st.sampled_from(["POST", "PATCH", "PUT"]))
def test_every_client_can_write_what_it_covers(ca_dir, drawn, prefix, method):
    cfg = make(ca_dir, *drawn)
    for client in cfg.ingress.clients:
        if covers(client, prefix + "app"):
            assert allowed(cfg, f"client:{client.name}", method, f"/v2/{prefix}app/blobs/uploads/")


@FAST
@given(clients(), st.sampled_from(WRITES + ["GET", "HEAD"]), st.sampled_from(PREFIXES))
def test_without_credentials_nothing_passes_but_the_ping(ca_dir, drawn, method, prefix):
    cfg = make(ca_dir, *drawn)
    assert not allowed(cfg, "external", method, f"/v2/{prefix}app/blobs/uploads/")

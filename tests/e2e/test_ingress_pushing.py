"""Pushes with skopeo through the ingress: client certificates from `meshreg certs` and JWTs signed here, each
inside its prefixes only; revoked, foreign and mesh certificates and bad tokens get nowhere."""

from __future__ import annotations

import ssl

import httpx
import pytest

from support.ingress_cases import (
    AUDIENCE,
    GITHUB_SUB,
    ISSUER,
    client,
    github,
    handshake_alert,
    key,
    pushed,
    refused,
    token,
    unsigned,
)


def test_a_certificate_client_pushes_inside_its_prefix(ingress_lab, image):
    pushed(ingress_lab, image, "images/app", cert_dir=ingress_lab.certs["loader"])


def test_a_certificate_client_is_refused_outside_its_prefix(ingress_lab, image):
    refused(ingress_lab, image, "ci/from-loader", 403, cert_dir=ingress_lab.certs["loader"])


def test_a_rotated_certificate_pushes_and_the_revoked_one_fails_the_handshake(ingress_lab, image):
    pushed(ingress_lab, image, "rotated/app", cert_dir=ingress_lab.certs["rotated"])
    assert handshake_alert(ingress_lab, ingress_lab.certs["rotated"]) == ""
    assert handshake_alert(ingress_lab, ingress_lab.certs["revoked"]) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    refused(ingress_lab, image, "rotated/old", 0, cert_dir=ingress_lab.certs["revoked"])


def _with_server_ca(lab, ident, directory):
    directory.mkdir()
    for name in ("client.cert", "client.key"):
        (directory / name).write_bytes((ident.dir / name).read_bytes())
    (directory / "ca.crt").write_bytes(lab.public.ca_file.read_bytes())
    return directory


def test_a_certificate_from_another_ca_with_a_clients_name_gets_nowhere(ingress_lab, image, tmp_path):
    from support.lab.pki import Authority

    forged = Authority(tmp_path / "forger", "forger").issue("spiffe://localhost/client/loader", label="forged",
                                                            trust=ingress_lab.public.ca_file)
    assert handshake_alert(ingress_lab, forged.dir) == "TLSV1_ALERT_UNKNOWN_CA"
    refused(ingress_lab, image, "images/forged", 0, cert_dir=forged.dir)


def test_a_mesh_workload_certificate_is_not_trusted_at_the_ingress(ingress_lab, image, tmp_path):
    """Not even an in-mesh writer's own certificate: the gateway trusts only the client CA on this server."""
    cert_dir = _with_server_ca(ingress_lab, ingress_lab.identity("builds/kaniko"), tmp_path / "mesh-writer")
    assert handshake_alert(ingress_lab, cert_dir) == "TLSV1_ALERT_UNKNOWN_CA"
    refused(ingress_lab, image, "builds/via-ingress", 0, cert_dir=cert_dir)


def test_a_client_certificate_cannot_reach_the_registry_sidecar_directly(ingress_lab):
    ctx = ssl.create_default_context(cafile=str(ingress_lab.ca.ca_file))
    certs = ingress_lab.certs["loader"]
    ctx.load_cert_chain(str(certs / "client.cert"), str(certs / "client.key"))
    with httpx.Client(base_url=f"https://{ingress_lab.sidecar}", verify=ctx) as c, pytest.raises(httpx.TransportError):
        c.get("/v2/")


def test_a_token_client_pushes_inside_its_prefix(ingress_lab, image):
    pushed(ingress_lab, image, "ci/app", bearer=token())


def test_a_token_client_is_refused_outside_its_prefix(ingress_lab, image):
    refused(ingress_lab, image, "images/from-ci", 403, bearer=token())


def test_a_github_style_token_pushes_with_its_subject_and_claim(ingress_lab, image):
    pushed(ingress_lab, image, "acme/app", bearer=github())


def test_a_github_style_token_without_the_required_claim_is_refused(ingress_lab, image):
    refused(ingress_lab, image, "acme/app/no-claim", 403, bearer=token(GITHUB_SUB, repository_owner="evil"))


def test_a_valid_token_whose_subject_is_no_client_is_refused(ingress_lab, image):
    refused(ingress_lab, image, "ci/stranger", 403, bearer=token("stranger"))


BAD_TOKENS = {
    "expired": lambda: token(lifetime=-120),
    "wrong issuer": lambda: token(iss="https://other.example"),
    "wrong audience": lambda: token(aud="another-service"),
    "alg none": lambda: unsigned(),
    "re-signed with another key": lambda: token(signer=key("forger")),
    "not a JWT": lambda: "opaque-token-value",
}


@pytest.mark.parametrize("bad", BAD_TOKENS, ids=list(BAD_TOKENS))
def test_a_bad_token_gets_nowhere(ingress_lab, image, bad):
    refused(ingress_lab, image, f"ci/bad-{bad.replace(' ', '-')}", 0, bearer=BAD_TOKENS[bad]())


@pytest.mark.parametrize("bad", BAD_TOKENS, ids=list(BAD_TOKENS))
def test_a_bad_token_is_refused_by_the_jwt_filter_before_any_policy(ingress_lab, bad):
    with client(ingress_lab, f"bearer {BAD_TOKENS[bad]()}") as c:
        response = c.post("/v2/ci/app/blobs/uploads/")
    # jwt_authn answers 401 (403 for an audience it does not accept) with its reason; RBAC would say "RBAC: ...".
    assert response.status_code in (401, 403) and "Jwt" in response.text, (response.status_code,
                                                                                   response.text)


def test_no_credentials_get_nowhere(ingress_lab, image):
    refused(ingress_lab, image, "images/anonymous-push", 0)
    with client(ingress_lab, "none") as c:
        assert c.head("/v2/images/anonymous-push/blobs/" + "sha256:" + "0" * 64).status_code == 403


def test_the_tokens_here_are_for_this_issuer_and_audience():
    """The bad-token cases differ from a good one only in what they name (sanity of the test itself)."""
    from joserfc import jwt

    good = jwt.decode(token(), key()).claims
    assert (good["iss"], good["aud"], good["sub"]) == (ISSUER, AUDIENCE, "ci-bot")

"""An ingress with certificate clients only: the Gateway server is MUTUAL, so a connection without a client
certificate ends in the handshake, before any policy or route."""

from __future__ import annotations

import httpx
import pytest

from support.ingress_cases import CASES, client, handshake_alert, pushed, refused, refused_at_gateway, send

CERT_CASES = [c for c in CASES if c.who.startswith("cert:")]


def test_without_a_client_certificate_the_handshake_fails(mutual_ingress_lab):
    with client(mutual_ingress_lab, "none") as c, pytest.raises(httpx.TransportError):
        c.get("/v2/")


def test_a_certificate_client_pushes_inside_its_prefix_and_not_outside(mutual_ingress_lab, image):
    pushed(mutual_ingress_lab, image, "images/app", cert_dir=mutual_ingress_lab.certs["loader"])
    refused(mutual_ingress_lab, image, "rotated/by-loader", 403, cert_dir=mutual_ingress_lab.certs["loader"])


def test_the_revoked_certificate_fails_the_handshake(mutual_ingress_lab, image):
    assert handshake_alert(mutual_ingress_lab, mutual_ingress_lab.certs["revoked"]) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    refused(mutual_ingress_lab, image, "rotated/old", 0, cert_dir=mutual_ingress_lab.certs["revoked"])


@pytest.mark.parametrize("case", CERT_CASES, ids=[c.name for c in CERT_CASES])
def test_a_certificate_client_gets_the_same_decisions_as_with_token_clients_beside_it(mutual_ingress_lab, case):
    response = send(mutual_ingress_lab, case)
    if case.denied is not None:
        assert refused_at_gateway(response) == case.denied, response.status_code

"""The token challenge under each of Istio's forwardClientCertDetails settings for a gateway (its mesh config
`gatewayTopology`), on the lab's ingress with certificate and token clients on one host: the route tells a caller
with a verified certificate by `x-forwarded-client-cert`, so the setting decides who is challenged."""

from __future__ import annotations

from contextlib import closing

import pytest

from support.ingress_cases import client, config_text
from support.lab.envoy import GATEWAY_XFCC

MODES = {  # mode: (a certificate client's ping, a ping without a certificate that sends the header itself)
    "SANITIZE_SET": (200, 401),  # Istio's default for gateways
    "APPEND_FORWARD": (200, 401),
    "SANITIZE": (401, 401),  # the certificate client is challenged too
    "FORWARD_ONLY": (401, 401),
    "ALWAYS_FORWARD_ONLY": (401, 200),  # the caller decides: a forged header skips the challenge (and then gets 403)
}
FORGED = {"x-forwarded-client-cert": "By=spiffe://x;URI=spiffe://localhost/client/loader"}


@pytest.mark.parametrize("mode", MODES)
def test_the_challenge_under_each_forward_client_cert_setting(real_parts, tmp_path, mode):
    from support.lab.ingress import IngressLab

    xfcc = {"forward_client_cert_details": mode}
    if mode in ("SANITIZE_SET", "APPEND_FORWARD"):
        xfcc["set_current_client_cert_details"] = GATEWAY_XFCC["set_current_client_cert_details"]

    def setup(lab) -> None:
        lab.certs = {"loader": lab.issue("loader")}

    with closing(IngressLab(config_text(), tmp_path, setup=setup, xfcc=xfcc)) as lab:
        with client(lab, "cert:loader") as c:
            certified = c.get("/v2/").status_code
        with client(lab, "none") as c:
            forged = c.get("/v2/", headers=FORGED)
            upload = c.post("/v2/images/app/blobs/uploads/", headers=FORGED).status_code
    assert (certified, forged.status_code) == MODES[mode]
    if forged.status_code == 401:
        assert forged.headers["www-authenticate"].startswith("Bearer realm=")
    assert upload == 403  # whatever the header says, the policies see no credential

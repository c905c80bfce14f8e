"""The client CA's listing: each certificate with its status as of a moment, and the mtls clients without one."""

from __future__ import annotations

import datetime

from meshreg.operations.certs import CertificateEntry, listing
from meshreg.pki.authority import Authority, client_uri
from support.ingress_configs import HOST, load

UTC = datetime.timezone.utc


def test_each_certificate_has_its_status_then_and_says_whether_its_client_is_configured(tmp_path):
    cfg = load(tmp_path)
    ca = Authority.open(tmp_path / "ingress-ca")
    loader, _, _ = ca.issue("loader", uri=client_uri(HOST, "loader"), days=10, force=False)
    stranger, _, _ = ca.issue("stranger", uri=client_uri(HOST, "stranger"), days=10, force=False)
    found = listing(cfg.ingress, now=datetime.datetime.now(UTC))
    assert found.ca == str(tmp_path / "ingress-ca") and (found.host, found.crl_number) == (HOST, 1)
    assert found.certificates == (CertificateEntry(loader, "valid", configured=True),
                                  CertificateEntry(stranger, "valid", configured=False))
    assert found.without_certificate == ("team-a-ci",)
    later = listing(cfg.ingress, now=datetime.datetime.now(UTC) + datetime.timedelta(days=11))
    assert [c.status for c in later.certificates] == ["expired", "expired"]


def test_a_revoked_certificate_leaves_its_client_without_one(tmp_path):
    cfg = load(tmp_path)
    ca = Authority.open(tmp_path / "ingress-ca")
    ca.issue("loader", uri=client_uri(HOST, "loader"), days=10, force=False)
    ca.revoke("loader", serial=None)
    found = listing(cfg.ingress, now=datetime.datetime.now(UTC))
    assert [(c.issued.name, c.status) for c in found.certificates] == [("loader", "revoked")]
    assert found.without_certificate == ("loader", "team-a-ci")
    assert found.crl_number == 2  # the CA signed CRL 1 when it was created

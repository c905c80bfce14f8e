"""`certs list` for people and for -o json."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.operations.certs import CertificateListing

__all__ = ["data", "text"]


def data(listing: CertificateListing) -> dict[str, Any]:
    """The `kind: CertificateListing` document (docs/output.md): each certificate the CA issued, with its status and
    whether the config names its client."""
    return document("CertificateListing", {
        "ca": listing.ca, "host": listing.host, "crlNumber": listing.crl_number,
        "certificates": [{"name": c.issued.name, "serial": c.issued.serial, "notBefore": c.issued.not_before,
                          "notAfter": c.issued.not_after, "sha256": c.issued.sha256, "revoked": c.issued.revoked,
                          "status": c.status, "configured": c.configured} for c in listing.certificates],
        "withoutCertificate": list(listing.without_certificate)})


def text(listing: CertificateListing) -> str:
    """One line per certificate, then one per mtls client without a valid one."""
    lines = [f"client CA {listing.ca} for {listing.host}; CRL number {listing.crl_number}"]
    for c in listing.certificates:
        note = "" if c.configured else "  (not a client in the config)"
        lines.append(f"  {c.issued.name:24} {c.status:8} serial {c.issued.serial:34} until {c.issued.not_after}{note}")
    lines += [f"  {name:24} no valid certificate: meshreg certs issue {name}" for name in listing.without_certificate]
    return "\n".join(lines)

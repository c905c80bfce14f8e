"""`certs list`: each certificate the client CA issued, with its status now, and the mtls
clients of the config that hold no valid certificate."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from meshreg.config.model import Ingress
from meshreg.pki.authority import Authority, Issued

__all__ = ["CertificateEntry", "CertificateListing", "listing"]


@dataclass(frozen=True)
class CertificateEntry:
    """A certificate the CA issued, whether it is valid, expired or revoked, and whether its client is configured."""

    issued: Issued
    status: str  # "valid", "expired" or "revoked"
    configured: bool  # its name is a client of spec.ingress


@dataclass(frozen=True)
class CertificateListing:
    """The CA (its directory, the ingress host it serves, its CRL number) and what it issued."""

    ca: str
    host: str
    crl_number: int
    certificates: tuple[CertificateEntry, ...]
    without_certificate: tuple[str, ...]  # mtls clients with no valid certificate


def listing(ingress: Ingress, *, now: datetime.datetime) -> CertificateListing:
    """Every certificate the CA of `ingress` issued (status as of `now`), and the mtls clients left without one."""
    authority = Authority.open(Path(ingress.client_ca))
    certificates = tuple(CertificateEntry(issued=i, status=i.status(now), configured=ingress.client(i.name) is not None)
                         for i in authority.issued)
    missing = tuple(c.name for c in ingress.clients if c.method == "mtls" and not authority.valid(c.name))
    return CertificateListing(ca=str(authority.directory), host=ingress.host, crl_number=authority.crl_number,
                              certificates=certificates, without_certificate=missing)

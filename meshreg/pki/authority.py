"""The ingress client CA in a local directory: create it, issue client certificates, revoke them, keep its CRL.

Layout of the directory (`meshreg certs` owns it):

  ca.crt      the CA certificate (public): rendered into the gateway's `<credentialName>-cacert` Secret
  ca.crl      the revocation list (public, signed by the CA): rendered beside it as `ca.crl`
  ca.key      the CA's private key: mode 0600, never printed or rendered; `.gitignore` keeps it out of Git
  index.json  every certificate issued (client name, serial, validity, revocation) and the CRL number
  clients/    issued client keys and certificates, by default (also ignored by Git)

The key stays on the machine that runs `meshreg certs`: the gateway only needs the certificate and the CRL to
verify clients, and a CA key in a cluster Secret would let anyone who can read Secrets there mint writers.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshreg.errors import UsageError
from meshreg.pki.material import CA_CERT, CA_CRL, CA_KEY, INDEX

IGNORED = "ca.key\nclients/\n"
_UTC = datetime.timezone.utc


def client_uri(domain: str, name: str) -> str:
    """The identity a client certificate carries (URI SAN): Istio reads it as principal `<domain>/client/<name>`."""
    return f"spiffe://{domain}/client/{name}"


@dataclass(frozen=True)
class Issued:
    """One certificate the CA issued, as index.json records it (times in UTC, ISO 8601)."""

    name: str
    serial: str  # hex
    not_before: str
    not_after: str
    sha256: str
    revoked: str | None = None

    def status(self, now: datetime.datetime) -> str:
        if self.revoked:
            return "revoked"
        return "expired" if datetime.datetime.fromisoformat(self.not_after) <= now else "valid"


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC).replace(microsecond=0)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically (a temporary file renamed over `path`); private files are 0600 from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Authority:
    """A CA directory: its certificate, its index, and (read only when signing) its key."""

    def __init__(self, directory: Path, cert: x509.Certificate, issued: list[Issued], crl_number: int) -> None:
        self.directory = directory
        self.cert = cert
        self.issued = issued
        self.crl_number = crl_number

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, domain: str, days: int,
               now: datetime.datetime | None = None) -> Authority:
        """A new CA in `directory` (which must not hold one); refuses to overwrite anything."""
        directory = Path(directory)
        if (directory / CA_CERT).exists() or (directory / CA_KEY).exists():
            raise UsageError(f"{directory} already holds a CA ({CA_CERT}); meshreg never overwrites a CA "
                             "(every client certificate depends on it)")
        now = now or _now()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshreg"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"meshreg client CA for {domain}")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days))
                # path_length 0: it signs client certificates, never another CA.
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_key_usage(ca=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(directory / CA_KEY, _pem_key(key), private=True)
        write_file(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
        write_file(directory / ".gitignore", IGNORED.encode())
        authority = cls(directory, cert, [], 0)
        authority._save(key, now)
        return authority

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> Authority:
        directory = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
            index = json.loads((directory / INDEX).read_text())
        except FileNotFoundError as e:
            raise UsageError(f"{directory}: no CA there (missing {Path(e.filename).name}); "
                             "create one with `meshreg certs init`") from e
        except (ValueError, KeyError) as e:
            raise UsageError(f"{directory}: the CA files do not parse ({e})") from e
        return cls(directory, cert, [Issued(**i) for i in index["issued"]], index["crlNumber"])

    def _key(self) -> CertificateIssuerPrivateKeyTypes:
        try:
            key = serialization.load_pem_private_key((self.directory / CA_KEY).read_bytes(), password=None)
        except FileNotFoundError as e:
            raise UsageError(f"{self.directory}: the CA key ({CA_KEY}) is not here; sign on the machine that "
                             "holds it") from e
        return cast(CertificateIssuerPrivateKeyTypes, key)  # a CA's key signs (create() makes an EC key)

    def _public_key(self) -> CertificateIssuerPublicKeyTypes:
        return cast(CertificateIssuerPublicKeyTypes, self.cert.public_key())  # the key of a CA: it signs

    def valid(self, name: str, now: datetime.datetime | None = None) -> list[Issued]:
        now = now or _now()
        return [i for i in self.issued if i.name == name and i.status(now) == "valid"]

    def refuse_existing(self, name: str, *, force: bool, now: datetime.datetime | None = None) -> None:
        """UsageError when `name` already holds a valid certificate, unless `force`."""
        current = self.valid(name, now)
        if current and not force:
            raise UsageError(f"client {name!r} already has a valid certificate (serial {current[-1].serial}, until "
                             f"{current[-1].not_after}); --force issues another, `meshreg certs revoke {name}` "
                             "revokes it")

    def spent(self, serial: str) -> bool:
        """Whether the certificate with `serial` is one of this CA's and revoked or expired (its files may go)."""
        return any(i.serial == serial and i.status(_now()) != "valid" for i in self.issued)

    def issue(self, name: str, *, uri: str, days: int, force: bool = False,
              now: datetime.datetime | None = None) -> tuple[Issued, bytes, bytes]:
        """A client certificate for `uri`, its PEM and its key's PEM (nothing is written here but the index)."""
        now = now or _now()
        self.refuse_existing(name, force=force, now=now)
        not_after = min(now + datetime.timedelta(days), self.cert.not_valid_after_utc)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(ca=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._public_key()),
                               critical=False)
                .sign(self._key(), hashes.SHA256()))
        issued = Issued(name=name, serial=f"{cert.serial_number:x}", not_before=now.isoformat(),
                        not_after=not_after.isoformat(), sha256=cert.fingerprint(hashes.SHA256()).hex())
        self.issued.append(issued)
        self._save_index()
        return issued, cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def revoke(self, name: str, *, serial: str | None = None, now: datetime.datetime | None = None) -> list[Issued]:
        """Revoke every unrevoked certificate of `name` (or the one with `serial`), then re-sign the CRL."""
        now = now or _now()
        targets = self._unrevoked(name, serial)
        key = self._key()
        revoked = {i.serial for i in targets}
        self.issued = [replace(i, revoked=now.isoformat()) if i.serial in revoked else i for i in self.issued]
        self._save(key, now)
        return [i for i in self.issued if i.serial in revoked]

    def _unrevoked(self, name: str, serial: str | None) -> list[Issued]:
        """The unrevoked certificates of `name` (or the one with `serial`); UsageError when there is none."""
        wanted = None if serial is None else serial.lower().removeprefix("0x")
        targets = [i for i in self.issued
                   if i.name == name and not i.revoked and (wanted is None or i.serial == wanted)]
        if not targets:
            which = f"serial {serial} of client {name!r}" if serial else f"client {name!r}"
            raise UsageError(f"{which}: no unrevoked certificate in {self.directory / INDEX} "
                             "(see `meshreg certs list`)")
        return targets

    def _save(self, key: CertificateIssuerPrivateKeyTypes, now: datetime.datetime) -> None:
        """Write a new CRL (next number, every revoked serial) and the index."""
        self.crl_number += 1
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - datetime.timedelta(minutes=5))
                   # Envoy (BoringSSL) fails every handshake once a CRL's nextUpdate has passed, and nothing
                   # here re-signs it on a schedule: it stays current as long as the CA itself.
                   .next_update(self.cert.not_valid_after_utc)
                   .add_extension(x509.CRLNumber(self.crl_number), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._public_key()),
                                  critical=False))
        for i in self.issued:
            if i.revoked:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(i.serial, 16))
                    .revocation_date(datetime.datetime.fromisoformat(i.revoked)).build())
        crl = builder.sign(key, hashes.SHA256())
        write_file(self.directory / CA_CRL, crl.public_bytes(serialization.Encoding.PEM))
        self._save_index()

    def _save_index(self) -> None:
        index = {"crlNumber": self.crl_number, "issued": [asdict(i) for i in self.issued]}
        write_file(self.directory / INDEX, (json.dumps(index, indent=2) + "\n").encode())

"""A throwaway mesh PKI: a CA and workload certificates whose identity is a SPIFFE URI SAN, as Istio issues them."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    """Files of one workload certificate; `dir` is laid out for skopeo's --*-cert-dir (ca.crt, client.cert/key)."""

    uri: str
    dir: Path

    @property
    def cert(self) -> Path:
        return self.dir / "client.cert"

    @property
    def key(self) -> Path:
        return self.dir / "client.key"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Authority:
    """A self-signed CA that issues SPIFFE workload certificates into `root`."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        root.mkdir(parents=True, exist_ok=True)
        self.ca_file = root / f"{name}-ca.crt"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._workloads: dict[str, Identity] = {}

    def workload(self, trust_domain: str, ns_sa: str) -> Identity:
        """The workload certificate of `NS/SA` in `trust_domain`: issued on first use, the same files afterwards."""
        uri = spiffe(trust_domain, ns_sa)
        if uri not in self._workloads:
            self._workloads[uri] = self.issue(uri, label=ns_sa.replace("/", "."))
        return self._workloads[uri]

    def issue(self, uri: str, *, label: str, server: bool = False, trust: Path | None = None,
              dns: tuple[str, ...] = ()) -> Identity:
        """A leaf for `uri`; `server` adds 127.0.0.1/localhost so plain TLS clients can verify the listener too,
        `dns` more DNS names (a server outside the mesh, known by its host name).

        `trust` is the CA the holder uses to verify the server (the mesh CA even for a foreign client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list = [x509.UniformResourceIdentifier(uri), *(x509.DNSName(name) for name in dns)]
        if server:
            sans += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
                .add_extension(x509.SubjectAlternativeName(sans), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        ident = Identity(uri=uri, dir=self.root / label)
        ident.dir.mkdir(parents=True, exist_ok=True)
        ident.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ident.key.write_bytes(_pem_key(key))
        ident.ca.write_bytes((trust or self.ca_file).read_bytes())
        return ident


def spiffe(trust_domain: str, identity: str) -> str:
    """`builds/kaniko` -> `spiffe://<td>/ns/builds/sa/kaniko`."""
    ns, sa = identity.split("/")
    return f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}"

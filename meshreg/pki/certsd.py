"""Client certificates in docker's `certs.d/<host>/` layout, which docker, containerd (hosts.toml `client`) and
`skopeo --dest-cert-dir` read unchanged: `client.cert`, `client.key`, and optionally `ca.crt`.

`ca.crt` there is the CA that signed the registry's *server* certificate (the gateway's credentialName Secret),
which clients use to verify the server. It is not the client CA that signed `client.cert`: meshreg writes it
only when given the server's CA, and otherwise leaves it out so clients use the system's trusted roots.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from meshreg.errors import UsageError
from meshreg.pki.authority import write_file

CERT, KEY, SERVER_CA = "client.cert", "client.key", "ca.crt"


def directory(root: str | os.PathLike[str], address: str) -> Path:
    return Path(root) / address


def check_free(root: str | os.PathLike[str], address: str, *, force: bool, spent: Callable[[str], bool]) -> None:
    """Refuse (before anything is written) to overwrite a client certificate there, unless `force` or the
    certificate there is spent (`spent(serial)`: revoked or expired), which is what rotation replaces."""
    cert = directory(root, address) / CERT
    there = [p for p in (cert, directory(root, address) / KEY) if p.exists()]
    if not there or force:
        return
    try:
        serial = f"{x509.load_pem_x509_certificate(cert.read_bytes()).serial_number:x}"
    except (OSError, ValueError):
        serial = None
    if serial is None or not spent(serial):
        raise UsageError(f"{there[0]} already exists (--force overwrites it)")


def read_server_ca(path: str) -> bytes:
    """The server's CA bundle (PEM), checked to hold certificates."""
    try:
        data = Path(path).read_bytes()
        x509.load_pem_x509_certificates(data)
    except OSError as e:
        raise UsageError(f"--server-ca: cannot read {path}: {e.strerror}") from e
    except ValueError as e:
        raise UsageError(f"--server-ca: {path} is not a PEM certificate bundle") from e
    return data


def write(root: str | os.PathLike[str], address: str, *, cert: bytes, key: bytes,
          server_ca: bytes | None) -> list[Path]:
    """Write the files (the key 0600, the directory 0700); the paths written."""
    out = directory(root, address)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_file(out / KEY, key, private=True)
    write_file(out / CERT, cert)
    written = [out / CERT, out / KEY]
    if server_ca is not None:
        write_file(out / SERVER_CA, server_ca)
        written.append(out / SERVER_CA)
    return written

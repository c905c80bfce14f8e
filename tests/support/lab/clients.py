"""Real clients for the lab: httpx with a workload certificate, raw requests, and skopeo."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx

from .images import MANIFEST
from .pki import Identity


def manifest_digest(registry: str, repo: str, ref: str) -> str | None:
    """The digest the registry at `registry` holds for repo:ref, asked directly over plain HTTP (no Envoy)."""
    r = httpx.get(f"http://{registry}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST})
    return r.headers["docker-content-digest"] if r.status_code == 200 else None


def tls_context(ident: Identity | None, *, ca: Path) -> ssl.SSLContext:
    """Verifies the server against `ca`; presents `ident`'s certificate when given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if ident is not None:
        ctx.load_cert_chain(str(ident.cert), str(ident.key))
    return ctx


def mtls_client(address: str, ident: Identity | None, *, ca: Path) -> httpx.Client:
    return httpx.Client(base_url=f"https://{address}", verify=tls_context(ident, ca=ca), timeout=30.0)


def raw_request(client: httpx.Client, method: str, raw_path: str, **kwargs) -> httpx.Response:
    """Send `raw_path` exactly as written (httpx would otherwise resolve `..` itself)."""
    url = client.base_url.copy_with(raw_path=raw_path.encode())
    return client.send(client.build_request(method, url, **kwargs))


def skopeo_copy(src: str, dest: str, *, src_ident: Identity | None = None, dest_ident: Identity | None = None,
                src_creds: str | None = None, dest_creds: str | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`skopeo copy`; docker:// ends with an Identity speak (m)TLS, others plain HTTP; creds are USER:PASSWORD."""
    argv = ["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--retry-times", "0"]
    for side, ident, ref, creds in (("src", src_ident, src, src_creds), ("dest", dest_ident, dest, dest_creds)):
        if not ref.startswith("docker://"):
            continue
        argv += [f"--{side}-cert-dir", str(ident.dir), f"--{side}-tls-verify=true"] if ident else \
            [f"--{side}-tls-verify=false"]
        argv += [f"--{side}-creds", creds] if creds else []
    return subprocess.run([*argv, src, dest], capture_output=True, text=True, timeout=timeout)

"""The ingress lab: its config (certificate and token clients), tokens signed here, and raw requests through the
ingress, each with what Istio's semantics say must happen."""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import httpx

from support.lab.clients import manifest_digest, raw_request

ISSUER = "https://issuer.lab.example"
AUDIENCE = "registry.lab.example"
GITHUB_SUB = "repo:acme/app:ref:refs/heads/main"
ZERO = "sha256:" + "0" * 64
UPLOADS = "blobs/uploads/"


@functools.cache
def key(kid: str = "lab-1"):
    """The issuer's signing key (one per session and kid)."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256", parameters={"kid": kid})


def config_text(*, dedicated: bool = False, tokens: bool = True) -> str:
    """The shared-gateway config (DENY rules only), or with `dedicated` the one that adds the ALLOW policy;
    without `tokens`, only the certificate clients (a MUTUAL Gateway server)."""
    jwks = json.dumps({"keys": [key().as_dict(private=False)]})
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: ing}}
spec:
  namespace: registry
  trustDomain: lab.example
  registry: {{deleteEnabled: true}}
  writers:
    - serviceAccount: builds/kaniko
      repositories: [builds/]
  ingress:
    host: localhost
    credentialName: registry-tls
    gateway: {{dedicated: {str(dedicated).lower()}}}
    issuers:
      - issuer: {ISSUER}
        audiences: [{AUDIENCE}]
        jwks: '{jwks}'
    clients:
      - name: loader
        method: mtls
        repositories: [images/]
        delete: true
      - name: rotated
        method: mtls
        repositories: [rotated/]
""" + (TOKEN_CLIENTS if tokens else "")


TOKEN_CLIENTS = """\
      - name: ci
        method: jwt
        subject: ci-bot
        repositories: [ci/]
      - name: gh
        method: jwt
        subject: "repo:acme/app:ref:refs/heads/*"
        claims: {repository_owner: acme}
        repositories: [acme/app/]
        readRepositories: [acme/]
"""


def token(sub: str = "ci-bot", *, iss: str = ISSUER, aud: str = AUDIENCE, lifetime: int = 600,
          signer=None, **claims) -> str:
    """A JWT signed with the issuer's key (or `signer`), valid for `lifetime` seconds (negative: expired)."""
    from joserfc import jwt

    now = int(time.time())
    payload = {"iss": iss, "sub": sub, "aud": aud, "iat": now - 60, "exp": now + lifetime, **claims}
    return jwt.encode({"alg": "ES256", "kid": "lab-1"}, payload, signer or key())


def unsigned(sub: str = "ci-bot") -> str:
    """A token with `alg: none` and no signature, claiming to be the ci client."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return part({"alg": "none", "typ": "JWT"}) + "." + part(
        {"iss": ISSUER, "sub": sub, "aud": AUDIENCE, "exp": now + 600}) + "."


def github() -> str:
    return token(GITHUB_SUB, repository_owner="acme")


@dataclass(frozen=True)
class IngressCase:
    """`who`: cert:NAME (its certificate from `meshreg certs issue`), token:NAME (a valid token of that client), or
    none. `denied`: True must be 403, False must not be, None either. `outside`: a repository that must not exist
    afterwards. `status`: the exact answer where it matters (the 401 token challenge)."""

    name: str
    who: str
    method: str
    path: str
    denied: bool | None
    outside: str | None = None
    status: int | None = None

    @property
    def identity(self) -> str:
        """The same caller for `meshreg policy check --as`."""
        return "external" if self.who == "none" else "client:" + self.who.split(":", 1)[1]


def _case(who, name, path, denied=True, outside=None, method="POST", status=None):
    return IngressCase(f"{who} {name}", who, method, path, denied, outside, status)


CASES = [
    _case("cert:loader", "opens an upload in its prefix", f"/v2/images/app/{UPLOADS}", denied=False),
    _case("cert:loader", "opens an upload in another prefix", f"/v2/ci/by-loader/{UPLOADS}", outside="ci/by-loader"),
    _case("cert:loader", "opens an upload in a longer prefix", f"/v2/imagesx/app/{UPLOADS}", outside="imagesx/app"),
    _case("cert:loader", "hides a slash as %2F", f"/v2/ci%2Fby-loader/{UPLOADS}", outside="ci/by-loader"),
    _case("cert:loader", "climbs out with ..", f"/v2/images/../ci/by-loader/{UPLOADS}", outside="ci/by-loader"),
    _case("cert:loader", "climbs out with %2e%2e", f"/v2/images/%2e%2e/ci/by-loader/{UPLOADS}", outside="ci/by-loader"),
    _case("cert:loader", "climbs out with a backslash", f"/v2/images/..\\ci/by-loader/{UPLOADS}",
          outside="ci/by-loader"),
    _case("cert:loader", "climbs out with ..%2F after its prefix", f"/v2/images/..%2Fci%2Fby-loader/{UPLOADS}",
          denied=None, outside="ci/by-loader"),  # Envoy lets it pass; the registry redirects, never serves it
    _case("cert:loader", "mounts into another prefix", f"/v2/ci/by-loader/{UPLOADS}?mount={ZERO}&from=images/app",
          outside="ci/by-loader"),
    _case("cert:loader", "deletes in its prefix with the grant", f"/v2/images/app/manifests/{ZERO}", denied=False,
          method="DELETE"),
    _case("cert:loader", "reads another prefix", "/v2/ci/app/manifests/latest", method="GET"),
    _case("cert:loader", "lists every repository", "/v2/_catalog", method="GET"),
    _case("cert:loader", "pings the registry", "/v2/", denied=False, method="GET", status=200),
    _case("cert:rotated", "deletes without the grant", f"/v2/rotated/app/manifests/{ZERO}", method="DELETE"),
    _case("cert:rotated", "uses another method", "/v2/rotated/app/manifests/latest", method="OPTIONS"),
    _case("token:ci", "opens an upload in its prefix", f"/v2/ci/app/{UPLOADS}", denied=False),
    _case("token:ci", "pings the registry", "/v2/", denied=False, method="GET", status=200),
    _case("token:ci", "opens an upload in another prefix", f"/v2/images/by-ci/{UPLOADS}", outside="images/by-ci"),
    _case("token:ci", "hides a slash as %2F", f"/v2/images%2Fby-ci/{UPLOADS}", outside="images/by-ci"),
    _case("token:ci", "climbs out with %2E%2E", f"/v2/ci/%2E%2E/images/by-ci/{UPLOADS}", outside="images/by-ci"),
    _case("token:gh", "puts a manifest in its prefix", "/v2/acme/app/manifests/v1", denied=False, method="PUT"),
    _case("token:gh", "puts a manifest next to it", "/v2/acme/lib/manifests/v1", outside="acme/lib", method="PUT"),
    _case("token:gh", "reads next to it", "/v2/acme/lib/manifests/v1", denied=False, method="GET"),
    _case("token:gh", "reads outside its read prefixes", "/v2/images/app/manifests/v1", method="GET"),
    _case("token:gh", "mounts from outside its read prefixes", f"/v2/acme/app/m/{UPLOADS}?mount={ZERO}&from=ci/app",
          outside="acme/app/m", status=401),
    _case("token:gh", "mounts with an escaped name", f"/v2/acme/app/m/{UPLOADS}?m%6Funt={ZERO}&from=ci/app",
          outside="acme/app/m", status=401),
    _case("cert:loader", "mounts within its prefix", f"/v2/images/m/{UPLOADS}?mount={ZERO}&from=images/app",
          outside="images/m", status=401),
    _case("token:ci", "puts its token in the query string too", f"/v2/ci/app/{UPLOADS}?access_token=x", status=400),
    _case("none", "pings with a token in the query string", "/v2/?access_token=x", method="GET", status=400),
    _case("none", "pings the registry and gets the token challenge", "/v2/", denied=False, method="GET", status=401),
    _case("none", "posts to the ping", "/v2/", method="POST"),
    _case("none", "opens an upload", f"/v2/images/anonymous/{UPLOADS}", outside="images/anonymous"),
]


def refused_at_gateway(response: httpx.Response) -> bool:
    """Whether the gateway refused the request: a policy (403), or one of its routes answering a refusal itself (a
    mount: 401, a token in the query: 400, each an abort fault of the route). The token challenge (401 with
    WWW-Authenticate) is not a refusal."""
    if response.status_code == 403:
        return True
    return response.status_code in (400, 401) and response.text == "fault filter abort"


def client(lab, who: str) -> httpx.Client:
    """An HTTPS client to the ingress that trusts the server's CA and presents `who`'s credentials."""
    ctx = ssl.create_default_context(cafile=str(lab.public.ca_file))
    headers = {}
    kind, _, name = who.partition(":")
    if kind == "cert":
        certs = lab.certs[name]
        ctx.load_cert_chain(str(certs / "client.cert"), str(certs / "client.key"))
    elif kind == "token":
        headers["Authorization"] = f"Bearer {github() if name == 'gh' else token()}"
    elif who.startswith("bearer "):
        headers["Authorization"] = "Bearer " + who[len("bearer "):]
    return httpx.Client(base_url=f"https://{lab.ingress}", verify=ctx, headers=headers, timeout=30.0)


def send(lab, case: IngressCase) -> httpx.Response:
    with client(lab, case.who) as c:
        return raw_request(c, case.method, case.path)


def push(lab, image, repo: str, *, cert_dir=None, bearer: str | None = None) -> subprocess.CompletedProcess:
    """skopeo copy to the ingress, verifying the server with its CA, with a client certificate and/or a token."""
    argv = ["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--retry-times", "0",
            "--dest-tls-verify=true", "--dest-cert-dir", str(cert_dir or lab.server_ca_dir)]
    if bearer:
        argv += ["--dest-registry-token", bearer]
    return subprocess.run([*argv, image.ref, f"docker://{lab.ingress}/{repo}:v1"], capture_output=True, text=True,
                          timeout=120)


def pushed(lab, image, repo, **how) -> None:
    result = push(lab, image, repo, **how)
    assert result.returncode == 0, result.stderr
    assert manifest_digest(lab.direct, repo, "v1") == image.digest


def refused(lab, image, repo, status: int, **how) -> str:
    result = push(lab, image, repo, **how)
    assert result.returncode != 0 and repo not in lab.repositories()
    if status:
        assert re.search(rf"(StatusCode: |\b){status}\b", result.stderr), result.stderr
    return result.stderr


def handshake_alert(lab, cert_dir) -> str:
    """The TLS alert the gateway ends the handshake with when the certificate in `cert_dir` is presented, or "".

    TLS 1.2, so the server's verdict on the client certificate arrives within the handshake (with TLS 1.3 it comes
    after, and a client may see a reset instead). The certificate is presented whatever CA names the server asks
    for: Go clients such as skopeo send only one the server's list of acceptable CAs names, or none."""
    ctx = ssl.create_default_context(cafile=str(lab.public.ca_file))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_dir / "client.cert"), str(cert_dir / "client.key"))
    host, port = lab.ingress.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=host):
                return ""
        except ssl.SSLError as e:
            return e.reason or str(e)

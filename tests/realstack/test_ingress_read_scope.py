"""The ingress on the real stack: a real istiod configures a real Istio gateway (Istio's gateway injection) from what
`meshreg up` applies, in front of the registry it deployed. A client of the ingress reads only its read prefixes,
whatever it sends: the cross-repository mount, in every spelling distribution accepts, is refused by the ingress
route, and skopeo uploads instead.

The lab's Istio 1.14 sets what this needs apart from the supported versions in two ways:
- a certificate client only (a MUTUAL server): 1.14 has no OPTIONAL_MUTUAL (1.19+), and its istiod cannot decode a
  Gateway naming it, which stops its watch of every Gateway;
- tokens: with a RequestAuthentication istiod 1.14 adds the `istio_authn` filter, which only istio-proxy has (the lab
  runs a stock Envoy, which refuses the listener); so the test checks what istiod generates for `fromHeaders`, and
  enforcement is checked on the translated gateway (tests/e2e/test_ingress_read_scope.py).
Istio 1.23.0 to 1.24.3 refuse the VirtualService header match on `:path` (their validation allowed only
`[-_A-Za-z0-9]` in header names; 1.22 and 1.24.4+ allow it, pkg/config/validation/validation.go), which `meshreg
doctor` reports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
import subprocess
import time
from urllib.parse import urlsplit

import httpx
import pytest

from support import mesh_ingress as mi
from support import wire
from support.lab.clients import raw_request
from support.mesh_target import MeshCA

ISSUER = "https://issuer.pe.example"
SECRET = b"a layer of builds/secret that no ingress client may read " + str(time.time()).encode()
DIGEST = "sha256:" + hashlib.sha256(SECRET).hexdigest()
MOUNTS = [f"mount={DIGEST}&from=builds/secret", f"m%6Funt={DIGEST}&from=builds%2Fsecret",
          f"%6D%6F%75%6E%74={DIGEST}&%66rom=builds/secret", f"x=1&&mount={DIGEST}&from=builds/secret&y=/uploads/"]
FORMS = ["application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded; charset=utf-8"]


class Ingress:
    def __init__(self, stack, root):
        self.stack, self.root = stack, root
        self.workdir = root / "work"
        self.workdir.mkdir()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        stack = self.stack
        cert, key, self.server_ca = mi.server_certificate(self.root)
        (self.workdir / "meshreg.yaml").write_text(mi.config_text())
        stack.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                            "items": mi.gateway_objects(cert, key)}))
        stack.kubectl("apply", "-f", "-", stdin=json.dumps(mi.persistent_volume(stack)))
        mi.meshreg(stack, self.workdir, "certs", "init")
        mi.meshreg(stack, self.workdir, "certs", "issue", "loader", "--server-ca", str(self.server_ca / "ca.crt"))
        self.loader = self.workdir / "ingress-ca" / "clients" / "loader" / f"{mi.HOST}:{mi.GATEWAY_PORT}"
        stack.kubectl("-n", mi.GATEWAY_NS, "rollout", "status", "deploy/pe-ingress", "--timeout=180s")
        mi.meshreg(stack, self.workdir, "up", "--timeout", "240")
        self._wait_for_routes()
        self.proxy = mi.ConnectProxy((mi.gateway_pod(stack)["status"]["podIP"], mi.GATEWAY_PORT))
        self.ca = MeshCA(stack, self.root / "mesh-certs")

    def _wait_for_routes(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while "refuse-mount" not in json.dumps(mi.gateway_config(self.stack)):
            assert time.monotonic() < deadline, "istiod never pushed the ingress routes to the gateway"
            time.sleep(0.5)

    def client(self) -> httpx.Client:
        """The loader client: its certificate from `meshreg certs issue`, the server's CA."""
        ctx = ssl.create_default_context(cafile=str(self.server_ca / "ca.crt"))
        ctx.load_cert_chain(str(self.loader / "client.cert"), str(self.loader / "client.key"))
        return httpx.Client(base_url=f"https://{mi.HOST}:{mi.GATEWAY_PORT}", verify=ctx, timeout=30,
                            proxy=self.proxy.url, trust_env=False)

    def registry_ip(self) -> str:
        pods = json.loads(self.stack.kubectl("-n", mi.REGISTRY_NS, "get", "pods", "-o", "json").stdout)["items"]
        return next(p["status"]["podIP"] for p in pods if p["metadata"]["labels"].get("meshreg.dev/registry"))

    def linked(self, repo: str, digest: str) -> bool:
        base = self.stack.lab_istio / "mesh" / "pv" / "pe-reg-data" / "docker/registry/v2/repositories"
        return (base / repo / "_layers" / digest.replace(":", "/") / "link").exists()

    def close(self) -> None:
        if hasattr(self, "proxy"):
            self.proxy.close()
        subprocess.run([*mi.MESHREG, "down", "--purge", "--yes"], cwd=self.workdir, env=self.stack.env(),
                       capture_output=True, timeout=300)
        for args in (("delete", "namespace", mi.GATEWAY_NS, mi.REGISTRY_NS, "--ignore-not-found", "--timeout=120s"),
                     ("delete", "pv", "pe-reg-data", "--ignore-not-found")):
            self.stack.kubectl(*args, check=False)
        shutil.rmtree(self.stack.lab_istio / "mesh" / "pv" / "pe-reg-data", ignore_errors=True)


@pytest.fixture(scope="module")
def ingress(stack, tmp_path_factory):
    if shutil.which("skopeo") is None:
        pytest.skip("needs skopeo: apt-get install skopeo")
    found = Ingress(stack, tmp_path_factory.mktemp("pe-ingress"))  # deletes what it made, also if it fails
    yield found
    found.close()


@pytest.fixture(scope="module")
def secret(ingress):
    """The secret blob, pushed into builds/secret by the in-mesh writer through the registry's real sidecar."""
    cert, key = ingress.ca.issue(f"spiffe://cluster.local/ns/{mi.WRITER.replace('/', '/sa/')}")
    conn = wire.Connection((ingress.registry_ip(), 5000), wire.client_context(cert=cert, key=key))
    start = conn.request("POST", "/v2/builds/secret/blobs/uploads/")
    assert start.status == 202, start
    location = urlsplit(start.headers["location"])
    done = conn.request("PUT", f"{location.path}?{location.query}&digest={DIGEST}", body=SECRET,
                        headers={"content-type": "application/octet-stream"})
    assert done.status == 201, done
    conn.close()
    return DIGEST


def _readable(ingress, repo: str) -> bool:
    with ingress.client() as c:
        return any(raw_request(c, m, f"/v2/{repo}/blobs/{DIGEST}").status_code == 200 for m in ("HEAD", "GET"))


def test_istiod_configures_the_gateway_as_meshreg_renders_it(ingress):
    config = json.dumps(mi.gateway_config(ingress.stack))
    assert '"forward_client_cert_details": "SANITIZE_SET"' in config  # Istio's default for gateways
    assert "refuse-mount" in config and '"name": ":path"' in config and "multipart/form-data" in config


def test_no_mount_reads_past_the_read_prefixes(ingress, secret):
    repo = "images/mounted"
    with ingress.client() as c:
        assert c.get("/v2/").status_code == 200  # the client's certificate passes; it reads images/ only
        for query in MOUNTS:
            response = raw_request(c, "POST", f"/v2/{repo}/blobs/uploads/?{query}")
            assert response.status_code == 401 and "www-authenticate" not in response.headers, (query, response.text)
            assert response.text == "fault filter abort"  # the refusal route, not the registry
        for content_type in FORMS:
            response = raw_request(c, "POST", f"/v2/{repo}/blobs/uploads/", headers={"content-type": content_type},
                                   content=f"mount={secret}&from=builds/secret".encode())
            assert response.status_code == 401, (content_type, response.text)
        fields = {"mount": (None, secret), "from": (None, "builds/secret")}
        response = c.post(f"/v2/{repo}/blobs/uploads/", files=fields)
        assert response.status_code == 401, response.text
    assert not ingress.linked(repo, secret)
    assert not _readable(ingress, repo) and not _readable(ingress, "builds/secret")


def test_skopeo_uploads_what_it_may_not_mount(ingress, tmp_path):
    from support.lab import images

    image = images.build(tmp_path / "layout", layer_sizes=(1024,))
    argv = ["skopeo", "--debug", "--insecure-policy", "copy", "--retry-times", "0", "--dest-tls-verify=true",
            "--dest-cert-dir", str(ingress.loader), image.ref]
    for repo in ("images/base", "images/copy"):
        result = subprocess.run([*argv, f"docker://{mi.HOST}:{mi.GATEWAY_PORT}/{repo}:v1"], capture_output=True,
                                text=True, timeout=180, env={**ingress.stack.env(), "HTTPS_PROXY": ingress.proxy.url,
                                                             "NO_PROXY": ""})
        assert result.returncode == 0, result.stderr[-3000:]
    assert "Trying to mount" in result.stderr and "Mount failed" in result.stderr, result.stderr[-3000:]


def test_istiod_takes_tokens_from_the_authorization_header_only(ingress, tmp_path):
    """The RequestAuthentication meshreg renders for a token client: istiod turns `fromHeaders` into a JWT provider
    that reads only `Authorization: Bearer` (no `?access_token=`). Checked in istiod's own view of the gateway: the
    lab's stock Envoy refuses 1.14's listener with a RequestAuthentication (istio_authn)."""
    jwks = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                 "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})
    config = tmp_path / "jwt.yaml"
    config.write_text(mi.config_text(jwks=jwks, issuer=ISSUER))
    rendered = mi.meshreg(ingress.stack, tmp_path, "render", "-c", str(config)).stdout
    import yaml

    [authn] = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "RequestAuthentication"]
    ingress.stack.kubectl("apply", "-f", "-", stdin=json.dumps(authn))
    try:
        deadline = time.monotonic() + 60
        while '"fromHeaders"' not in (view := mi.istiod_view(ingress.stack)):
            assert time.monotonic() < deadline, "istiod never built a JWT provider for the gateway"
            time.sleep(0.5)
    finally:
        ingress.stack.kubectl("-n", mi.GATEWAY_NS, "delete", "requestauthentication", authn["metadata"]["name"])
    [provider] = [p for p in _found(json.loads(view), "providers") for p in p.values()]
    assert provider["fromHeaders"] == [{"name": "Authorization", "valuePrefix": "Bearer "}]
    assert "fromParams" not in provider and provider["issuer"] == ISSUER


def _found(value, key: str) -> list:
    """Every value under `key` anywhere in a JSON document."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == key] + [x for v in value.values() for x in _found(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in _found(v, key)]
    return []

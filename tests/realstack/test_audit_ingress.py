"""The ingress's audit trail on the real stack: a dedicated ingress gateway (an injected gateway Deployment, programmed
by the real istiod from the rendered Gateway, policies and Telemetry) logs the pushes of a client certificate issued by
`meshreg certs`; `meshreg audit` names the client, folds the registry sidecar's copy of each write (it only sees the
gateway), and names the gateway's policy for a refusal.

Names and ports of this module: namespaces `au-ing` and `au-gw`, node proxy 5302, gateway port 5343. Only
certificate clients here: the real stack runs Istio 1.14, whose jwt_authn keeps a token's payload under its issuer,
not under `payload` as Istio 1.21 and later do (tokens are covered on real Envoy in tests/e2e/test_audit.py)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.lab import images
from support.lab.pki import Authority
from support.realstack_audit import DATA, audit_provider, meshreg, volume

HOST, PORT = "registry.au.example", 5343
GATEWAY_NS, LABELS = "au-gw", {"istio": "au-ingress"}
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: au-ing}}
spec:
  namespace: au-ing
  nodeProxy: {{port: 5302}}
  localRegistryHosting: {{publish: false}}
  ingress:
    host: {HOST}
    credentialName: au-ingress-tls
    gateway: {{namespace: {GATEWAY_NS}, selector: {{istio: au-ingress}}, serviceAccount: au-gateway, port: {PORT},
              dedicated: true}}
    clients:
      - {{name: loader, method: mtls, repositories: [images/]}}
"""


def gateway_objects(server: Any) -> list[dict]:
    """A dedicated ingress gateway as the istio/gateway chart deploys one: its ServiceAccount (allowed to read the
    namespace's Secrets, which istiod 1.14 checks before it serves a credentialName), the server certificate, an
    injected Deployment (image auto) and its Service."""
    ns = GATEWAY_NS
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "au-gateway", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "au-gateway-sds",
                                                                                    "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "au-gateway-sds", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "au-gateway-sds"},
         "subjects": [{"kind": "ServiceAccount", "name": "au-gateway"}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "au-ingress-tls", "namespace": ns},
         "stringData": {"tls.crt": Path(server.cert).read_text(), "tls.key": Path(server.key).read_text()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "au-gateway", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": LABELS},
                  "template": {"metadata": {"labels": {**LABELS, "sidecar.istio.io/inject": "true"},
                                            "annotations": {"inject.istio.io/templates": "gateway"}},
                               "spec": {"serviceAccountName": "au-gateway", "containers": [
                                   {"name": "istio-proxy", "image": "auto", "imagePullPolicy": "IfNotPresent"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "au-gateway", "namespace": ns},
         "spec": {"selector": LABELS, "ports": [{"name": "https", "port": PORT, "targetPort": PORT}]}},
    ]


def _listening(address: str, context: ssl.SSLContext, timeout: float = 90) -> None:
    """istiod programs the gateway for the new Gateway server moments after `up`: wait for a TLS handshake."""
    deadline = time.monotonic() + timeout
    host, port = address.rsplit(":", 1)
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=3) as raw, \
                    context.wrap_socket(raw, server_hostname=HOST):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The provider in the mesh config, the gateway, meshreg's CA and a client certificate, `meshreg up`; all
    removed afterwards."""
    work = tmp_path_factory.mktemp("audit-ingress")
    (work / "meshreg.yaml").write_text(CONFIG)
    server = Authority(work / "server", "au-server").issue(f"spiffe://{HOST}/server", label="server", server=True,
                                                           dns=(HOST,))
    with audit_provider(stack):
        try:
            stack.apply(volume(stack, "au-ing-registry-data", "au-ing", "registry-data"), *gateway_objects(server))
            stack.kubectl("-n", GATEWAY_NS, "rollout", "status", "deployment/au-gateway", "--timeout=120s")
            meshreg("certs", "init", stack=stack, cwd=work)
            meshreg("certs", "issue", "loader", "--server-ca", str(server.ca), "--output-dir", str(work / "certs.d"),
                    stack=stack, cwd=work)
            meshreg("up", "--timeout", "180", stack=stack, cwd=work)
            [pod] = json.loads(stack.kubectl("-n", GATEWAY_NS, "get", "pods", "-l", "istio=au-ingress", "-o",
                                             "json").stdout)["items"]
            found = {"work": work, "address": f"{pod['status']['podIP']}:{PORT}",
                     "certs": work / "certs.d" / f"{HOST}:{PORT}"}
            _listening(found["address"], _context(found["certs"]))
            _routed(found)
            yield found
        finally:
            meshreg("down", "--purge", "--yes", stack=stack, cwd=work, check=False)
            stack.kubectl("delete", "namespace", GATEWAY_NS, "--ignore-not-found", "--wait=false", check=False)
            stack.kubectl("delete", "persistentvolume", "au-ing-registry-data", "--ignore-not-found", check=False)
            shutil.rmtree(DATA / "au-ing-registry-data", ignore_errors=True)


def _routed(gateway: dict[str, Any], timeout: float = 90) -> None:
    """The gateway's route to the registry is programmed too: `GET /v2/` stops answering 503 (no healthy upstream yet:
    seen right after another module changed the mesh config, which makes istiod push everything again)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"https://{gateway['address']}", verify=_context(gateway["certs"]), timeout=10,
                      headers={"Host": f"{HOST}:{PORT}"}) as c:
        while (status := c.get("/v2/", extensions={"sni_hostname": HOST}).status_code) == 503:
            if time.monotonic() > deadline:
                raise AssertionError(f"the ingress gateway still answers {status} for /v2/ after {timeout:.0f}s")
            time.sleep(2)


def _context(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "client.cert"), str(certs / "client.key"))
    return context


def push(gateway: dict[str, Any], repository: str, image: images.Image) -> tuple[int, str | None]:
    """A push as a registry client makes it, with loader's certificate, to the gateway pod by address with the
    ingress host in SNI and Host: (the manifest PUT's status, or the first refused one; Docker-Content-Digest)."""
    extensions = {"sni_hostname": HOST}
    with httpx.Client(base_url=f"https://{gateway['address']}", verify=_context(gateway["certs"]), timeout=30,
                      headers={"Host": f"{HOST}:{PORT}"}) as c:
        manifest = json.loads(image.manifest)
        for desc in [manifest["config"], *manifest["layers"]]:
            data = (image.layout / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
            opened = c.post(f"/v2/{repository}/blobs/uploads/", extensions=extensions)
            if opened.status_code != 202:
                return opened.status_code, None
            where = opened.headers["location"]  # sent back as given: the registry signs its _state
            c.put(where + ("&" if "?" in where else "?") + "digest=" + desc["digest"], content=data,
                  extensions=extensions)
        put = c.put(f"/v2/{repository}/manifests/v1", content=image.manifest,
                    headers={"Content-Type": images.MANIFEST}, extensions=extensions)
        return put.status_code, put.headers.get("docker-content-digest")


@pytest.fixture(scope="module")
def pushed(gateway) -> dict[str, Any]:
    image = images.build(gateway["work"] / "image", layer_sizes=(2048,))
    done = {"image": image, "inside": push(gateway, "images/app", image), "outside": push(gateway, "ci/app", image)}
    time.sleep(2)  # the proxies flush their access logs every second
    return done


def audit(gateway: dict[str, Any], stack: Any) -> dict[str, Any]:
    return json.loads(meshreg("audit", "-o", "json", stack=stack, cwd=gateway["work"]).stdout)


def test_the_client_pushes_inside_its_prefix_and_is_refused_outside(pushed):
    assert pushed["inside"] == (201, pushed["image"].digest)
    assert pushed["outside"] == (403, None)


def test_the_gateways_record_names_the_client_and_the_sidecars_copy_is_folded(stack, gateway, pushed):
    data = audit(gateway, stack)
    pushes = [(e["who"]["name"], e["proxy"], e["repository"], e["tag"], e["digest"]) for e in data["events"]
              if e["action"] == "push"]
    assert pushes == [("client loader", "ingress gateway", "images/app", "v1", pushed["image"].digest)]
    assert not [e for e in data["events"] if e["who"]["kind"] == "ingress-gateway"]
    assert [s["proxy"] for s in data["sources"]] == ["registry sidecar", "ingress gateway"]
    assert all(s["records"] for s in data["sources"]) and data["ok"]


def test_a_refusal_at_the_gateway_names_its_policy(stack, gateway, pushed):
    refused = [(e["who"]["name"], e["repository"], e["why"]) for e in audit(gateway, stack)["events"]
               if e["action"] == "refused"]
    assert refused and all(who == "client loader" and repo == "ci/app" and
                           why.startswith(f"{GATEWAY_NS}/meshreg-au-ing-ingress-deny rule ")
                           for who, repo, why in refused)

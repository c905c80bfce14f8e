"""An ingress on the real stack: a gateway-injected Istio gateway (namespace pe-gw) that a real istiod configures
from meshreg's rendered ingress objects, in front of a registry deployed with `meshreg up` (namespace pe-reg), and
an HTTP CONNECT proxy on this host's loopback that takes every tunnel to the gateway pod, so that clients (skopeo
included, through HTTPS_PROXY) reach the ingress host, which no resolver here knows, by its name."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.realstack import Stack

GATEWAY_NS, REGISTRY_NS = "pe-gw", "pe-reg"
SELECTOR = {"istio": "pe-ingress"}
GATEWAY_SA = "pe-ingress"
GATEWAY_PORT = 8443
LOCAL_PORT = 5450  # the CONNECT proxy, in issue 23's range of this host's ports
HOST = "registry.pe.example"  # with a dot: Istio reads a VirtualService host without one as a short Service name
WRITER = "pe-builds/writer"
MESHREG = [sys.executable, "-m", "meshreg"]


def config_text(*, jwks: str | None = None, issuer: str = "") -> str:
    """A certificate client (a MUTUAL Gateway server), or with `jwks` a token client (SIMPLE) instead: Istio 1.14
    does not know OPTIONAL_MUTUAL (1.19+) for both on one host, and its istiod cannot even decode a Gateway that
    names it, which stops its watch of every Gateway in the cluster."""
    client = "{name: loader, method: mtls, repositories: [images/]}" if jwks is None else \
        "{name: gh, method: jwt, subject: ci-bot, repositories: [acme/app/], readRepositories: [acme/]}"
    issuers = "" if jwks is None else f"""\
    issuers:
      - issuer: {issuer}
        audiences: [{HOST}]
        jwks: '{jwks}'
"""
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: pe-reg}}
spec:
  namespace: {REGISTRY_NS}
  nodeProxy: {{enabled: false}}
  localRegistryHosting: {{publish: false}}
  registry: {{storage: {{size: 1Gi}}}}
  writers:
    - serviceAccount: {WRITER}
      repositories: [builds/]
  ingress:
    host: {HOST}
    credentialName: pe-registry-tls
    gateway: {{namespace: {GATEWAY_NS}, selector: {json.dumps(SELECTOR)}, serviceAccount: {GATEWAY_SA},
              port: {GATEWAY_PORT}}}
{issuers}    clients:
      - {client}
"""


def server_certificate(root: Path) -> tuple[bytes, bytes, Path]:
    """(certificate PEM, key PEM, directory with ca.crt for skopeo) of a throwaway CA's certificate for HOST."""
    now, day = datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pe-public-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + day)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    server_ca = root / "server-ca"
    server_ca.mkdir(parents=True, exist_ok=True)
    (server_ca / "ca.crt").write_bytes(ca.public_bytes(pem))
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(pem), key_pem, server_ca


def gateway_objects(cert: bytes, key: bytes) -> list[dict]:
    """The gateway's namespace, ServiceAccount and its Role for Secrets, Deployment (Istio's gateway injection),
    Service and TLS Secret."""
    import base64

    labels = {**SELECTOR, "sidecar.istio.io/inject": "true"}
    meta = {"namespace": GATEWAY_NS}
    container = {"name": "istio-proxy", "image": "auto", "ports": [{"containerPort": GATEWAY_PORT}]}
    pod = {"metadata": {"labels": labels, "annotations": {"inject.istio.io/templates": "gateway"}},
           "spec": {"serviceAccountName": GATEWAY_SA, "containers": [container]}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": GATEWAY_SA, **meta}},
        # As Istio's gateway chart grants it: istiod serves a gateway the credentialName Secrets its SA may read.
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": GATEWAY_SA, **meta},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": GATEWAY_SA, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY_SA},
         "subjects": [{"kind": "ServiceAccount", "name": GATEWAY_SA, "namespace": GATEWAY_NS}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pe-ingress", **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": SELECTOR}, "template": pod}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pe-ingress", **meta},
         "spec": {"selector": SELECTOR, "ports": [{"name": "https", "port": GATEWAY_PORT,
                                                   "targetPort": GATEWAY_PORT}]}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pe-registry-tls", **meta},
         "type": "kubernetes.io/tls",
         "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}},
    ]


def persistent_volume(stack: Stack) -> dict:
    """A hostPath PV for the registry's claim, pinned to the claim and the node, owned by the registry's uid."""
    path = stack.lab_istio / "mesh" / "pv" / "pe-reg-data"
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 1000, 1000)
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pe-reg-data"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "claimRef": {"namespace": REGISTRY_NS, "name": "registry-data"},
                     "hostPath": {"path": str(path), "type": "Directory"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [stack.node]}]}]}}}}


def meshreg(stack: Stack, workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([*MESHREG, *args], cwd=workdir, env=stack.env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"meshreg {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1:LOCAL_PORT whose every tunnel leads to `target` (the gateway pod)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", LOCAL_PORT))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{LOCAL_PORT}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        if not head.startswith(b"CONNECT "):
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            conn.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


def gateway_pod(stack: Stack) -> dict:
    pods = json.loads(stack.kubectl("-n", GATEWAY_NS, "get", "pods", "-l", "istio=pe-ingress", "-o", "json").stdout)
    [pod] = [p for p in pods["items"] if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")]
    return pod


def istiod_view(stack: Stack) -> str:
    """What istiod computes for the gateway (its debug config dump), whether or not the gateway accepted it."""
    name = gateway_pod(stack)["metadata"]["name"]
    return urllib.request.urlopen(f"http://127.0.0.1:15014/debug/config_dump?proxyID={name}.{GATEWAY_NS}",
                                  timeout=30).read().decode()


def gateway_config(stack: Stack) -> dict:
    """The gateway's Envoy configuration (listeners and routes), from Envoy itself; {} while it cannot say."""
    out = stack.kubectl("-n", GATEWAY_NS, "exec", "deploy/pe-ingress", "-c", "istio-proxy", "--", "pilot-agent",
                        "request", "GET", "config_dump", check=False).stdout
    return json.loads(out[out.index("{"):]) if "{" in out else {}

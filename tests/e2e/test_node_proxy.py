"""The node proxy: plain HTTP from the node, read-only, mTLS with its own identity to the registry."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl

import httpx

from support.e2e_cases import WRITER
from support.lab.clients import manifest_digest, skopeo_copy


def _pushed(lab, image, repo: str) -> None:
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repo}", dest_ident=lab.identity(WRITER))
    assert result.returncode == 0, result.stderr


def test_a_pull_through_the_node_proxy_gets_the_pushed_image(lab, image, tmp_path):
    _pushed(lab, image, "builds/pulled:v1")
    result = skopeo_copy(f"docker://{lab.node_proxy}/builds/pulled:v1", f"oci:{tmp_path / 'out'}:v1")
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest


def test_a_push_through_the_node_proxy_is_refused(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.node_proxy}/builds/via-proxy:v1")
    assert result.returncode != 0
    assert "StatusCode: 403" in result.stderr, result.stderr
    assert "builds/via-proxy" not in lab.repositories()


def test_a_delete_through_the_node_proxy_is_refused_and_the_image_stays(lab, image):
    _pushed(lab, image, "builds/kept:v1")
    response = httpx.delete(f"http://{lab.node_proxy}/v2/builds/kept/manifests/{image.digest}")
    assert response.status_code == 403
    assert manifest_digest(lab.direct, "builds/kept", image.digest) == image.digest


def _client_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_node_proxy_answers_a_tls_client_hello_with_an_http_error(lab):
    # containerd >= 1.7.16 tries HTTPS on localhost first and falls back to HTTP only on an HTTP answer.
    host, port = lab.node_proxy.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(_client_hello())
        reply = sock.recv(1024)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:80]

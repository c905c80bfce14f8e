"""STRICT mTLS on the registry's sidecar: only certificates from the mesh CA and trust domain get a connection."""

from __future__ import annotations

import socket

import httpx
import pytest

from support.e2e_cases import WRITER
from support.lab.clients import mtls_client, skopeo_copy


def test_a_client_without_a_certificate_cannot_connect(lab):
    with mtls_client(lab.sidecar, None, ca=lab.ca.ca_file) as client, pytest.raises(httpx.TransportError):
        client.get("/v2/")


def test_a_writer_name_signed_by_another_ca_cannot_connect(lab):
    with mtls_client(lab.sidecar, lab.foreign_ca_identity(WRITER), ca=lab.ca.ca_file) as client, \
            pytest.raises(httpx.TransportError):
        client.get("/v2/")


def test_a_mesh_signed_certificate_from_another_trust_domain_cannot_connect(lab):
    with mtls_client(lab.sidecar, lab.foreign_domain_identity(WRITER), ca=lab.ca.ca_file) as client, \
            pytest.raises(httpx.TransportError):
        client.get("/v2/")


def test_a_writer_name_signed_by_another_ca_cannot_push(lab, image):
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/builds/forged:v1",
                         dest_ident=lab.foreign_ca_identity(WRITER))
    assert result.returncode != 0
    # The sidecar ends the handshake: skopeo reads its alert, or, where TLS 1.3 lets the client write before it
    # reads the alert, finds the connection gone (broken pipe, reset). Either way no HTTP answer came back.
    assert any(s in result.stderr for s in ("remote error: tls:", "broken pipe", "connection reset by peer")), \
        result.stderr
    assert "StatusCode" not in result.stderr and "status code" not in result.stderr
    assert "builds/forged" not in lab.repositories()


def test_plain_http_to_the_sidecar_gets_no_http_answer(lab):
    host, port = lab.sidecar.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/")

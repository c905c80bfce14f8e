"""`meshreg connect`'s forwarder with the real kubernetes client against a local API server speaking port-forward:
over SPDY (one session per pod, a pair of streams per connection) and, where SPDY does not get through, over a
WebSocket per connection."""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import threading
import time

import pytest

from meshreg.cluster import client as clusters
from meshreg.cluster import portforward, session
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


@pytest.fixture(params=["spdy", "websocket"])
def api(echo, request):
    server = KubeForward(echo)
    server.spdy = request.param == "spdy"
    server.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS)}
    yield server
    server.close()


@pytest.fixture
def spdy_api(echo):
    server = KubeForward(echo)
    server.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS)}
    yield server
    server.close()


def serving(api, tmp_path):
    cluster = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", api.url))
    said: list[str] = []
    fw = portforward.Forwarder(cluster=cluster, target=TARGET, listener=portforward.listen("127.0.0.1", 0),
                               say=said.append)
    fw.said = said
    fw.start()
    fw.thread = threading.Thread(target=fw.serve, daemon=True)
    fw.thread.start()
    return fw


def stopped(fw) -> None:
    fw.close()
    fw.thread.join(5)
    assert not fw.thread.is_alive()


@pytest.fixture
def forwarder(api, tmp_path):
    fw = serving(api, tmp_path)
    yield fw
    stopped(fw)


@pytest.fixture
def spdy_forwarder(spdy_api, tmp_path):
    fw = serving(spdy_api, tmp_path)
    yield fw
    stopped(fw)


def news(fw) -> list[str]:
    """What the forwarder said, other than that it forwards over WebSockets (where the fake does not pass SPDY)."""
    return [line for line in fw.said if "SPDY upgrade" not in line]


def settled(condition, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


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


def test_local_connections_reach_the_pod_port_through_one_spdy_session(spdy_api, spdy_forwarder):
    for _ in range(3):
        assert exchange(spdy_forwarder, b"GET /v2/ HTTP/1.1\r\n\r\n") == b"GET /v2/ HTTP/1.1\r\n\r\n"
    assert spdy_api.forwards == [f"{NS}/push-proxy-a"] * 3  # the pod dialled once per connection
    upgrades = [(m, p) for m, p in spdy_api.requests if "/portforward" in p]
    assert upgrades == [("POST", f"/api/v1/namespaces/{NS}/pods/push-proxy-a/portforward")]  # one session, at start
    assert spdy_forwarder.transport == "spdy"
    [served] = spdy_api.sessions
    assert [s["headers"] for s in served.streams.values()] == [
        {"streamtype": kind, "port": "5000", "requestid": str(i)} for i in range(3) for kind in ("error", "data")]


def test_a_server_that_does_not_switch_to_spdy_gets_a_websocket_per_connection(echo, tmp_path):
    api = KubeForward(echo)
    api.spdy = False
    api.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS)}
    fw = serving(api, tmp_path)
    try:
        assert exchange(fw, b"one") == b"one"
        assert exchange(fw, b"two") == b"two"
        upgrades = [(m, p) for m, p in api.requests if "/portforward" in p]
        assert upgrades == [("POST", f"/api/v1/namespaces/{NS}/pods/push-proxy-a/portforward")] + [
            ("GET", f"/api/v1/namespaces/{NS}/pods/push-proxy-a/portforward?ports=5000")] * 2
        assert fw.transport == "websocket"
        assert fw.said == [f"port-forward to pod {NS}/push-proxy-a: the server answered the SPDY upgrade with HTTP "
                           "400; forwarding each connection over its own WebSocket instead"]
    finally:
        stopped(fw)
        api.close()


def test_many_connections_at_once_share_one_session_and_arrive_intact(spdy_api, spdy_forwarder):
    payloads = [os.urandom(3 << 20) for _ in range(8)]  # more than the session buffers: its flow control acts
    results: list = [None] * 8

    def one(i: int) -> None:
        results[i] = exchange(spdy_forwarder, payloads[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [hashlib.sha256(r or b"").digest() for r in results] == [hashlib.sha256(p).digest() for p in payloads]
    assert len(spdy_api.sessions) == 1
    assert settled(lambda: spdy_api.open_streams() == 0)


def test_a_connection_is_not_read_until_its_streams_are_set_up_while_others_move_data(spdy_api, spdy_forwarder):
    big = os.urandom(16 << 20)
    moving = threading.Thread(target=lambda: spdy_forwarder.__dict__.setdefault("big", exchange(spdy_forwarder, big)))
    moving.start()
    assert settled(lambda: spdy_api.forwards)  # the big one's streams are set up, its data flows
    spdy_api.sessions[0].reply_delay = 0.5  # the next pair waits while the session's buffer fills and drains
    assert exchange(spdy_forwarder, b"GET /v2/ HTTP/1.1\r\n\r\n") == b"GET /v2/ HTTP/1.1\r\n\r\n"
    moving.join(60)
    assert hashlib.sha256(spdy_forwarder.big).digest() == hashlib.sha256(big).digest()


def test_every_stream_is_ended_with_the_server_when_its_connection_ends(spdy_api, spdy_forwarder):
    for i in range(5):
        assert exchange(spdy_forwarder, b"x" * (i + 1) * 1000) == b"x" * (i + 1) * 1000
    [served] = spdy_api.sessions
    assert settled(lambda: served.open_streams() == 0), served.streams
    assert len(served.streams) == 10 and served.alive


def test_a_client_that_leaves_mid_transfer_ends_its_streams_and_leaves_the_others(spdy_api, spdy_forwarder):
    with socket.create_connection(spdy_forwarder.listener.getsockname(), timeout=20) as leaving:
        leaving.sendall(os.urandom(4 << 20))  # echoed back and never read: the pod side backs up
        assert settled(lambda: spdy_api.forwards == [f"{NS}/push-proxy-a"])
    [served] = spdy_api.sessions
    assert settled(lambda: served.open_streams() == 0), served.streams
    assert served.received["rst"] >= 1
    assert exchange(spdy_forwarder, b"still here") == b"still here"


def test_a_dropped_session_costs_a_new_one_and_no_connection(spdy_api, spdy_forwarder):
    assert exchange(spdy_forwarder, b"one") == b"one"
    spdy_api.sessions[0].kill()  # the connection to the API server drops while idle
    assert exchange(spdy_forwarder, b"two") == b"two"
    assert len(spdy_api.sessions) == 2 and spdy_forwarder.said == []


def test_a_session_that_stops_answering_is_left_for_a_new_one(spdy_api, tmp_path, monkeypatch):
    monkeypatch.setattr(session, "REPLY_TIMEOUT", 0.5)
    spdy_api.spdy_options = {"reply": False}  # the session opened at start never answers a SYN_STREAM
    fw = serving(spdy_api, tmp_path)
    try:
        assert settled(lambda: len(spdy_api.sessions) == 1)
        spdy_api.spdy_options = {}
        assert exchange(fw, b"through") == b"through"
        silent, answering = spdy_api.sessions
        assert settled(lambda: not silent.alive)  # closed by meshreg
        assert settled(lambda: answering.open_streams() == 0)
        assert fw.said == []
    finally:
        stopped(fw)


def test_a_session_unused_for_a_while_is_closed(spdy_api, tmp_path, monkeypatch):
    monkeypatch.setattr(session, "IDLE_CLOSE", 0.5)
    fw = serving(spdy_api, tmp_path)
    try:
        assert exchange(fw, b"one") == b"one"
        assert settled(lambda: not spdy_api.sessions[0].alive)
        assert exchange(fw, b"two") == b"two"  # a new session
        assert len(spdy_api.sessions) == 2
    finally:
        stopped(fw)


def test_eight_mebibytes_cross_the_port_forward_intact(forwarder):
    payload = os.urandom(8 << 20)
    assert hashlib.sha256(exchange(forwarder, payload)).digest() == hashlib.sha256(payload).digest()


def test_when_the_pod_is_replaced_the_next_connection_goes_to_the_new_ready_pod(api, forwarder):
    assert exchange(forwarder, b"one") == b"one"
    api.pods[NS] = {"push-proxy-b": pod("push-proxy-b", labels=LABELS)}
    assert exchange(forwarder, b"two") == b"two"
    assert settled(lambda: api.forwards[-1] == f"{NS}/push-proxy-b")
    assert api.forwards[0] == f"{NS}/push-proxy-a" and api.forwards.count(f"{NS}/push-proxy-b") == 1
    assert news(forwarder) == ["pod push-proxy-a is gone or not ready; forwarding to pod push-proxy-b"]


def test_when_the_pod_behind_the_session_is_deleted_new_connections_reach_the_new_pod(spdy_api, spdy_forwarder):
    """A rollout as the kubelet serves it: the session to the old pod stays open and still answers new streams, but
    dialling a deleted pod fails and the data stream ends. Such a pair, set up while the pod's readiness is read, must
    not end a connection that goes to the new pod (it did: skopeo got "connection reset by peer")."""
    with socket.create_connection(spdy_forwarder.listener.getsockname(), timeout=20) as established:
        established.sendall(b"before")
        assert established.recv(100) == b"before"
        spdy_api.pods[NS]["push-proxy-b"] = pod("push-proxy-b", labels=LABELS, created="2026-01-02T00:00:00Z")
        spdy_api.remove_pod(NS, "push-proxy-a")
        assert established.recv(100) == b""  # ended by the old pod's end, with a FIN (a reset would raise)
    payloads = [os.urandom(64 << 10) for _ in range(4)]
    results: list = [None] * len(payloads)
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, exchange(spdy_forwarder, payloads[i])))
               for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == payloads
    assert exchange(spdy_forwarder, b"after") == b"after"
    assert spdy_api.forwards == [f"{NS}/push-proxy-a"] + [f"{NS}/push-proxy-b"] * 5
    assert spdy_forwarder.said == ["pod push-proxy-a is gone or not ready; forwarding to pod push-proxy-b"]
    old, new = spdy_api.sessions
    assert settled(lambda: not old.alive)  # left: closed once the streams it carried have ended
    assert settled(lambda: new.open_streams() == 0) and new.alive


class _Banner(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"220 ready\r\n")  # the pod speaks first, before the client has sent anything
        while data := self.request.recv(65536):
            self.request.sendall(data)


def test_what_the_pod_sends_before_its_streams_are_attached_reaches_the_client_first(tmp_path):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Banner)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = KubeForward(server.server_address)
    api.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS)}
    fw = serving(api, tmp_path)
    try:
        for _ in range(3):
            with socket.create_connection(fw.listener.getsockname(), timeout=20) as s:
                s.sendall(b"hello")
                got = b""
                while len(got) < len(b"220 ready\r\nhello") and (data := s.recv(100)):
                    got += data
                assert got == b"220 ready\r\nhello"
    finally:
        stopped(fw)
        api.close()
        server.shutdown()
        server.server_close()


def test_a_pod_on_its_way_out_is_left_for_a_ready_one(api, forwarder):
    api.pods[NS] = {"push-proxy-a": pod("push-proxy-a", labels=LABELS, deleting=True),
                    "push-proxy-c": pod("push-proxy-c", labels=LABELS, created="2026-01-02T00:00:00Z")}
    assert exchange(forwarder, b"x") == b"x"
    assert api.forwards[-1] == f"{NS}/push-proxy-c"
    if api.spdy:  # streams to the current pod are set up while its readiness is read: they carry nothing and end
        leaving = next(s for s in api.sessions if s.pod == f"{NS}/push-proxy-a")
        assert settled(lambda: api.open_streams() == 0)
        assert leaving.received["data"] == leaving.received["fin"] == 1  # the error stream's end, nothing else
    else:
        assert api.forwards == [f"{NS}/push-proxy-c"]


def test_a_refused_port_forward_closes_the_local_connection_and_says_why(api, tmp_path):
    api.deny_forward = True  # before the forwarder starts: an SPDY session it opened earlier would carry new streams
    forwarder = serving(api, tmp_path)
    try:
        assert exchange(forwarder, b"x") == b""
    finally:
        stopped(forwarder)
    assert forwarder.said[-1] == (
        'warning: connection refused: port-forward to pod meshreg-push/push-proxy-a: not permitted (RBAC): User "dev" '
        'cannot create resource "pods/portforward" in API group "" in the namespace "meshreg-push" (pushing through '
        "the push proxy needs the Role meshreg-connect in namespace meshreg-push; an admin grants it with: kubectl -n "
        "meshreg-push create rolebinding NAME --role=meshreg-connect --user=YOU)")


def test_start_without_a_ready_pod_names_the_pods_it_found(spdy_api, tmp_path):
    api = spdy_api
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

"""The connect operation: which push proxy a registry has, and a session that listens, starts on a ready pod and
says where to push (the Forwarding), on a local API server that forwards for real."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from meshreg import config
from meshreg.cluster import client as clusters
from meshreg.cluster.pushproxy import Target
from meshreg.errors import ClusterError, ConfigError, UsageError
from meshreg.operations.connect import Forwarding, listen, target
from meshreg.render.devloop import devloop
from support.apiserver import write_kubeconfig
from support.configs import minimal
from support.kubeforward import KubeForward, pod
from support.lab.processes import free_port

CONFIG = minimal("  pushProxy: {repositories: [dev/, team/], port: 5000}\n")
LABELS = {"app.kubernetes.io/instance": "dev", "app.kubernetes.io/name": "push-proxy",
          "meshreg.dev/push-proxy": "meshreg-push"}
SELECTOR = "app.kubernetes.io/instance=dev,app.kubernetes.io/name=push-proxy,meshreg.dev/push-proxy=meshreg-push"


class _Hello(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1024)
        self.request.sendall(b"hello")


@pytest.fixture
def api():
    upstream = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    server = KubeForward(upstream.server_address)
    server.pods["meshreg-push"] = {"push-proxy-1": pod("push-proxy-1", labels=LABELS)}
    yield server
    server.close()
    upstream.shutdown()
    upstream.server_close()


@pytest.fixture
def cluster(api, tmp_path):
    return clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", api.url), context=None)


def test_the_target_is_the_registrys_push_proxy_its_pods_and_its_role():
    assert target(config.from_text(CONFIG, name="t.yaml"), None) == Target(
        registry="registry", namespace="meshreg-push", selector=SELECTOR, port=5000, role="meshreg-connect")


def test_a_registry_without_a_push_proxy_says_how_to_enable_one():
    with pytest.raises(ConfigError, match=r"^t.yaml: the registry has no push proxy; enable one \(pushProxy: "):
        target(config.from_text(minimal(), name="t.yaml"), None)


def test_a_session_forwards_to_the_ready_pod_and_says_where_to_push_and_pull(cluster):
    cfg = config.from_text(CONFIG, name="t.yaml")
    session = listen(cfg, target(cfg, None), address="127.0.0.1", port=free_port())
    try:
        forwarding = session.start(cluster, say=print)
        port = session.listener.getsockname()[1]
        assert forwarding == Forwarding(local=f"localhost:{port}", namespace="meshreg-push", pod="push-proxy-1",
                                        port=5000, registry="registry", repositories=("dev/", "team/"),
                                        pull="localhost:5000/dev", node_proxy=True, loop=devloop(cfg, cfg.registry))
        assert forwarding.loop.push == "localhost:5000/dev" and forwarding.loop.same_name
        stop = threading.Event()
        serving = threading.Thread(target=session.serve, args=(stop,), daemon=True)
        serving.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"hi")
            assert s.recv(5) == b"hello"
        stop.set()
        serving.join(timeout=10)
    finally:
        session.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_without_the_node_proxy_pod_specs_pull_from_the_service(cluster):
    cfg = config.from_text(minimal("  nodeProxy: {enabled: false}\n  pushProxy: {repositories: ['*']}\n"),
                           name="t.yaml")
    session = listen(cfg, target(cfg, None), address="127.0.0.1", port=free_port())
    try:
        forwarding = session.start(cluster, say=print)
    finally:
        session.close()
    assert (forwarding.pull, forwarding.node_proxy, forwarding.repositories) == (
        "registry.meshreg.svc.cluster.local:5000", False, ("*",))


def test_no_ready_pod_fails_the_start(api, cluster):
    api.pods["meshreg-push"] = {"push-proxy-1": pod("push-proxy-1", labels=LABELS, ready=False)}
    cfg = config.from_text(CONFIG, name="t.yaml")
    session = listen(cfg, target(cfg, None), address="127.0.0.1", port=free_port())
    try:
        with pytest.raises(ClusterError, match="no ready push-proxy pod"):
            session.start(cluster, say=print)
    finally:
        session.close()


def test_a_port_in_use_is_refused_before_any_cluster_is_asked():
    cfg = config.from_text(CONFIG, name="t.yaml")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match="is already in use"):
            listen(cfg, target(cfg, None), address="127.0.0.1", port=taken.getsockname()[1])

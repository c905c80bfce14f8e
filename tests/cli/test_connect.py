"""`meshreg connect`: bad input is one line and nothing half-done; Ctrl-C stops it cleanly with exit 0."""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.cluster.pushproxy import Target, ready_pod
from meshreg.errors import ClusterError
from support.apiserver import write_kubeconfig
from support.configs import minimal
from support.fakes import FakeCluster, refusal
from support.kubeforward import KubeForward, pod
from support.lab.processes import free_port

CONFIG = minimal("  pushProxy: {repositories: [dev/], port: 5000}\n")
LABELS = {"app.kubernetes.io/instance": "dev", "app.kubernetes.io/name": "push-proxy",
          "meshreg.dev/push-proxy": "meshreg-push"}


class _Hello(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1024)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")


@pytest.fixture
def api():
    target = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    server = KubeForward(target.server_address)
    server.pods["meshreg-push"] = {"push-proxy-1": pod("push-proxy-1", labels=LABELS)}
    yield server
    server.close()
    target.shutdown()
    target.server_close()


def invoke(tmp_path, api_url: str, *args, config: str = CONFIG):
    (tmp_path / "meshreg.yaml").write_text(config)
    kc = write_kubeconfig(tmp_path / "kubeconfig", api_url)
    return CliRunner().invoke(main, ["connect", "-c", str(tmp_path / "meshreg.yaml"), "--kubeconfig", kc, *args])


def test_without_a_push_proxy_it_says_how_to_enable_one_and_exits_2(api, tmp_path):
    result = invoke(tmp_path, api.url, config=minimal())
    assert result.exit_code == 2
    assert result.output.endswith("meshreg.yaml: the registry has no push proxy; enable one (pushProxy: {enabled: "
                                  "true, repositories: [dev/]}), run meshreg up, then meshreg connect (see "
                                  "docs/pushing.md)\n")
    assert api.requests == []


def test_a_local_port_in_use_exits_2_before_asking_the_cluster(api, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke(tmp_path, api.url, "--port", str(port))
    assert result.exit_code == 2 and f"127.0.0.1:{port} is already in use" in result.output
    assert api.requests == []


def test_no_ready_pod_exits_1_and_leaves_nothing_listening(api, tmp_path):
    api.pods["meshreg-push"] = {"push-proxy-1": pod("push-proxy-1", labels=LABELS, ready=False)}
    port = free_port()
    result = invoke(tmp_path, api.url, "--port", str(port))
    assert result.exit_code == 1
    assert result.output == ("meshreg: error: no ready push-proxy pod in namespace meshreg-push: push-proxy-1 "
                             "(Pending); see meshreg status\n")
    socket.create_server(("127.0.0.1", port)).close()  # free again


def test_a_bad_address_is_a_usage_error(api, tmp_path):
    result = invoke(tmp_path, api.url, "--address", "localhost:5000")
    assert result.exit_code == 2 and "'localhost:5000' is not an IP address" in result.output


def test_forbidden_to_list_pods_says_which_role_to_ask_for():
    cluster = FakeCluster()
    cluster.failures[("list", "Pod", "*")] = refusal(
        403, "listing pods in namespace meshreg-push", 'pods is forbidden: User "dev" cannot list resource "pods" '
        'in API group "" in the namespace "meshreg-push"')
    target = Target(registry="registry", namespace="meshreg-push", selector="a=b", port=5000, role="meshreg-connect")
    with pytest.raises(ClusterError, match=r'^listing pods in namespace meshreg-push: not permitted \(RBAC\): User '
                                           r'"dev" cannot list resource "pods" in API group "" in the namespace '
                                           r'"meshreg-push" \(pushing through the push proxy needs the Role '
                                           r"meshreg-connect in namespace meshreg-push; an admin grants it with: "
                                           r"kubectl -n meshreg-push create rolebinding NAME --role=meshreg-connect "
                                           r"--user=YOU\)$"):
        ready_pod(cluster=cluster, target=target)


def start(tmp_path, api_url: str, port: int) -> subprocess.Popen:
    (tmp_path / "meshreg.yaml").write_text(CONFIG)
    kc = write_kubeconfig(tmp_path / "kubeconfig", api_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_")}
    # Started as a shell starts a background job, with SIGINT ignored: Ctrl-C must stop it all the same.
    proc = subprocess.Popen([sys.executable, "-m", "meshreg", "connect", "-c", str(tmp_path / "meshreg.yaml"),
                             "--kubeconfig", kc, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = [proc.stdout.readline() for _ in range(6)]
    assert lines[0].startswith(f"forwarding localhost:{port} -> pod meshreg-push/push-proxy-1:5000"), lines
    assert lines[2].strip() == f"skaffold: skaffold run --default-repo=localhost:{port}/dev"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_with_exit_0_and_nothing_left_listening(api, tmp_path, sig):
    port = free_port()
    proc = start(tmp_path, api.url, port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).endswith(b"hello")
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert proc.stderr.read().strip() == "stopped"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)

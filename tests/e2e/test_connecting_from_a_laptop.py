"""`meshreg connect` end to end: skopeo on the "laptop" pushes to localhost:PORT, which `meshreg connect` (the real
command, the real kubernetes client) port-forwards through a local API server to the lab's push-proxy Envoy,
which writes to the registry over mTLS as the push proxy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from support.apiserver import write_kubeconfig
from support.kubeforward import KubeForward, pod
from support.lab.clients import manifest_digest, skopeo_copy
from support.lab.processes import free_port


@pytest.fixture
def laptop(push_lab, tmp_path):
    """A running `meshreg connect`; yields (process, local address, fake API server)."""
    proxy = push_lab.cfg.registry.push_proxy
    [deployment] = [o for o in push_lab.objects if o["kind"] == "Deployment"
                    and o["metadata"].get("namespace") == proxy.namespace]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    api = KubeForward(("127.0.0.1", push_lab.push_proxy_port))
    api.pods[proxy.namespace] = {"push-proxy-1": pod("push-proxy-1", labels=labels)}
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_")}
    proc = subprocess.Popen([sys.executable, "-m", "meshreg", "connect", "-c", str(push_lab.config_file),
                             "--kubeconfig", write_kubeconfig(tmp_path / "kubeconfig", api.url), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    assert first.startswith(f"forwarding localhost:{port} -> pod {proxy.namespace}/push-proxy-1:"), \
        first + proc.stderr.read() if proc.poll() is not None else first
    try:
        yield proc, f"localhost:{port}", api
    finally:
        proc.kill()
        proc.wait()
        api.close()


def test_skopeo_pushes_through_meshreg_connect_and_the_registry_holds_the_image(push_lab, laptop, image):
    _, address, api = laptop
    result = skopeo_copy(image.ref, f"docker://{address}/dev/from-laptop:v1")
    assert result.returncode == 0, result.stderr
    assert manifest_digest(push_lab.direct, "dev/from-laptop", "v1") == image.digest
    assert set(api.forwards) == {f"{push_lab.cfg.registry.push_proxy.namespace}/push-proxy-1"}


def test_a_push_outside_the_scope_through_meshreg_connect_is_refused_with_403(push_lab, laptop, image):
    _, address, _ = laptop
    result = skopeo_copy(image.ref, f"docker://{address}/team-a/from-laptop:v1")
    assert result.returncode != 0 and "StatusCode: 403" in result.stderr, result.stderr
    assert "team-a/from-laptop" not in push_lab.repositories()


def test_when_the_push_proxy_pod_is_replaced_the_next_push_goes_to_the_new_pod(push_lab, laptop, image):
    proc, address, api = laptop
    ns = push_lab.cfg.registry.push_proxy.namespace
    assert skopeo_copy(image.ref, f"docker://{address}/dev/before:v1").returncode == 0
    labels = api.pods[ns]["push-proxy-1"]["metadata"]["labels"]
    api.pods[ns] = {"push-proxy-2": pod("push-proxy-2", labels=labels)}  # the rollout replaced the pod
    result = skopeo_copy(image.ref, f"docker://{address}/dev/after:v1")
    assert result.returncode == 0, result.stderr
    assert manifest_digest(push_lab.direct, "dev/after", "v1") == image.digest
    assert api.forwards[-1] == f"{ns}/push-proxy-2"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert "meshreg: pod push-proxy-1 is gone or not ready; forwarding to pod push-proxy-2" in proc.stderr.read()


def test_ctrl_c_ends_meshreg_connect_with_exit_0_and_frees_the_port(laptop):
    proc, address, _ = laptop
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), timeout=2)

"""The node proxy on the real node: an injected gateway pod whose hostPort is 127.0.0.1:PORT of the node (this host),
read-only for everyone on the node, reaching the registry over mTLS as its own identity; and the kubelet's own pull
of localhost:PORT/... through it."""

from __future__ import annotations

import socket
import ssl
import subprocess

import httpx
import pytest

from support import realstack
from support.realstack_pods import LogWatch, MeshPod, kubelet_pull

PORT = 5102
LOCAL = f"127.0.0.1:{PORT}"
BASE = "http://registry.rs-nodeproxy.svc.cluster.local:5000"
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-nodeproxy}}
spec:
  namespace: rs-nodeproxy
  nodeProxy: {{port: {PORT}}}
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  writers:
    - serviceAccount: rs-np-builds/kaniko
"""


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, CONFIG, accounts=("rs-np-builds/kaniko",)) as found:
        yield found


@pytest.fixture(scope="module")
def pushed(stack, instance):
    """An image the writer pushed through the mesh: (repository, digest)."""
    with MeshPod(stack, "rs-np-builds", "kaniko", service_account="kaniko") as writer:
        found = writer.probe(f"w push {BASE} apps/pulled")["w"]
    assert found["result"] == "ok", found
    return "apps/pulled", found["digest"]


@pytest.fixture
def proxy_log(stack, instance):
    [pod] = instance.pods("app.kubernetes.io/name=node-proxy")
    return LogWatch(stack, instance.namespace, pod["metadata"]["name"])


@pytest.fixture
def registry_log(stack, instance):
    return LogWatch(stack, instance.namespace, instance.registry_pod())


def test_anyone_on_the_node_reads_through_the_node_proxy(pushed, proxy_log, registry_log):
    repo, digest = pushed
    found = httpx.get(f"http://{LOCAL}/v2/{repo}/manifests/{digest}", timeout=10,
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert found.status_code == 200 and found.headers["docker-content-digest"] == digest
    assert proxy_log.find(method="GET", contains=digest).code == 200
    upstream = registry_log.find(method="GET", contains=digest)  # mTLS from the node proxy, as its own identity
    assert (upstream.code, upstream.details) == (200, "via_upstream"), upstream.line


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_nobody_writes_through_the_node_proxy_and_its_own_policy_says_so(method, proxy_log):
    path = f"/v2/apps/from-node-{method.lower()}/blobs/uploads/"
    found = httpx.request(method, f"http://{LOCAL}{path}", timeout=10)
    assert (found.status_code, found.text) == (403, "RBAC: access denied")
    entry = proxy_log.find(method=method, contains=path)
    assert entry.policy == "none", entry.line  # node-proxy-allow-reads admits only GET and HEAD


def test_skopeo_on_the_node_is_refused_a_push(instance, tmp_path):
    from support.lab import images

    image = images.build(tmp_path / "image")
    done = subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--retry-times", "0",
                           image.ref, f"docker://{LOCAL}/apps/from-skopeo:v1"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and ("403" in done.stderr or "denied" in done.stderr.lower()), done.stderr


def test_a_tls_client_hello_gets_an_http_error_not_silence(instance):
    """containerd 1.7.16+ falls back to plain HTTP after a failed TLS attempt: the answer must come at once."""
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as raw, \
            pytest.raises(ssl.SSLError, match=r"WRONG_VERSION_NUMBER|wrong version number"):
        context.wrap_socket(raw, server_hostname="localhost")


def test_the_kubelet_pulls_from_localhost_through_the_node_proxy(stack, pushed, instance, proxy_log):
    repo, digest = pushed
    event = kubelet_pull(stack, instance.namespace, "kubelet-pull", f"localhost:{PORT}/{repo}@{digest}")
    assert event["reason"] == "Pulled" and event["message"].startswith("Successfully pulled image"), event
    assert event["source"].get("host", stack.node) == stack.node
    pulled = proxy_log.find(method="GET", contains=f"/manifests/{digest}")
    assert pulled.code == 200 and "containerd/" in pulled.line, pulled.line  # the kubelet's runtime, as the client


def test_the_kubelet_gets_a_clear_failure_for_what_the_registry_does_not_have(stack, instance):
    event = kubelet_pull(stack, instance.namespace, "kubelet-missing", f"localhost:{PORT}/apps/none:v1")
    assert event["reason"] == "Failed" and "not found" in event["message"], event

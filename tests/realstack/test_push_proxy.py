"""The push proxy with `meshreg connect` over a real port-forward (API server -> kubelet -> the push-proxy pod's
loopback): skopeo on this host pushes inside pushProxy.repositories only, pulls back the same digest, the kubelet
pulls it from the node proxy, DELETE never passes, and connect follows the push proxy to a new pod."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from support import realstack
from support.lab import images
from support.realstack_pods import LogWatch, kubelet_pull

NODE_PORT, CONNECT_PORT = 5106, 5107
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-push}}
spec:
  namespace: rs-push
  nodeProxy: {{port: {NODE_PORT}}}
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  pushProxy:
    repositories: [dev/]
    port: {CONNECT_PORT}
"""
LOCAL = f"localhost:{CONNECT_PORT}"


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=180)


def push(image: images.Image, ref: str) -> subprocess.CompletedProcess:
    return skopeo("copy", "--dest-tls-verify=false", "--retry-times", "0", "--preserve-digests", image.ref,
                  f"docker://{ref}")


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, CONFIG) as found:
        yield found


@pytest.fixture(scope="module")
def connect(instance):
    with instance.running("connect", ready="forwarding ") as proc:
        yield proc


@pytest.fixture(scope="module")
def pushed(connect, workdir):
    """An image of a few MB pushed through connect: (repository, digest)."""
    image = images.build(workdir / "app", layer_sizes=(3 << 20, 64 << 10))
    done = push(image, f"{LOCAL}/dev/app:v1")
    assert done.returncode == 0, done.stderr
    return "dev/app", image.digest


def push_proxy_pod(stack: realstack.Stack) -> str:
    [pod] = [p for p in stack.get("pods", namespace="rs-push-push", selector="app.kubernetes.io/name=push-proxy")
             if not p["metadata"].get("deletionTimestamp")]
    return pod["metadata"]["name"]


def test_skopeo_pushes_inside_the_push_proxys_repositories_and_pulls_back_the_same_digest(pushed, tmp_path):
    repo, digest = pushed
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{LOCAL}/{repo}:v1")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest
    back = skopeo("copy", "--src-tls-verify=false", f"docker://{LOCAL}/{repo}:v1", f"oci:{tmp_path / 'back'}:v1")
    assert back.returncode == 0, back.stderr


def test_a_push_outside_its_repositories_is_refused_by_the_registrys_policy(connect, instance, stack, tmp_path):
    log = LogWatch(stack, instance.namespace, instance.registry_pod())
    done = push(images.build(tmp_path / "other"), f"{LOCAL}/other/app:v1")
    assert done.returncode != 0 and "denied" in done.stderr.lower(), done.stderr
    assert log.find(method="POST", contains="/v2/other/app/").policy == "registry-deny-writes"


def test_delete_never_passes_the_push_proxy(pushed, stack):
    repo, digest = pushed
    log = LogWatch(stack, "rs-push-push", push_proxy_pod(stack))
    found = httpx.delete(f"http://{LOCAL}/v2/{repo}/manifests/{digest}", timeout=20)
    assert (found.status_code, found.text) == (403, "RBAC: access denied")
    assert log.find(method="DELETE", contains=f"/v2/{repo}/").policy == "none"


def test_pods_pull_what_was_pushed_from_the_node_proxy(pushed, stack, instance):
    repo, _ = pushed
    event = kubelet_pull(stack, instance.namespace, "pull-pushed", f"localhost:{NODE_PORT}/{repo}:v1")
    assert event["reason"] == "Pulled" and event["message"].startswith("Successfully pulled"), event


def test_connect_follows_the_push_proxy_to_a_new_pod(pushed, stack, tmp_path):
    old = push_proxy_pod(stack)
    stack.kubectl("rollout", "restart", "-n", "rs-push-push", "deployment/push-proxy")
    stack.kubectl("rollout", "status", "-n", "rs-push-push", "deployment/push-proxy", "--timeout=120s", timeout=150)
    stack.wait("delete", f"pod/{old}", namespace="rs-push-push", timeout=60)
    done = push(images.build(tmp_path / "after"), f"{LOCAL}/dev/after-restart:v1")
    assert done.returncode == 0, done.stderr


def test_the_injected_push_proxy_keeps_if_not_present_and_the_kubelet_pulls_nothing(stack, instance):
    [pod] = [p for p in stack.get("pods", namespace="rs-push-push", selector="app.kubernetes.io/name=push-proxy")
             if not p["metadata"].get("deletionTimestamp")]
    [proxy] = pod["spec"]["containers"]
    assert proxy["image"] != "auto" and proxy["imagePullPolicy"] == "IfNotPresent"
    events = [f"{e['reason']}: {e['message']}" for e in stack.events("rs-push-push", pod["metadata"]["name"])]
    assert not [e for e in events if e.startswith("Pulling")], events

"""KEP-1755 on the real stack: `meshreg up` publishes kube-public/local-registry-hosting (what Tilt and Skaffold
read) with the addresses that work on this node, and `meshreg down` takes it away. Only one instance in a cluster can
publish it, and the stack is shared: the test holds the lab's kep1755 lock (LAB_LOCKS/kep1755.lock, by default the
labs-logs directory beside ../shared) for its whole run, and when another instance's ConfigMap is there it checks
that up refuses to take it over instead."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO

import httpx
import pytest
import yaml

from support import realstack
from support.realstack_pods import MeshPod

PORT = 5115
WRITER = "rs-pub-builds/kaniko"
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-pub}}
spec:
  namespace: rs-pub
  nodeProxy: {{port: {PORT}}}
  writers: [{{serviceAccount: {WRITER}}}]
"""


def lock_file() -> Path:
    return realstack.lab_lock("kep1755.lock")


def acquire(lock: IO[str], *, timeout: float = 900) -> None:
    """The lock, waited for at most `timeout` seconds (another run's dev loop may hold it for minutes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.skip(f"another run has held {lock.name} for {timeout:.0f} s; run this module again later")
            time.sleep(5)


@pytest.fixture(scope="module")
def kep1755(stack):
    """The lab's lock on kube-public/local-registry-hosting, held while the module runs; whoever owns the ConfigMap
    now (None: nobody)."""
    with open(lock_file(), "a") as lock:
        acquire(lock)
        try:
            found = stack.get("configmap", "local-registry-hosting", namespace="kube-public")
            yield None if found is None else (found["metadata"].get("labels") or {}).get(
                "app.kubernetes.io/instance", "someone outside meshreg")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def instance(stack, workdir, kep1755):
    up = ("--timeout", "180") if kep1755 is None else None
    with realstack.deployed(stack, workdir, CONFIG, accounts=(WRITER,), up=up) as found:
        yield found


def test_up_publishes_the_addresses_that_work_and_down_takes_them_away(stack, instance, kep1755):
    if kep1755 is not None:
        pytest.skip(f"kube-public/local-registry-hosting belongs to instance {kep1755} now; the next test checks "
                    "that up leaves it alone")
    published = stack.get("configmap", "local-registry-hosting", namespace="kube-public")
    hosting = yaml.safe_load(published["data"]["localRegistryHosting.v1"])
    assert hosting["host"] == hosting["hostFromContainerRuntime"] == f"localhost:{PORT}"
    assert hosting["hostFromClusterNetwork"] == "registry.rs-pub.svc.cluster.local:5000"
    with MeshPod(stack, "rs-pub-builds", "kaniko", service_account="kaniko") as writer:  # both addresses work
        pushed = writer.probe(f"w push http://{hosting['hostFromClusterNetwork']} apps/web")["w"]
    assert httpx.head(f"http://{hosting['hostFromContainerRuntime']}/v2/apps/web/manifests/{pushed['digest']}",
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10).status_code == 200
    instance.meshreg("down")
    assert stack.get("configmap", "local-registry-hosting", namespace="kube-public") is None


def test_up_leaves_another_instances_published_addresses_alone(stack, instance, kep1755):
    if kep1755 is None:
        pytest.skip("nobody else publishes kube-public/local-registry-hosting now; the test before checked ours")
    before = stack.get("configmap", "local-registry-hosting", namespace="kube-public")
    done = instance.meshreg("up", "--timeout", "60", check=False)
    assert done.returncode != 0 and "local-registry-hosting" in done.stderr, done.stderr
    assert stack.get("configmap", "local-registry-hosting", namespace="kube-public") == before
    assert stack.get("deployment", "registry", namespace=instance.namespace) is None  # nothing was applied

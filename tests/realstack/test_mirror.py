"""The mirror role on the real stack: a pull-through cache of a second registry in the cluster, reached through the
mirror's own sidecar (the rendered alias Service, VirtualService and ServiceEntry as istiod programs them). It
fills its cache, nobody writes it, and it serves what it cached while the upstream is down, also after a restart
(distribution 2.8 panics at start-up on a refused connection; the sidecar's 503 keeps it alive)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from support import realstack
from support.lab import images
from support.realstack_pods import LogWatch, MeshPod, kubelet_pull

PORT = 5105
UPSTREAM_NS = "rs-mirror-up"
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-mirror}}
spec:
  namespace: rs-mirror
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  registries:
    - name: cache
      role: mirror
      port: {PORT}
      mirror: {{upstream: "http://upstream.{UPSTREAM_NS}.svc.cluster.local:5000"}}
"""
BASE = "http://cache.rs-mirror.svc.cluster.local:5000"


def upstream_objects(stack: realstack.Stack) -> list[dict]:
    """A plain registry outside the mesh, on an emptyDir: what the mirror caches from."""
    labels = {"app": "upstream"}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": UPSTREAM_NS, "labels": {realstack.TIER: "true"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "upstream", "namespace": UPSTREAM_NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "containers": [{"name": "registry", "image": stack.registry_image,
                                      "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 5000}],
                                      "readinessProbe": {"httpGet": {"path": "/v2/", "port": 5000},
                                                         "periodSeconds": 2},
                                      "volumeMounts": [{"name": "data", "mountPath": "/var/lib/registry"}]}],
                      "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
                      "volumes": [{"name": "data", "emptyDir": {}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "upstream", "namespace": UPSTREAM_NS},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 5000, "targetPort": 5000}]}},
    ]


def scale_upstream(stack: realstack.Stack, replicas: int) -> None:
    stack.kubectl("scale", "-n", UPSTREAM_NS, "deployment/upstream", f"--replicas={replicas}")
    if replicas:
        stack.wait("condition=Available", "deployment/upstream", namespace=UPSTREAM_NS)
    else:
        stack.wait("delete", "pod", selector="app=upstream", namespace=UPSTREAM_NS, timeout=60)


def eventually_served(url: str, timeout: float = 30) -> httpx.Response:
    """The first 200 for `url` within `timeout` seconds, else the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(url, headers=ACCEPT, timeout=20)
        if found.status_code == 200 or time.monotonic() > deadline:
            return found
        time.sleep(1)


@pytest.fixture(scope="module")
def upstream(stack, workdir):
    """The upstream registry, seeded from this host with two images (pushed to its pod IP, plain HTTP)."""
    stack.apply(*upstream_objects(stack))
    try:
        stack.wait("condition=Available", "deployment/upstream", namespace=UPSTREAM_NS)
        [pod] = stack.get("pods", namespace=UPSTREAM_NS, selector="app=upstream")
        seeded = {}
        for name in ("library/cached", "library/uncached"):
            image = images.build(workdir / name.replace("/", "-"))
            subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--retry-times", "2",
                            image.ref, f"docker://{pod['status']['podIP']}:5000/{name}:v1"], check=True,
                           capture_output=True, timeout=120)
            seeded[name] = image.digest
        yield seeded
    finally:
        stack.delete("namespace", UPSTREAM_NS)


@pytest.fixture(scope="module")
def instance(stack, workdir, upstream):
    with realstack.deployed(stack, workdir / "mirror", CONFIG) as found:
        yield found


@pytest.fixture(scope="module")
def client(stack, instance):
    realstack.injected_namespace(stack, "rs-mirror-apps", "app")
    with MeshPod(stack, "rs-mirror-apps", "app", service_account="app") as pod:
        yield pod
    stack.delete("namespace", "rs-mirror-apps")


def test_a_pull_through_the_mirror_comes_from_the_upstream_through_the_sidecar(client, upstream, instance, stack):
    log = LogWatch(stack, instance.namespace, instance.registry_pod("cache"))
    digest = upstream["library/cached"]
    found = client.probe(f"p pull {BASE} library/cached v1")["p"]
    assert (found["result"], found["served"]) == ("ok", digest), found
    # The mirror's own request left through its sidecar to the alias, rewritten for the upstream.
    out = log.find(method="GET", contains="/v2/library/cached/manifests/v1")
    assert out.code == 200, out.line
    outbound = [a for a in log.new() if "outbound|80||upstream.rs-mirror-up" in a.line]
    assert outbound and outbound[0].code == 200, [a.line for a in log.new()]


def test_nobody_writes_the_mirror(client, instance, stack):
    log = LogWatch(stack, instance.namespace, instance.registry_pod("cache"))
    found = client.probe(f"w push {BASE} library/mine")["w"]
    assert found["status"] == 403
    assert log.find(method="POST", contains="/v2/library/mine/").policy == "cache-deny-writes"


def test_the_kubelet_pulls_through_the_node_proxy_and_the_mirror(stack, upstream, instance):
    event = kubelet_pull(stack, instance.namespace, "pull-cached", f"localhost:{PORT}/library/cached:v1")
    assert event["reason"] == "Pulled" and event["message"].startswith("Successfully pulled"), event


def test_the_cache_is_served_while_the_upstream_is_down_also_after_the_mirror_restarts(client, upstream, instance,
                                                                                       stack):
    scale_upstream(stack, 0)
    try:
        cached = httpx.get(f"http://127.0.0.1:{PORT}/v2/library/cached/manifests/{upstream['library/cached']}",
                           headers=ACCEPT, timeout=20)
        assert cached.status_code == 200
        stack.kubectl("rollout", "restart", "-n", instance.namespace, "deployment/cache")
        stack.kubectl("rollout", "status", "-n", instance.namespace, "deployment/cache", "--timeout=120s",
                      timeout=150)
        [pod] = [p for p in instance.pods("meshreg.dev/registry=cache") if not p["metadata"].get("deletionTimestamp")]
        restarts = [c["restartCount"] for c in pod["status"]["containerStatuses"] if c["name"] == "registry"]
        assert restarts == [0], "the mirror crashed while starting without its upstream"
        # The node proxy learns the new pod's address from istiod moments after it is Ready: until then, 503.
        again = eventually_served(f"http://127.0.0.1:{PORT}/v2/library/cached/manifests/{upstream['library/cached']}")
        assert again.status_code == 200, (again.status_code, again.headers.get("server"), again.text[:200])
        missing = httpx.get(f"http://127.0.0.1:{PORT}/v2/library/uncached/manifests/v1", headers=ACCEPT, timeout=30)
        assert missing.status_code >= 400
    finally:
        scale_upstream(stack, 1)


def test_status_is_healthy(instance):
    found = instance.json("status")
    assert found["healthy"] and found["registries"][0]["role"] == "mirror"

"""Watches and retries against the real kube-apiserver of the API-server lab (../shared/lab-kube): what the fake and
the local server play, checked where it is real. Each test works in a namespace of its own (rb-*) and removes what
it made; without the lab they skip, saying how to start it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from meshreg.cluster import client as clusters
from meshreg.cluster import parallel
from meshreg.cluster import wait as waiting
from meshreg.cluster.client import Cluster
from meshreg.cluster.errors import PermissionDenied
from meshreg.cluster.watching import Source, Watcher
from meshreg.errors import ClusterError
from support.realstack import TMP

pytestmark = pytest.mark.apiserver
LAB = Path(os.environ.get("LAB_KUBE", TMP / "lab-kube"))
NODE = os.environ.get("LAB_NODE_NAME", "lab-real-1")
HOW = ("the API-server lab with its real node is not running: build and start it as ../shared/lab-kube/README.md "
       "says (start.sh, then real-node.sh start)")


@pytest.fixture(scope="module")
def admin() -> Cluster:
    if not (LAB / "kubeconfig").exists():
        pytest.skip(f"{HOW} (no {LAB / 'kubeconfig'})")
    try:
        cluster = clusters.connect(kubeconfig=str(LAB / "kubeconfig"))
        node = cluster.get("v1", "Node", NODE)
    except ClusterError as e:
        pytest.skip(f"{HOW} ({e})")
    if not node or not any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]):
        pytest.skip(f"{HOW} (node {NODE} is not Ready)")
    return cluster


@pytest.fixture
def namespace(admin) -> Iterator[str]:
    name = f"rb-{secrets.token_hex(3)}"
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    admin.delete("v1", "Namespace", name)


def config_map(namespace: str, name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def test_a_watch_sees_what_is_added_changed_and_deleted_after_the_lists_resource_version(admin, namespace):
    listed = admin.snapshot("v1", "ConfigMap", namespace=namespace)
    stream = admin.watch("v1", "ConfigMap", namespace=namespace, field_selector="metadata.name=w",
                         resource_version=listed.resource_version, timeout_seconds=30)
    seen: list[tuple[str, str]] = []

    def read():
        for event in stream:
            seen.append((event["type"], event["object"]["metadata"]["resourceVersion"]))
            if event["type"] == "DELETED":
                return
    reader = threading.Thread(target=read)
    reader.start()
    admin.apply(config_map(namespace, "w", a="1"))
    admin.apply(config_map(namespace, "w", a="2"))
    admin.delete("v1", "ConfigMap", "w", namespace=namespace)
    reader.join(timeout=20)
    stream.close()
    assert [kind for kind, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert [int(rv) for _, rv in seen] == sorted(int(rv) for _, rv in seen)
    assert int(seen[0][1]) > int(listed.resource_version)


def test_a_resource_version_the_server_no_longer_has_is_410_and_the_watcher_lists_again(admin, namespace):
    first: list[dict] = []
    real_watch, lists = admin.watch, []

    class Counting:
        def __getattr__(self, name):
            return getattr(admin, name)

        def snapshot(self, *args, **kwargs):
            lists.append(args)
            return admin.snapshot(*args, **kwargs)

        def watch(self, *args, **kwargs):
            if first:
                return real_watch(*args, **kwargs)
            kwargs["resource_version"] = "1"  # as if the list had been read long ago: etcd compacted past it
            return Recorded(real_watch(*args, **kwargs))

    class Recorded:
        def __init__(self, stream):
            self.stream = stream

        def __iter__(self):
            for event in self.stream:
                first.append(event)
                yield event

        def close(self):
            self.stream.close()

    compact_etcd()
    source = Source("v1", "ConfigMap", namespace, name="late")
    with Watcher(Counting(), [source]) as watcher:  # type: ignore[arg-type]
        admin.apply(config_map(namespace, "late", a="1"))
        deadline = time.monotonic() + 20
        while watcher.get(source) is None and time.monotonic() < deadline:
            watcher.wait(1)
        assert watcher.get(source) is not None and watcher.watching
    assert first[0]["type"] == "ERROR" and first[0]["object"]["code"] == 410
    assert "too old resource version" in first[0]["object"]["message"]
    assert len(lists) >= 2  # listed again after the 410


def compact_etcd() -> None:
    """Compact the lab's etcd to its newest revision, as the API server does every 5 minutes on its own: a lab younger
    than that still has revision 1, and a watch from there would be served instead of refused."""
    etcd = os.environ.get("LAB_ETCD", "http://127.0.0.1:2379")
    try:
        head = httpx.post(f"{etcd}/v3/kv/range", json={"key": "AA=="}, timeout=5).json()["header"]["revision"]
        httpx.post(f"{etcd}/v3/kv/compaction", json={"revision": head, "physical": True}, timeout=30)
    except (httpx.HTTPError, KeyError, ValueError) as e:
        pytest.skip(f"cannot compact the lab's etcd at {etcd} ({e}): a watch from revision 1 may not be refused yet")


def pause_deployment(namespace: str, name: str = "sleeper") -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                         "imagePullPolicy": "Never"}]}}}}


class Recording:
    """A cluster client that counts the GETs and watches it passes on."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.gets, self.watch_errors = cluster, 0, []

    def __getattr__(self, name):
        return getattr(self.cluster, name)

    def get(self, *args, **kwargs):
        self.gets += 1
        return self.cluster.get(*args, **kwargs)

    def watch(self, *args, **kwargs):
        try:
            return self.cluster.watch(*args, **kwargs)
        except ClusterError as e:
            self.watch_errors.append(e)
            raise


def test_a_real_rollout_is_waited_for_by_watching_it_without_a_single_get(admin, namespace):
    admin.apply(pause_deployment(namespace))
    client = Recording(admin)
    started = time.monotonic()
    waiting.wait(cluster=client, namespace=namespace, workloads=[("apps/v1", "Deployment", "sleeper")],  # type: ignore[arg-type]
                 timeout=120, interval=60, progress=waiting.Progress(quiet=True))
    took = time.monotonic() - started
    assert client.gets == 0 and took < 60  # it reacted to the change, not to the 60 s refresh
    live = admin.get("apps/v1", "Deployment", "sleeper", namespace=namespace)
    assert waiting.rollout(live)[0]


def kubeconfig_for(admin_kubeconfig: Path, namespace: str, account: str, path: Path) -> str:
    """A kubeconfig that authenticates as a ServiceAccount (a token from `kubectl create token`)."""
    token = subprocess.run(["kubectl", "--kubeconfig", str(admin_kubeconfig), "-n", namespace, "create", "token",
                            account, "--duration=1h"], capture_output=True, text=True, check=True).stdout.strip()
    cluster = yaml.safe_load(admin_kubeconfig.read_text())["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "lab", "cluster": cluster}], "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "lab", "user": account, "namespace": namespace}}]}))
    return str(path)


def grant(admin: Cluster, namespace: str, account: str, verbs: list[str]) -> None:
    admin.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}})
    admin.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": account, "namespace": namespace},
                 "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": verbs}]})
    admin.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": account, "namespace": namespace},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                 "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})


@pytest.mark.parametrize("verbs", [["get", "list"], ["get"]], ids=["no-watch", "no-list"])
def test_where_rbac_allows_no_watch_the_wait_polls_with_get_as_before(admin, namespace, tmp_path, verbs):
    admin.apply(pause_deployment(namespace))
    grant(admin, namespace, "rb-reader", verbs)
    reader = Recording(clusters.connect(kubeconfig=kubeconfig_for(LAB / "kubeconfig", namespace, "rb-reader",
                                                                  tmp_path / "kubeconfig")))
    waiting.wait(cluster=reader, namespace=namespace, workloads=[("apps/v1", "Deployment", "sleeper")],  # type: ignore[arg-type]
                 timeout=120, interval=1, progress=waiting.Progress(quiet=True))
    assert reader.gets > 0
    if "list" in verbs:
        [refused] = reader.watch_errors
        assert isinstance(refused, PermissionDenied) and "cannot watch resource" in str(refused)


APF = ["flowcontrol.apiserver.k8s.io/v1"]


@pytest.fixture
def throttled(admin, namespace, tmp_path) -> Iterator[str]:
    """A kubeconfig whose ServiceAccount API Priority and Fairness lets run about 3 requests at a time, refusing the
    rest with 429 and a Retry-After (a priority level of 1 share, Reject), as a busy cluster does."""
    admin.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "rb-busy", "namespace": namespace}})
    admin.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "rb-busy", "namespace": namespace},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                 "subjects": [{"kind": "ServiceAccount", "name": "rb-busy", "namespace": namespace}]})
    level, schema = (f"{namespace}-tiny",) * 2
    objects = [
        {"apiVersion": APF[0], "kind": "PriorityLevelConfiguration", "metadata": {"name": level},
         "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                                                  "limitResponse": {"type": "Reject"}}}},
        {"apiVersion": APF[0], "kind": "FlowSchema", "metadata": {"name": schema},
         "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": 450,
                  "distinguisherMethod": {"type": "ByUser"}, "rules": [{
                      "subjects": [{"kind": "ServiceAccount",
                                    "serviceAccount": {"name": "rb-busy", "namespace": namespace}}],
                      "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                         "namespaces": ["*"]}]}]}}]
    for obj in objects:
        subprocess.run(["kubectl", "--kubeconfig", str(LAB / "kubeconfig"), "apply", "-f", "-"],
                       input=json.dumps(obj), text=True, capture_output=True, check=True)
    try:
        yield kubeconfig_for(LAB / "kubeconfig", namespace, "rb-busy", tmp_path / "kubeconfig")
    finally:
        for obj in reversed(objects):
            subprocess.run(["kubectl", "--kubeconfig", str(LAB / "kubeconfig"), "delete", "--ignore-not-found",
                            f"{obj['kind'].lower()}s.flowcontrol.apiserver.k8s.io", obj["metadata"]["name"]],
                           capture_output=True, check=False)


def test_429s_from_api_priority_and_fairness_are_retried_until_every_request_gets_through(admin, namespace,
                                                                                            throttled):
    big = "x" * 4000  # lists of 200 such objects take long enough to overlap
    parallel.values(lambda i: admin.apply(config_map(namespace, f"cm{i}", x=big)), range(200))
    busy = clusters.connect(kubeconfig=throttled)
    refused = []
    for _ in range(10):  # until the API server's flow control has taken in the new FlowSchema
        refused = [s for s in _without_retries(busy, namespace) if s == 429]
        if refused:
            break
        time.sleep(1)
    assert refused, "API Priority and Fairness refused nothing: no 429 to retry"
    started = time.monotonic()
    counts = parallel.values(lambda _: len(busy.list("v1", "ConfigMap", namespace=namespace)),
                             range(parallel.WORKERS))
    assert counts == [counts[0]] * parallel.WORKERS and counts[0] >= 200
    assert time.monotonic() - started < 60


def _without_retries(cluster: Cluster, namespace: str) -> list[int]:
    """The statuses of 16 lists sent at once with urllib3's retries off."""
    from urllib3.util.retry import Retry

    def one(_: int) -> int:
        _, url, headers, _, _ = cluster.api_client.param_serialize(
            method="GET", resource_path=f"/api/v1/namespaces/{namespace}/configmaps", query_params=[],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        answer = cluster.api_client.rest_client.pool_manager.request(
            "GET", url, headers=headers, retries=Retry(0, status=0, raise_on_status=False))
        return int(answer.status)
    with ThreadPoolExecutor(parallel.WORKERS) as pool:
        return list(pool.map(one, range(parallel.WORKERS)))

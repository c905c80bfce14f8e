"""Waits watch instead of polling: list, then watch from the list's resourceVersion; a 410 Gone lists again;
bookmarks move the resourceVersion on; a watch that ends is started again; where RBAC allows no watch (or no list),
the wait polls as before. On the fake cluster, and with the real kubernetes client against a local server."""

from __future__ import annotations

import io
import threading
import time

import pytest

from meshreg.cluster import gc as gcs
from meshreg.cluster import wait as waiting
from meshreg.cluster import watching
from meshreg.cluster.errors import PermissionDenied
from meshreg.cluster.watching import Source, Watcher
from support.apiserver import FakeApiServer, write_kubeconfig
from support.fakes import FakeCluster

NS = "meshreg"
REGISTRY = ("apps/v1", "Deployment", "registry")
KEY = ("apps/v1", "Deployment", NS, "registry")
DONE = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "registry", "namespace": NS, "generation": 1},
              "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}


def later(seconds, action):
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def rolling_out() -> FakeCluster:
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake.put(DEPLOYMENT)
    return fake


def finish(fake: FakeCluster):
    def done():
        fake.objects[KEY]["status"] = DONE
        fake.changed(KEY)
    return done


def reads(fake, verb, kind="Deployment"):
    return [r for r in fake.requests if r[0] == verb and r[1][1] == kind]


def test_a_rollout_wait_returns_as_soon_as_the_watch_sees_it_done_and_never_polls():
    fake = rolling_out()
    later(0.3, finish(fake))
    out = io.StringIO()
    started = time.monotonic()
    waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=30, interval=10,
                 progress=waiting.Progress(stream=out))
    assert time.monotonic() - started < 3  # not the 10 s between refreshes of the line
    assert out.getvalue().splitlines() == ["waiting: registry 0/1 (0s)", "waiting: registry 1/1 (0s)"]
    [listed] = reads(fake, "list")
    assert listed[2]["fieldSelector"] == "metadata.name=registry" and reads(fake, "get") == []
    assert reads(fake, "watch")[0][2]["resourceVersion"] == str(int(fake.history[-1][0]) - 1)  # the list's


def test_a_watch_from_a_compacted_resource_version_gets_410_and_lists_again():
    fake = rolling_out()
    watch = fake.watch

    def compacted_first(*args, **kwargs):  # between the list and the watch: a change, and etcd compacted past it
        if not reads(fake, "watch"):
            fake.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": NS}})
            fake.compact()
        return watch(*args, **kwargs)
    fake.watch = compacted_first
    later(0.5, finish(fake))
    waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=30, interval=10,
                 progress=waiting.Progress(quiet=True))
    assert fake.watches[0].sent[0]["type"] == "ERROR" and fake.watches[0].sent[0]["object"]["code"] == 410
    assert len(reads(fake, "list")) == 2  # listed again, then watched from the new list's resourceVersion
    assert reads(fake, "watch")[1][2]["resourceVersion"] > reads(fake, "watch")[0][2]["resourceVersion"]


def test_bookmarks_carry_the_resource_version_into_the_next_watch(monkeypatch):
    monkeypatch.setattr(watching, "WATCH_SECONDS", 1)  # the server ends each watch after a second
    fake = rolling_out()
    fake.bookmark_every = 0.2
    source = Source("apps/v1", "Deployment", NS, name="registry")
    with Watcher(fake, [source]):
        fake.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": NS}})
        deadline = time.monotonic() + 10
        while len(reads(fake, "watch")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    first, second = reads(fake, "watch")[:2]
    assert any(e["type"] == "BOOKMARK" for e in fake.watches[0].sent)
    assert int(second[2]["resourceVersion"]) > int(first[2]["resourceVersion"])  # moved on without a relevant change


def test_without_rbac_for_watch_the_wait_polls_with_get_as_before():
    fake = rolling_out()
    fake.failures[("watch", "Deployment", "*")] = PermissionDenied(
        'watching deployments.apps in namespace meshreg: not permitted (RBAC): User "ci" cannot watch resource '
        '"deployments" in API group "apps"', code=403)
    later(0.3, finish(fake))
    waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=30, interval=0.1,
                 progress=waiting.Progress(quiet=True))
    assert reads(fake, "get")  # polled


def test_without_rbac_for_list_the_wait_polls_the_named_object_with_get():
    fake = rolling_out()
    fake.failures[("list", "Deployment", "*")] = PermissionDenied("listing: not permitted (RBAC)", code=403)
    later(0.3, finish(fake))
    source = Source("apps/v1", "Deployment", NS, name="registry")
    with Watcher(fake, [source]) as watcher:
        assert not watcher.watching and reads(fake, "watch") == []
    waiting.wait(cluster=fake, namespace=NS, workloads=[REGISTRY], timeout=30, interval=0.1,
                 progress=waiting.Progress(quiet=True))
    assert reads(fake, "get")


def test_a_gc_job_is_followed_to_its_end_by_watching_it():
    fake = FakeCluster()
    fake.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "gc-1", "namespace": NS}})
    key = ("batch/v1", "Job", NS, "gc-1")

    def complete():
        fake.objects[key]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        fake.changed(key)
    later(0.3, complete)
    started = time.monotonic()
    job = gcs.follow(cluster=fake, namespace=NS, name="gc-1", timeout=30, interval=10,
                     progress=waiting.Progress(quiet=True))
    assert gcs.finished(job) == "Complete" and time.monotonic() - started < 3


def test_a_job_deleted_while_followed_is_reported():
    fake = FakeCluster()
    fake.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "gc-1", "namespace": NS}})
    later(0.3, lambda: fake.remove(("batch/v1", "Job", NS, "gc-1")))
    with pytest.raises(Exception, match="Job meshreg/gc-1 disappeared while running"):
        gcs.follow(cluster=fake, namespace=NS, name="gc-1", timeout=30, interval=10,
                   progress=waiting.Progress(quiet=True))


def test_leaving_the_watcher_ends_its_watches():
    fake = rolling_out()
    before = set(threading.enumerate())
    with Watcher(fake, [Source("apps/v1", "Deployment", NS, name="registry")]):
        time.sleep(0.2)
        started = set(threading.enumerate()) - before
    assert [t.name for t in started] == ["meshreg-watch-Deployment"]
    assert all(w.closed for w in fake.watches) and not any(t.is_alive() for t in started)


# --- the real kubernetes client against the local server

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


@pytest.fixture
def served(api):
    api.collection(DEPLOYMENTS).put(DEPLOYMENT)
    return api.collection(DEPLOYMENTS)


def test_the_client_lists_then_watches_from_the_lists_resource_version(served, cluster):
    listed = cluster.snapshot("apps/v1", "Deployment", namespace=NS, field_selector="metadata.name=registry")
    assert [o["metadata"]["name"] for o in listed.items] == ["registry"] and listed.resource_version == "101"
    stream = cluster.watch("apps/v1", "Deployment", namespace=NS, field_selector="metadata.name=registry",
                           resource_version=listed.resource_version, timeout_seconds=5)
    later(0.2, lambda: served.put({**DEPLOYMENT, "status": DONE}))
    later(0.4, lambda: served.delete("registry"))
    events = []
    for event in stream:
        events.append((event["type"], event["object"]["metadata"]["resourceVersion"]))
        if event["type"] == "DELETED":
            stream.close()
    assert events == [("MODIFIED", "102"), ("DELETED", "103")]


def test_a_watch_from_a_compacted_version_is_an_error_event_with_code_410(served, cluster):
    served.put({**DEPLOYMENT, "status": DONE})
    served.compact()
    [event] = list(cluster.watch("apps/v1", "Deployment", namespace=NS, resource_version="101", timeout_seconds=5))
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == ("ERROR", 410, "Expired")


def test_bookmarks_arrive_with_only_a_resource_version_and_the_watch_ends_after_its_timeout(served, cluster):
    served.bookmark_every = 0.3
    started = time.monotonic()
    events = list(cluster.watch("apps/v1", "Deployment", namespace=NS, resource_version="101", timeout_seconds=1))
    assert 0.9 < time.monotonic() - started < 3
    assert events and all(e["type"] == "BOOKMARK" and e["object"]["metadata"] == {"resourceVersion": "101"}
                          for e in events)
    query = [r for r in served_requests(cluster) if r["query"].get("watch")][-1]["query"]
    assert (query["allowWatchBookmarks"], query["timeoutSeconds"]) == (["true"], ["1"])


def served_requests(cluster):
    return cluster._test_api.requests


@pytest.fixture
def cluster(api, tmp_path):
    from meshreg.cluster import client as clusters

    connected = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig",
                                                             f"http://127.0.0.1:{api.server_address[1]}"))
    connected._test_api = api
    return connected


def test_closing_from_another_thread_ends_a_silent_watch_at_once(served, cluster):
    stream = cluster.watch("apps/v1", "Deployment", namespace=NS, resource_version="101", timeout_seconds=60)
    later(0.3, stream.close)
    started = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - started < 3


def test_a_watch_the_server_refuses_is_a_permission_error(api, cluster):
    api.routes[("GET", DEPLOYMENTS)] = (403, {
        "kind": "Status", "code": 403, "reason": "Forbidden",
        "message": 'deployments.apps is forbidden: User "ci" cannot watch resource "deployments" in API group "apps" '
                   'in the namespace "meshreg"'})
    with pytest.raises(PermissionDenied, match="not permitted \\(RBAC\\): User \"ci\" cannot watch"):
        cluster.watch("apps/v1", "Deployment", namespace=NS, resource_version="1", timeout_seconds=5)


def test_a_rollout_wait_through_the_client_watches_and_reacts_at_once(served, api, cluster):
    later(0.3, lambda: served.put({**DEPLOYMENT, "status": DONE}))
    started = time.monotonic()
    waiting.wait(cluster=cluster, namespace=NS, workloads=[REGISTRY], timeout=30, interval=10,
                 progress=waiting.Progress(quiet=True))
    assert time.monotonic() - started < 3
    paths = [(r["path"], r["query"].get("watch")) for r in api.requests]
    assert paths[:2] == [(DEPLOYMENTS, None), (DEPLOYMENTS, ["true"])]  # one list, then watches; no GET by name
    assert (f"{DEPLOYMENTS}/registry", None) not in paths


def test_a_server_that_does_not_hold_watches_open_is_polled():
    api = FakeApiServer()
    # an old proxy answering a watch like a plain list: it ends at once, again and again
    api.routes[("GET", DEPLOYMENTS)] = (200, {"kind": "List", "metadata": {"resourceVersion": "5"}, "items": []})
    api.routes[("GET", f"{DEPLOYMENTS}/registry")] = (200, {**DEPLOYMENT, "status": DONE})
    thread = threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        import tempfile
        from pathlib import Path

        from meshreg.cluster import client as clusters

        with tempfile.TemporaryDirectory() as tmp:
            connected = clusters.connect(kubeconfig=write_kubeconfig(Path(tmp) / "kubeconfig",
                                                                     f"http://127.0.0.1:{api.server_address[1]}"))
            waiting.wait(cluster=connected, namespace=NS, workloads=[REGISTRY], timeout=30, interval=0.2,
                         progress=waiting.Progress(quiet=True))
        watches = [r for r in api.requests if r["query"].get("watch")]
        assert len(watches) == watching.SHORT_WATCHES  # then it polled, and found it done
    finally:
        api.shutdown()
        api.server_close()

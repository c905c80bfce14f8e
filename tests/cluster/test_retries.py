"""Retries, with the real kubernetes client against a local server: 429 with Retry-After and connections that break
are sent again where that is safe, with backoff and a bound; a create is never sent twice after it may have been
done."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from meshreg.cluster import client as clusters
from meshreg.cluster import parallel, retries
from meshreg.errors import ClusterError
from support.apiserver import DROP, FakeApiServer, write_kubeconfig

CM = "/api/v1/namespaces/ns/configmaps/cm"
CMS = "/api/v1/namespaces/ns/configmaps"
OBJECT = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}}
BUSY = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "code": 429,
        "message": "Too many requests, please try again later."}


def answers(*sequence):
    """A route answering each request with the next of `sequence` (the last one from then on)."""
    queue = list(sequence)

    def route(request):
        return queue.pop(0) if len(queue) > 1 else queue[0]
    return route


def calls(api, method, path):
    return [r for r in api.requests if (r["method"], r["path"]) == (method, path)]


def test_a_429_is_sent_again_after_the_retry_after_the_server_asks_for(api, cluster):
    api.routes[("GET", CM)] = answers((429, BUSY, [("Retry-After", "1")]), (200, OBJECT))
    started = time.monotonic()
    assert cluster.get("v1", "ConfigMap", "cm", namespace="ns") == OBJECT
    assert len(calls(api, "GET", CM)) == 2 and time.monotonic() - started >= 1


def test_a_create_refused_with_429_is_sent_again_because_the_server_did_nothing(api, cluster):
    api.routes[("POST", CMS)] = answers((429, BUSY, [("Retry-After", "0")]), (201, OBJECT))
    assert cluster.create(OBJECT) == OBJECT
    assert len(calls(api, "POST", CMS)) == 2


def test_429s_that_do_not_end_give_up_after_five_retries_with_the_servers_answer(api, cluster, monkeypatch):
    monkeypatch.setattr(retries, "RETRY_AFTER_MAX", 0.05)  # the bound, shortened for the test
    api.routes[("GET", CM)] = (429, BUSY, [("Retry-After", "30")])
    started = time.monotonic()
    with pytest.raises(ClusterError, match="the API server answered 429 TooManyRequests: Too many requests"):
        cluster.get("v1", "ConfigMap", "cm", namespace="ns")
    assert len(calls(api, "GET", CM)) == 1 + retries.ATTEMPTS and time.monotonic() - started < 5


def test_a_read_whose_connection_broke_is_sent_again(api, cluster):
    api.routes[("GET", CM)] = answers(DROP, DROP, (200, OBJECT))
    assert cluster.get("v1", "ConfigMap", "cm", namespace="ns") == OBJECT
    assert len(calls(api, "GET", CM)) == 3


def test_an_apply_whose_connection_broke_is_sent_again_as_applying_twice_is_applying_once(api, cluster):
    path = f"{CMS}/cm"
    api.routes[("PATCH", path)] = answers(DROP, (200, OBJECT))
    assert cluster.apply(OBJECT) == OBJECT
    assert len(calls(api, "PATCH", path)) == 2


def test_a_create_whose_connection_broke_is_not_sent_again(api, cluster):
    api.routes[("POST", CMS)] = answers(DROP, (201, OBJECT))
    with pytest.raises(ClusterError, match=r"cannot reach the Kubernetes API server at .*Remote end closed"):
        cluster.create(OBJECT)
    assert len(calls(api, "POST", CMS)) == 1  # it may exist now: sending it again could make it twice


def test_a_server_error_with_retry_after_is_retried_for_a_read_but_not_for_a_create(api, cluster):
    unavailable = (503, {"kind": "Status", "code": 503, "message": "the server is currently unable to handle the "
                         "request"}, [("Retry-After", "0")])
    api.routes[("GET", CM)] = answers(unavailable, (200, OBJECT))
    api.routes[("POST", CMS)] = answers(unavailable, (201, OBJECT))
    assert cluster.get("v1", "ConfigMap", "cm", namespace="ns") == OBJECT
    with pytest.raises(ClusterError, match="the API server answered 503"):
        cluster.create(OBJECT)
    assert (len(calls(api, "GET", CM)), len(calls(api, "POST", CMS))) == (2, 1)


def test_a_server_error_without_retry_after_is_not_retried(api, cluster):
    api.routes[("GET", CM)] = answers((500, {"kind": "Status", "code": 500, "message": "etcdserver: leader changed"}),
                                      (200, OBJECT))
    with pytest.raises(ClusterError, match="500"):
        cluster.get("v1", "ConfigMap", "cm", namespace="ns")
    assert len(calls(api, "GET", CM)) == 1


def test_a_refused_connection_is_tried_again_until_the_server_listens(tmp_path):
    with socket.socket() as s:  # a port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}"))
    servers: list[FakeApiServer] = []

    def later():
        time.sleep(0.5)
        servers.append(FakeApiServer(port=port))
        servers[0].serve_forever(poll_interval=0.02)
    threading.Thread(target=later, daemon=True).start()
    try:
        assert cluster.version()["gitVersion"] == "v1.31.0"
    finally:
        if servers:
            servers[0].shutdown()
            servers[0].server_close()


def test_sixteen_requests_at_once_all_get_through_a_burst_of_429s(api, cluster):
    first: set[str] = set()

    def busy_once(request):  # every object's first request is refused, as API Priority and Fairness would
        if request["path"] in first:
            return 200, {**OBJECT, "metadata": {"name": request["path"].rsplit("/", 1)[1]}}
        first.add(request["path"])
        return 429, BUSY, [("Retry-After", "1")]
    names = [f"cm{i}" for i in range(parallel.WORKERS)]
    for name in names:
        api.routes[("GET", f"{CMS}/{name}")] = busy_once
    got = parallel.values(lambda n: cluster.get("v1", "ConfigMap", n, namespace="ns"), names)
    assert [o["metadata"]["name"] for o in got] == names
    assert len(api.requests) == 2 * len(names)


def test_a_server_that_is_down_is_reported_within_seconds(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}"):
        cluster.version()
    assert time.monotonic() - started < 3  # tried again twice, not for the whole backoff

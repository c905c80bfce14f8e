"""What the real kubernetes client sends and reads for `meshreg gc`, checked on a tiny local API server:
the Job from the CronJob, the pod log (plain text, not JSON), and the kubelet's stats through the node proxy."""

from __future__ import annotations

import json

import pytest

from meshreg.cluster import gc as gcs
from meshreg.errors import ClusterError

NS = "registry"
CRON = {"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "images-gc", "namespace": NS, "uid": "cron-uid"},
        "spec": {"schedule": "@daily", "jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "gc", "image": "python"}]}}}}}}
LOG = "retention: nothing\nMESHREG-GC-RESULT {\"blobs\": {\"count\": 2, \"bytes\": 10, \"unknownSize\": 0}}\n"


def json_route(obj) -> tuple:
    return 200, obj


def test_the_job_is_created_by_server_side_apply_at_the_jobs_path_owned_by_the_cronjob(api, cluster):
    api.routes[("GET", f"/apis/batch/v1/namespaces/{NS}/cronjobs/images-gc")] = json_route(CRON)
    job = gcs.start(cluster=cluster, namespace=NS, cron_name="images-gc", dry_run=False, now=lambda: 1700000000)
    [patch] = [r for r in api.requests if r["method"] == "PATCH"]
    assert patch["path"] == f"/apis/batch/v1/namespaces/{NS}/jobs/images-gc-manual-1700000000"
    assert patch["headers"]["content-type"] == "application/apply-patch+yaml"
    assert patch["query"] == {"fieldManager": ["meshreg"]} and log_free(api)
    sent = json.loads(patch["body"])
    assert sent["metadata"]["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "CronJob",
                                                      "name": "images-gc", "uid": "cron-uid", "controller": True}
    assert sent["spec"] == CRON["spec"]["jobTemplate"]["spec"] and job["metadata"]["name"] == sent["metadata"]["name"]


def log_free(api) -> bool:
    return not [r for r in api.requests if r["path"].endswith("/log")]


def test_the_result_is_read_from_the_gc_containers_log_as_plain_text(api, cluster):
    pods = {"kind": "PodList", "items": [{"metadata": {"name": "images-gc-manual-1-abcde", "namespace": NS}}]}
    api.routes[("GET", f"/api/v1/namespaces/{NS}/pods")] = json_route(pods)
    api.routes[("GET", f"/api/v1/namespaces/{NS}/pods/images-gc-manual-1-abcde/log")] = (200, LOG.encode())
    assert gcs.result(cluster=cluster, namespace=NS, job_name="images-gc-manual-1") == (
        {"blobs": {"count": 2, "bytes": 10, "unknownSize": 0}}, "")
    [listing, log] = [r for r in api.requests if r["method"] == "GET"]
    assert listing["query"]["labelSelector"] == ["batch.kubernetes.io/job-name=images-gc-manual-1"]
    assert log["query"] == {"container": ["gc"], "tailLines": ["2000"]}
    assert log["headers"]["accept"] == "*/*"  # a 1.36 API server refuses Accept: text/plain for pods/log
    assert log["headers"]["authorization"] == "Bearer secret-token"


def test_a_log_the_server_cannot_give_is_a_one_line_error(api, cluster):
    api.routes[("GET", f"/api/v1/namespaces/{NS}/pods/p/log")] = (
        400, {"kind": "Status", "code": 400, "message": 'container "gc" in pod "p" is waiting to start'})
    with pytest.raises(ClusterError, match='container "gc" in pod "p" is waiting to start'):
        cluster.log("p", namespace=NS, container="gc")
    assert cluster.log("gone", namespace=NS, container="gc") is None  # 404


def test_the_kubelets_summary_is_read_through_the_node_proxy(api, cluster):
    summary = {"pods": [{"podRef": {"name": "reg-1"}, "volume": [{"pvcRef": {"name": "images-data"},
                                                                  "usedBytes": 7, "capacityBytes": 9}]}]}
    api.routes[("GET", "/api/v1/nodes/node-a/proxy/stats/summary")] = json_route(summary)
    assert cluster.node_summary("node-a") == summary


def test_a_summary_the_api_cannot_give_is_an_error_with_the_apis_reason(api, cluster):
    api.routes[("GET", "/api/v1/nodes/node-a/proxy/stats/summary")] = (
        503, {"kind": "Status", "code": 503, "message": "error trying to reach service: dial tcp 10.0.0.1:10250: "
                                                         "connect: connection refused"})
    with pytest.raises(ClusterError, match=r"reading the kubelet's stats of node node-a: .*connection refused"):
        cluster.node_summary("node-a")
    api.routes[("GET", "/api/v1/nodes/node-b/proxy/stats/summary")] = (403, {
        "kind": "Status", "code": 403, "reason": "Forbidden",
        "message": 'nodes "node-b" is forbidden: User "dev" cannot get resource "nodes/proxy" in API group "" at '
                   "the cluster scope"})
    with pytest.raises(ClusterError, match="not permitted"):
        cluster.node_summary("node-b")


def test_a_log_no_kubelet_can_serve_leaves_the_result_unknown_with_the_reason(api, cluster):
    pods = {"kind": "PodList", "items": [{"metadata": {"name": "j-1", "namespace": NS}}]}
    api.routes[("GET", f"/api/v1/namespaces/{NS}/pods")] = json_route(pods)
    api.routes[("GET", f"/api/v1/namespaces/{NS}/pods/j-1/log")] = (
        500, {"kind": "Status", "code": 500, "message": "dial tcp 10.0.0.1:10250: connect: connection refused"})
    result, why = gcs.result(cluster=cluster, namespace=NS, job_name="j")
    assert result is None and "connection refused" in why

"""The requests doctor and verify add to meshreg.cluster, sent by the real kubernetes client to a tiny local server:
access reviews, object creation, pod logs, and the Warning headers of a dry run."""

from __future__ import annotations

import json

import pytest

from meshreg.doctor.api import review
from meshreg.errors import ClusterError
from support.apiserver import only

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe", "namespace": "builds"},
       "spec": {"template": {"spec": {"containers": [{"name": "probe", "image": "curl"}]}}}}


def test_an_access_review_posts_the_resource_attributes_and_reads_allowed(api, cluster):
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    api.routes[("POST", path)] = (201, {"kind": "SelfSubjectAccessReview", "status": {
        "allowed": False, "reason": "no RBAC policy matched"}})
    assert review(cluster, verb="patch", api_version="apps/v1", kind="Deployment", namespace="meshreg") is False
    sent = only(api, "POST")
    assert sent["path"] == path and sent["headers"]["content-type"] == "application/json"
    assert json.loads(sent["body"])["spec"] == {"resourceAttributes": {
        "verb": "patch", "group": "apps", "resource": "deployments", "namespace": "meshreg"}}


def test_create_posts_to_the_collection_with_the_field_manager(api, cluster):
    api.routes[("POST", "/apis/batch/v1/namespaces/builds/jobs")] = (201, {**JOB, "metadata": {
        **JOB["metadata"], "uid": "u-1"}})
    live = cluster.create(JOB, field_manager="meshreg-verify")
    sent = only(api, "POST")
    assert sent["query"] == {"fieldManager": ["meshreg-verify"]} and json.loads(sent["body"]) == JOB
    assert live["metadata"]["uid"] == "u-1"


def test_create_of_an_existing_object_is_a_one_line_conflict(api, cluster):
    api.routes[("POST", "/apis/batch/v1/namespaces/builds/jobs")] = (409, {
        "kind": "Status", "reason": "AlreadyExists", "code": 409, "message": 'jobs.batch "probe" already exists'})
    with pytest.raises(ClusterError, match=r'^creating Job builds/probe: already exists$'):
        cluster.create(JOB)


def test_logs_are_read_as_text_from_the_container(api, cluster):
    path = "/api/v1/namespaces/builds/pods/probe-x1/log"
    api.routes[("GET", path)] = (200, 'meshreg-probe {"event":"end"}\n')
    assert cluster.log("probe-x1", namespace="builds", container="probe", limit_bytes=1 << 20) == \
        'meshreg-probe {"event":"end"}\n'
    sent = only(api, "GET")
    assert sent["path"] == path and sent["query"]["container"] == ["probe"]
    assert sent["query"]["limitBytes"] == [str(1 << 20)]


def test_logs_the_kubelet_cannot_serve_are_a_cluster_error_with_the_servers_message(api, cluster):
    api.routes[("GET", "/api/v1/namespaces/builds/pods/probe-x1/log")] = (500, {
        "kind": "Status", "code": 500, "message": 'Get "https://10.0.0.1:10250/containerLogs/builds/probe-x1/probe"'
                                                  ": dial tcp 10.0.0.1:10250: connect: connection refused"})
    refused = r"^reading the log of Pod builds/probe-x1: the API server answered 500: Get .*connection refused$"
    with pytest.raises(ClusterError, match=refused):
        cluster.log("probe-x1", namespace="builds", container="probe")


def test_a_dry_run_apply_collects_every_warning_header(api, cluster):
    path = "/apis/apps/v1/namespaces/meshreg/daemonsets/node-proxy"
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-proxy", "namespace": "meshreg"}}
    api.routes[("PATCH", path)] = (200, obj, [
        ("Warning", '299 - "would violate PodSecurity \\"restricted:latest\\": hostPort (container \\"x\\")"'),
        ("Warning", '299 - "spec.template.spec.containers[0].ports[0]: duplicate port definition"')])
    cluster.apply(obj, dry_run=True)
    assert cluster.warnings == [
        'DaemonSet meshreg/node-proxy: would violate PodSecurity "restricted:latest": hostPort (container "x")',
        "DaemonSet meshreg/node-proxy: spec.template.spec.containers[0].ports[0]: duplicate port definition"]

"""Each way the API server refuses, replayed through the real kubernetes client from Status bodies captured on a
real kube-apiserver (lab_statuses.json): the line a user sees, and who it says refused. An RBAC denial and an
admission refusal both arrive as 403 Forbidden and must never read alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshreg.cluster import client as clusters
from meshreg.cluster import errors
from support.apiserver import istio_cluster, run_cli, writes

STATUSES = json.loads((Path(__file__).with_name("lab_statuses.json")).read_text())["statuses"]
LABELS = {"app.kubernetes.io/managed-by": "meshreg", "app.kubernetes.io/instance": "meshreg"}


def _obj(api_version, kind, name):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "meshreg",
                                                                  "labels": LABELS}}


PVC = _obj("v1", "PersistentVolumeClaim", "registry-data")
CONFIG = _obj("v1", "ConfigMap", "registry-config")
DEPLOYMENT = _obj("apps/v1", "Deployment", "registry")
PROXY = _obj("apps/v1", "DaemonSet", "node-proxy")
ROUTE = _obj("networking.istio.io/v1", "VirtualService", "node-proxy")


def path(obj):
    return clusters.object_path(obj["apiVersion"], obj["kind"], namespace="meshreg", name=obj["metadata"]["name"])


def refuse(api, obj, case):
    """Route `obj`'s PATCH to the captured answer `case`."""
    api.routes[("PATCH", path(obj))] = (STATUSES[case]["code"], STATUSES[case]["body"])


CASES = [
    ("rbac_patch_pvc", PVC, errors.PermissionDenied,
     'PersistentVolumeClaim meshreg/registry-data: not permitted (RBAC): User "nobody" cannot patch resource '
     '"persistentvolumeclaims" in API group "" in the namespace "meshreg"'),
    ("quota_pvc", PVC, errors.AdmissionDenied,
     "PersistentVolumeClaim meshreg/registry-data: refused by a ResourceQuota (not a permission problem): exceeded "
     "quota: q, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=0, limited: "
     "persistentvolumeclaims=0"),
    ("resize_bound_no_class", PVC, errors.AdmissionDenied,
     "PersistentVolumeClaim meshreg/registry-data: refused by admission (not a permission problem): only "
     "dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
    ("shrink_bound", PVC, errors.InvalidObject,
     "PersistentVolumeClaim meshreg/registry-data: invalid: spec.resources.requests.storage: Forbidden: field can "
     "not be less than status.capacity"),
    ("resize_unbound_no_expansion", PVC, errors.InvalidObject,
     "PersistentVolumeClaim meshreg/registry-data: invalid: spec: Forbidden: spec is immutable after creation "
     "except resources.requests and volumeAttributesClassName for bound claims"),
    ("invalid_deployment", DEPLOYMENT, errors.InvalidObject,
     'Deployment meshreg/registry: invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0; '
     'spec.template.metadata.labels: Invalid value: {"a":"c"}: `selector` does not match template `labels`'),
    ("invalid_virtualservice_cel", ROUTE, errors.InvalidObject,
     'VirtualService meshreg/node-proxy: invalid: spec.http[0].timeout: Invalid value: "0s": must be a valid '
     "duration greater than 1ms"),
    ("webhook_denied", CONFIG, errors.AdmissionDenied,
     'ConfigMap meshreg/registry-config: refused by admission webhook "validate.kyverno-resource-validating-webhook-'
     'cfg.example.com": policy Deployment/capw/registry for resource violation: require-labels: check-team: '
     "'validation error: label team is required. rule check-team failed at path /metadata/labels/team/'"),
    ("vap_denied", PROXY, errors.AdmissionDenied,
     "DaemonSet meshreg/node-proxy: refused by ValidatingAdmissionPolicy no-hostport (binding no-hostport-capv): "
     "hostPort is not allowed in this cluster"),
    ("vap_denied_forbidden", PROXY, errors.AdmissionDenied,
     "DaemonSet meshreg/node-proxy: refused by ValidatingAdmissionPolicy no-hostport-403 (binding "
     "no-hostport-capv2): hostPort is not allowed in this cluster"),
    ("namespace_terminating", CONFIG, errors.AdmissionDenied,
     "ConfigMap meshreg/registry-config: refused: namespace capt is being deleted; wait until it is gone (kubectl "
     "get namespace capt), then run meshreg up again"),
    ("namespace_missing", CONFIG, errors.NotFound,
     "ConfigMap meshreg/registry-config: namespace nonexistent does not exist"),
    ("conflict", CONFIG, errors.ConflictError,
     "ConfigMap meshreg/registry-config: conflict: fields .data.a, .metadata.labels are owned by kubectl-edit; "
     "rerun with --force-conflicts to take them over"),
]


@pytest.mark.parametrize("case, obj, kind, line", CASES, ids=[c[0] for c in CASES])
def test_each_refusal_reads_as_who_refused_with_the_servers_reason(api, cluster, case, obj, kind, line):
    refuse(api, obj, case)
    with pytest.raises(errors.ApiError) as e:
        cluster.apply(obj, dry_run=True)
    assert (type(e.value), str(e.value)) == (kind, line)
    assert e.value.status == STATUSES[case]["body"]


def test_a_webhook_that_cannot_be_called_reads_as_failing_closed(api, cluster):
    refuse(api, CONFIG, "webhook_unreachable")
    with pytest.raises(errors.AdmissionDenied, match=r'^ConfigMap meshreg/registry-config: admission webhook '
                       r'"validate.gatekeeper-validating-webhook-configuration.example.com" could not be called, and '
                       r"it is set to fail closed \(failurePolicy: Fail\), so every matching request is refused until "
                       r'it answers: failed to call webhook: Post "https://127.0.0.1:\d+/v1/admit\?timeout=3s": dial '
                       r"tcp 127.0.0.1:\d+: connect: connection refused$"):
        cluster.apply(CONFIG, dry_run=True)


def test_a_pod_security_refusal_names_pod_security(api, cluster):
    pod = _obj("v1", "Pod", "p")
    refuse(api, pod, "podsecurity_pod")
    with pytest.raises(errors.AdmissionDenied, match=r'^Pod meshreg/p: refused by Pod Security admission: violates '
                       r'PodSecurity "baseline:latest": hostPort \(container "istio-proxy" uses hostPort 5000\)$'):
        cluster.apply(pod)


def test_an_rbac_denied_list_names_what_was_listed(api, cluster):
    api.routes[("GET", "/apis/apps/v1/namespaces/meshreg/deployments")] = (
        STATUSES["rbac_list_deployments"]["code"], STATUSES["rbac_list_deployments"]["body"])
    with pytest.raises(errors.PermissionDenied, match=r'^listing deployments.apps in namespace meshreg: not '
                       r'permitted \(RBAC\): User "nobody" cannot list resource "deployments" in API group "apps" in '
                       r'the namespace "meshreg"$'):
        cluster.list("apps/v1", "Deployment", namespace="meshreg")


def test_rejected_credentials_read_as_unauthorized(api, cluster):
    api.routes[("GET", "/version")] = (STATUSES["unauthorized"]["code"], STATUSES["unauthorized"]["body"])
    with pytest.raises(errors.Unauthorized, match=r"^unauthorized: the server rejected the credentials "
                                                  r"\(Unauthorized\)$"):
        cluster.version()


def test_the_servers_warning_headers_are_kept_with_the_object_they_are_about(api, cluster):
    api.routes[("PATCH", path(PROXY))] = (201, PROXY, [("Warning", w) for w in STATUSES["podsecurity_warning"]
                                                       ["warnings"]])
    cluster.apply(PROXY, dry_run=True)
    assert cluster.warnings == ['DaemonSet meshreg/node-proxy: would violate PodSecurity "baseline:latest": hostPort '
                                '(container "istio-proxy" uses hostPort 5000)']


def existing_namespace(api):
    """The tiny server as a cluster where `up` ran before: the Namespace exists and is this instance's."""
    istio_cluster(api)
    api.routes[("GET", "/api/v1/namespaces/meshreg")] = (200, {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshreg", "labels": LABELS}})


def test_up_reports_every_refusal_of_the_dry_run_at_once_and_changes_nothing(api, tmp_path, monkeypatch):
    existing_namespace(api)
    refuse(api, PVC, "quota_pvc")
    refuse(api, PROXY, "vap_denied")
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q")
    assert result.exit_code == 1
    assert result.output.splitlines()[-3:] == [
        "meshreg: error: 2 objects were refused; nothing was changed:",
        "  PersistentVolumeClaim meshreg/registry-data: refused by a ResourceQuota (not a permission problem): "
        "exceeded quota: q, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=0, limited: "
        "persistentvolumeclaims=0",
        "  DaemonSet meshreg/node-proxy: refused by ValidatingAdmissionPolicy no-hostport (binding "
        "no-hostport-capv): hostPort is not allowed in this cluster"]
    sent = [r for r in api.requests if r["method"] != "GET" and not r["path"].endswith("reviews")]
    assert len(sent) == 19 and all(r["query"].get("dryRun") == ["All"] for r in sent) and not writes(api)


def test_up_on_a_new_namespace_deletes_it_again_when_the_dry_run_refuses(api, tmp_path, monkeypatch):
    istio_cluster(api)
    refuse(api, CONFIG, "webhook_denied")
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        'meshreg: error: ConfigMap meshreg/registry-config: refused by admission webhook "validate.kyverno')
    assert result.output.splitlines()[-1].endswith(
        "; nothing was changed; Namespace meshreg was created for the check and is deleted again")
    real = [(r["method"], r["path"]) for r in writes(api)]
    assert real == [("PATCH", "/api/v1/namespaces/meshreg"), ("DELETE", "/api/v1/namespaces/meshreg")]


def test_up_says_what_was_applied_when_the_real_apply_refuses_after_a_clean_dry_run(api, tmp_path, monkeypatch):
    existing_namespace(api)
    quota = STATUSES["quota_pvc"]
    api.routes[("PATCH", path(PVC))] = lambda request: (201, json.loads(request["body"])) if \
        request["query"].get("dryRun") else (quota["code"], quota["body"])
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q")
    assert result.exit_code == 1
    line = result.output.splitlines()[-1]
    assert line.startswith("meshreg: error: PersistentVolumeClaim meshreg/registry-data: refused by a ResourceQuota")
    assert ("; refused on the real apply, after the dry run had passed; applied before: ServiceAccount "
            "meshreg/registry (created)") in line
    assert "AuthorizationPolicy meshreg/registry-deny-writes (created)" in line
    assert line.endswith("; not applied: Deployment meshreg/registry, DaemonSet meshreg/node-proxy, "
                         "ConfigMap kube-public/local-registry-hosting")
    assert "created     PeerAuthentication meshreg/registry" in result.output


def test_up_prints_the_servers_warnings_from_the_dry_run(api, tmp_path, monkeypatch):
    existing_namespace(api)
    api.routes[("PATCH", path(PROXY))] = lambda request: (201, json.loads(request["body"]), [
        ("Warning", STATUSES["podsecurity_warning"]["warnings"][0])])
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q", "--no-wait")
    assert result.exit_code == 0, result.output
    assert result.output.count('meshreg: warning: DaemonSet meshreg/node-proxy: would violate PodSecurity '
                               '"baseline:latest": hostPort (container "istio-proxy" uses hostPort 5000)') == 1

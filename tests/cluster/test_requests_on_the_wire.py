"""The requests the real kubernetes client sends for meshreg.cluster, checked on a tiny local API server."""

from __future__ import annotations

import json

import pytest

from meshreg.cluster import apply as applying
from meshreg.cluster import client as clusters
from meshreg.errors import ClusterError, UsageError
from support.apiserver import istio_cluster, only, run_cli, write_kubeconfig, writes

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "registry", "namespace": "meshreg", "labels": {
                  "app.kubernetes.io/managed-by": "meshreg", "app.kubernetes.io/instance": "meshreg"}},
              "spec": {"replicas": 1}}
POLICY = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "registry-deny-writes", "namespace": "meshreg"}, "spec": {"action": "DENY"}}
HOSTING = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"}, "data": {}}


def test_apply_patches_the_deployment_path_with_the_apply_patch_content_type(api, cluster):
    cluster.apply(DEPLOYMENT)
    sent = only(api, "PATCH")
    assert sent["path"] == "/apis/apps/v1/namespaces/meshreg/deployments/registry"
    assert sent["headers"]["content-type"] == "application/apply-patch+yaml"
    assert json.loads(sent["body"]) == DEPLOYMENT


def test_apply_names_meshreg_as_field_manager_and_does_not_force(api, cluster):
    cluster.apply(DEPLOYMENT)
    assert only(api, "PATCH")["query"] == {"fieldManager": ["meshreg"]}


def test_apply_sends_force_true_only_when_asked(api, cluster):
    cluster.apply(DEPLOYMENT, force=True)
    assert only(api, "PATCH")["query"]["force"] == ["true"]


def test_dry_run_apply_sends_dry_run_all(api, cluster):
    cluster.apply(DEPLOYMENT, dry_run=True)
    assert only(api, "PATCH")["query"]["dryRun"] == ["All"]


def test_requests_carry_the_kubeconfig_bearer_token(api, cluster):
    cluster.apply(DEPLOYMENT)
    assert only(api, "PATCH")["headers"]["authorization"] == "Bearer secret-token"


def test_istio_policy_is_applied_at_its_custom_resource_path(api, cluster):
    cluster.apply(POLICY)
    assert only(api, "PATCH")["path"] == \
        "/apis/security.istio.io/v1/namespaces/meshreg/authorizationpolicies/registry-deny-writes"


def test_hosting_configmap_is_read_from_kube_public(api, cluster):
    assert cluster.get("v1", "ConfigMap", "local-registry-hosting", namespace="kube-public") is None
    assert only(api, "GET")["path"] == "/api/v1/namespaces/kube-public/configmaps/local-registry-hosting"


def test_prune_reads_one_list_per_kind_and_deletes_only_this_instances_strays(api, cluster):
    theirs = {**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"], "name": "theirs", "labels": {
        "app.kubernetes.io/managed-by": "meshreg", "app.kubernetes.io/instance": "other"}}}
    api.routes[("GET", "/apis/apps/v1/namespaces/meshreg/deployments")] = (200, {"items": [DEPLOYMENT, theirs]})
    applying.apply(manifests=[], cluster=cluster, prune={"meshreg": applying.PRUNABLE})  # nothing rendered: no
    assert [r for r in api.requests if r["method"] == "DELETE"] == []                    # instance, nothing pruned
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshreg", "labels": DEPLOYMENT[
        "metadata"]["labels"]}}
    api.routes[("GET", "/api/v1/namespaces/meshreg")] = (200, namespace)
    api.requests.clear()
    applying.apply(manifests=[namespace], cluster=cluster, prune={"meshreg": applying.PRUNABLE})
    lists = [r["path"] for r in api.requests if r["method"] == "GET" and r["path"] != "/api/v1/namespaces/meshreg"]
    assert sorted(lists) == sorted(clusters.object_path(av, kind, namespace="meshreg")
                                   for av, kind in applying.PRUNABLE)
    assert all(r["query"] == {} for r in api.requests if r["method"] == "GET")  # no selector: the same list
    deletes = [r for r in api.requests if r["method"] == "DELETE"]              # answers "whose is this?" too
    assert [(r["path"], json.loads(r["body"]).get("dryRun")) for r in deletes] == [
        ("/apis/apps/v1/namespaces/meshreg/deployments/registry", ["All"]),
        ("/apis/apps/v1/namespaces/meshreg/deployments/registry", None)]


def test_delete_sends_the_propagation_policy_in_delete_options(api, cluster):
    cluster.delete("apps/v1", "DaemonSet", "node-proxy", namespace="meshreg", propagation="Foreground")
    sent = only(api, "DELETE")
    assert sent["path"] == "/apis/apps/v1/namespaces/meshreg/daemonsets/node-proxy"
    assert json.loads(sent["body"])["propagationPolicy"] == "Foreground"


def test_a_dry_run_delete_says_so_in_delete_options_where_the_server_reads_it(api, cluster):
    # with a body, kube-apiserver decodes DeleteOptions from the body alone: a dryRun query parameter beside it is
    # ignored and the object is really deleted (seen on the lab's kube-apiserver 1.36)
    cluster.delete("v1", "Service", "registry", namespace="meshreg", dry_run=True)
    sent = only(api, "DELETE")
    assert json.loads(sent["body"]) == {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                                        "dryRun": ["All"]}


def test_delete_of_a_missing_object_reports_it_gone_without_error(api, cluster):
    api.routes[("DELETE", "/api/v1/namespaces/meshreg/services/registry")] = (404, {"kind": "Status", "code": 404})
    assert cluster.delete("v1", "Service", "registry", namespace="meshreg") is False


def test_conflict_names_the_other_field_manager(api, cluster):
    api.routes[("PATCH", "/apis/apps/v1/namespaces/meshreg/deployments/registry")] = (409, {
        "kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas',
        "details": {"causes": [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                "message": 'conflict with "kubectl-edit" using apps/v1'}]}})
    with pytest.raises(clusters.ConflictError) as e:
        cluster.apply(DEPLOYMENT)
    assert e.value.managers == ["kubectl-edit"]
    assert ".spec.replicas" in str(e.value) and "--force-conflicts" in str(e.value)


def test_invalid_object_reports_the_servers_own_message(api, cluster):
    message = 'Deployment.apps "registry" is invalid: spec.replicas: Invalid value: -1: must be >= 0'
    api.routes[("PATCH", "/apis/apps/v1/namespaces/meshreg/deployments/registry")] = (422, {
        "kind": "Status", "reason": "Invalid", "code": 422, "message": message})
    with pytest.raises(ClusterError, match=r"spec.replicas: Invalid value: -1"):
        cluster.apply(DEPLOYMENT)


def test_missing_istio_group_reads_as_no_served_resources(api, cluster):
    assert cluster.served("security.istio.io/v1") == set()
    assert only(api, "GET")["path"] == "/apis/security.istio.io/v1"


def test_served_resources_come_from_the_group_discovery_document(api, cluster):
    api.routes[("GET", "/apis/security.istio.io/v1")] = (200, {"kind": "APIResourceList", "resources": [
        {"name": "authorizationpolicies"}, {"name": "authorizationpolicies/status"}]})
    assert cluster.served("security.istio.io/v1") == {"authorizationpolicies"}


def test_unreachable_server_error_names_the_server(tmp_path):
    with socket_that_refuses() as port:
        url = f"http://127.0.0.1:{port}"
        cl = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "k", url))
        with pytest.raises(ClusterError, match=f"cannot reach the Kubernetes API server at {url}"):
            cl.version()


class socket_that_refuses:
    """A 127.0.0.1 port nobody listens on (bound then closed)."""

    def __enter__(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc):
        return False


def test_unknown_context_fails_before_any_request(api, tmp_path):
    path = write_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{api.server_address[1]}")
    with pytest.raises(UsageError, match="context 'prod' is not in the kubeconfig \\(contexts: dev\\)"):
        clusters.connect(kubeconfig=path, context="prod")
    assert api.requests == []


def test_unreadable_kubeconfig_is_a_one_line_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        clusters.connect(kubeconfig=str(tmp_path / "absent"))


def test_kubeconfig_env_list_skips_missing_files(api, tmp_path, monkeypatch):
    path = write_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{api.server_address[1]}")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{path}")
    assert clusters.connect().server == f"http://127.0.0.1:{api.server_address[1]}"


def test_no_kubeconfig_outside_a_pod_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UsageError, match="no kubeconfig found"):
        clusters.connect()


def test_up_dry_run_sends_only_dry_run_patches_and_prints_in_dependency_order(api, tmp_path, monkeypatch):
    istio_cluster(api)
    result = run_cli(api, tmp_path, monkeypatch, "up", "--dry-run")
    assert result.exit_code == 0, result.output
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    # the rest has no namespace yet; the parent's answer (no namespace) says so before any other is asked
    assert sorted(r["path"] for r in patches) == ["/api/v1/namespaces/kube-public/configmaps/local-registry-hosting",
                                                  "/api/v1/namespaces/meshreg",
                                                  "/api/v1/namespaces/meshreg/configmaps/meshreg-meshreg"]
    assert all(r["query"]["dryRun"] == ["All"] for r in patches)
    assert [r for r in writes(api) if r["method"] != "PATCH"] == []
    lines = [line.split()[-1] for line in result.output.splitlines() if line.startswith("created ")]
    assert lines[0] == "meshreg" and lines[-1] == "kube-public/local-registry-hosting" and len(lines) == 19


def test_up_applies_every_object_with_server_side_apply_after_its_dry_run(api, tmp_path, monkeypatch):
    istio_cluster(api)
    result = run_cli(api, tmp_path, monkeypatch, "up", "--no-wait")
    assert result.exit_code == 0, result.output
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    real = [r["path"] for r in patches if "dryRun" not in r["query"]]
    checked = [r["path"] for r in patches if r["query"].get("dryRun") == ["All"]]
    # the new Namespace is created, not dry-run; before it, the parent's dry run was sent alone (and kept)
    parent = "/api/v1/namespaces/meshreg/configmaps/meshreg-meshreg"
    assert len(real) == 19 and sorted(checked) == sorted(real[1:])
    assert patches[0]["path"] == parent and real[0] == "/api/v1/namespaces/meshreg" and patches[1]["path"] == real[0]
    assert patches.index(next(r for r in patches if "dryRun" not in r["query"] and r is not patches[1])) > \
        max(patches.index(r) for r in patches if "dryRun" in r["query"])  # nothing else before every check


def test_up_applies_policies_before_workloads_and_publishes_last(api, tmp_path, monkeypatch):
    istio_cluster(api)
    assert run_cli(api, tmp_path, monkeypatch, "up", "--no-wait").exit_code == 0
    real = [r["path"] for r in api.requests if r["method"] == "PATCH" and "dryRun" not in r["query"]]
    last_of_wave_1 = max(i for i, p in enumerate(real) if "authorizationpolicies" in p or "serviceaccounts" in p)
    assert real.index("/apis/apps/v1/namespaces/meshreg/deployments/registry") > last_of_wave_1
    assert real.index("/api/v1/namespaces/kube-public/configmaps/local-registry-hosting") > last_of_wave_1


def test_up_against_a_cluster_without_istio_stops_after_discovery(api, tmp_path, monkeypatch):
    result = run_cli(api, tmp_path, monkeypatch, "up")
    assert result.exit_code == 1
    assert "Istio is not installed on http://127.0.0.1" in result.output
    assert writes(api) == []


def rolled_out(api, pods_by_selector):
    """A finished rollout of the default render (the workloads listed and watched as the API server serves them)
    whose pods are `pods_by_selector` {selector: [pod]}."""
    api.collection("/apis/apps/v1/namespaces/meshreg/deployments").put({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "generation": 1},
        "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                            "availableReplicas": 1}})
    api.collection("/apis/apps/v1/namespaces/meshreg/daemonsets").put({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-proxy", "generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "updatedNumberScheduled": 1,
                   "numberReady": 1}})
    api.routes[("GET", "/api/v1/namespaces/meshreg/pods")] = lambda request: (200, {"items": [
        p for selector, pods in pods_by_selector.items() if request["query"]["labelSelector"] == [selector]
        for p in pods]})


def pod(name, *containers):
    return {"metadata": {"name": name, "namespace": "meshreg"}, "status": {"phase": "Running"},
            "spec": {"containers": [{"name": n, "image": image} for n, image in containers]}}


REGISTRY_PODS = ("app.kubernetes.io/instance=meshreg,app.kubernetes.io/name=registry,"
                 "meshreg.dev/registry=registry")
PROXY_PODS = "app.kubernetes.io/instance=meshreg,app.kubernetes.io/name=node-proxy,meshreg.dev/node-proxy=meshreg"


def test_up_fails_when_a_registry_pod_came_up_without_the_sidecar(api, tmp_path, monkeypatch):
    istio_cluster(api)
    rolled_out(api, {REGISTRY_PODS: [pod("registry-7c9d-x2x", ("registry", "registry:2.8.3"))],
                     PROXY_PODS: [pod("node-proxy-abcde", ("istio-proxy", "docker.io/istio/proxyv2:1.30.3"))]})
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "meshreg: error: not enforced: registry pod meshreg/registry-7c9d-x2x has no istio-proxy sidecar, so nothing "
        "enforces mTLS or the AuthorizationPolicies there: any pod can push. Fix sidecar injection")
    assert "kubectl -n meshreg rollout restart deployment/registry (all 19 objects were applied)" in result.output


def test_up_succeeds_when_the_registry_pod_has_the_sidecar_and_the_gateway_was_injected(api, tmp_path, monkeypatch):
    istio_cluster(api)
    rolled_out(api, {REGISTRY_PODS: [pod("registry-7c9d-x2x", ("registry", "registry:2.8.3"),
                                         ("istio-proxy", "docker.io/istio/proxyv2:1.30.3"))],
                     PROXY_PODS: [pod("node-proxy-abcde", ("istio-proxy", "docker.io/istio/proxyv2:1.30.3"))]})
    result = run_cli(api, tmp_path, monkeypatch, "up", "-q")
    assert result.exit_code == 0, result.output
    assert "push (in-cluster writers): registry.meshreg.svc.cluster.local:5000" in result.output


def test_discovery_of_a_group_is_read_once_per_connection(api, cluster):
    istio_cluster(api)
    assert cluster.served("security.istio.io/v1") == cluster.served("security.istio.io/v1") == {
        "authorizationpolicies", "peerauthentications"}
    assert only(api, "GET")["path"] == "/apis/security.istio.io/v1"


def test_a_previous_container_log_is_read_as_text_from_the_pod_log_path(api, cluster):
    path = "/api/v1/namespaces/gitpod-registry/pods/mirror-0/log"
    api.routes[("GET", path)] = (200, 'panic: Get "http://x/v2/": EOF\n')
    text = cluster.log("mirror-0", namespace="gitpod-registry", container="registry", previous=True, tail=40)
    assert text == 'panic: Get "http://x/v2/": EOF\n'
    [request] = [r for r in api.requests if r["path"] == path]
    assert request["query"] == {"container": ["registry"], "tailLines": ["40"], "previous": ["true"]}
    assert request["headers"]["accept"] == "*/*"  # a real API server answers text/plain with 406


def test_a_log_with_no_previous_run_or_denied_is_a_cluster_error_and_a_gone_pod_is_none(api, cluster):
    path = "/api/v1/namespaces/ns/pods/p/log"
    api.routes[("GET", path)] = (400, {"kind": "Status", "code": 400, "reason": "BadRequest",
                                      "message": 'previous terminated container "registry" in pod "p" not found'})
    with pytest.raises(ClusterError, match='previous terminated container "registry" in pod "p" not found'):
        cluster.log("p", namespace="ns", container="registry", previous=True)
    assert cluster.log("gone", namespace="ns", container="registry") is None
    api.routes[("GET", path)] = (403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                                      "message": 'pods "p" is forbidden: User "dev" cannot get resource "pods/log"'})
    with pytest.raises(ClusterError, match=r"^reading the log of Pod ns/p: not permitted \(RBAC\)"):
        cluster.log("p", namespace="ns", container="registry")


def test_the_ingress_kinds_are_applied_at_their_paths_in_the_gateway_namespace(api, cluster):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-tls-cacert",
                                                                 "namespace": "istio-system"}, "data": {}}
    authn = {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
             "metadata": {"name": "meshreg-dev-ingress", "namespace": "istio-system"}, "spec": {}}
    cluster.apply(secret)
    cluster.apply(authn)
    assert [r["path"] for r in api.requests if r["method"] == "PATCH"] == [
        "/api/v1/namespaces/istio-system/secrets/registry-tls-cacert",
        "/apis/security.istio.io/v1/namespaces/istio-system/requestauthentications/meshreg-dev-ingress"]


def test_ingress_pruning_lists_secrets_only_in_the_gateway_namespace(api, cluster):
    from meshreg.cluster import live as lives
    from meshreg.cluster.ingress import KINDS

    lives.read(manifests=[], cluster=cluster, scope={"istio-system": KINDS})
    listed = [r["path"] for r in api.requests if r["method"] == "GET"]
    assert "/api/v1/namespaces/istio-system/secrets" in listed and all("/istio-system/" in p for p in listed)


def test_prune_asks_discovery_before_listing_gateway_api_gateways(api, cluster, tmp_path):
    kinds = applying.served(cluster, applying.PRUNABLE)
    assert "/apis/gateway.networking.k8s.io/v1" in [r["path"] for r in api.requests]  # 404: no Gateway API
    assert ("gateway.networking.k8s.io/v1", "Gateway") not in kinds
    api.routes[("GET", "/apis/gateway.networking.k8s.io/v1")] = (200, {"resources": [{"name": "gateways"}]})
    fresh = clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "k2", f"http://127.0.0.1:{api.server_address[1]}"))
    assert ("gateway.networking.k8s.io/v1", "Gateway") in applying.served(fresh, applying.PRUNABLE)

"""doctor's API, Istio, trust-domain and writer checks on the fake cluster."""

from __future__ import annotations

import pytest

from meshreg import doctor
from meshreg.errors import ClusterError
from support.doctor_helpers import WRITERS, check, cluster_with_istio, facts, lines, namespace, pod, service_account
from support.fakes import ISTIOD, FakeCluster


def test_api_reports_the_server_version():
    [version, access] = check(cluster_with_istio(), "api")
    assert (version.status, version.message) == ("OK", "Kubernetes v1.31.0 at https://fake.invalid:6443")
    assert access.status == "OK" and "permissions checked" in access.message


def test_api_fails_naming_each_verb_and_resource_the_caller_may_not_use():
    fake = cluster_with_istio()
    fake.allowed = lambda a: not (a["resource"] == "daemonsets" or (a["verb"] == "delete" and a["resource"] ==
                                                                       "services" and a.get("namespace") == "meshreg"))
    [_, access] = check(fake, "api")
    assert access.status == "FAIL"
    assert "create, delete, get, list, patch daemonsets.apps in meshreg" in access.message
    assert "delete services in meshreg" in access.message and "kubectl auth can-i" in access.fix


def test_api_asks_one_access_review_per_verb_resource_and_namespace_where_rules_are_incomplete():
    fake = cluster_with_istio()  # the fake's rules reviews answer "incomplete", as a webhook authorizer does
    check(fake, "api")
    asked = [r[2]["resourceAttributes"] for r in fake.requests if r[0] == "create" and "resourceAttributes" in r[2]]
    assert {"verb": "create", "group": "apps", "resource": "deployments", "namespace": "meshreg"} in asked
    assert {"verb": "patch", "group": "", "resource": "namespaces"} in asked  # cluster-scoped: no namespace
    assert {"verb": "list", "group": "networking.istio.io", "resource": "serviceentries",
            "namespace": "meshreg"} in asked  # prune looks for every kind it may have rendered
    assert {(a["resource"], a["verb"]) for a in asked if a.get("namespace") == "kube-public"} == {
        ("configmaps", verb) for verb in ("create", "delete", "get", "list", "patch")}  # the published addresses
    assert not [a for a in asked if a["group"] == "gateway.networking.k8s.io"]  # not served, not rendered
    assert len(asked) == len({tuple(sorted(a.items())) for a in asked})


def rules_reviewed(fake):
    return sorted(r[2]["namespace"] for r in fake.requests if r[0] == "create" and "namespace" in r[2]
                  and "resourceAttributes" not in r[2])


def access_reviewed(fake):
    return [r[2]["resourceAttributes"] for r in fake.requests if r[0] == "create" and "resourceAttributes" in r[2]]


def test_complete_rules_answer_every_namespaced_question_and_only_namespaces_are_asked_one_by_one():
    fake = cluster_with_istio()
    admin = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    fake.rules = {"meshreg": admin, "kube-public": admin}
    [_, access] = check(fake, "api")
    assert access.status == "OK"
    assert rules_reviewed(fake) == ["kube-public", "meshreg"]
    assert {a["resource"] for a in access_reviewed(fake)} == {"namespaces"}


def test_complete_rules_that_lack_a_kind_fail_without_asking_again():
    fake = cluster_with_istio()
    admin = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    every_group_but_apps = [{"verbs": ["*"], "apiGroups": ["", "security.istio.io", "networking.istio.io",
                                                           "telemetry.istio.io", "rbac.authorization.k8s.io", "batch",
                                                           "policy"],
                             "resources": ["*"]},
                            {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]},
                            {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["daemonsets"],
                             "resourceNames": ["node-proxy"]}]
    fake.rules = {"meshreg": every_group_but_apps, "kube-public": admin}
    fake.allowed = lambda a: pytest.fail(f"asked again: {a}") if a.get("namespace") else True
    [_, access] = check(fake, "api")
    assert access.status == "FAIL"
    # a rule limited to resourceNames does not grant the kind
    assert access.message == "you may not: create, delete, get, list, patch daemonsets.apps in meshreg"


def test_incomplete_rules_grant_what_they_list_and_access_reviews_settle_the_rest():
    fake = cluster_with_istio()
    fake.rules = {"meshreg": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}  # kube-public: incomplete
    fake.allowed = lambda a: a["verb"] != "delete"
    [_, access] = check(fake, "api")
    assert access.status == "FAIL" and access.message == "you may not: delete configmaps in kube-public"
    assert "in meshreg" not in access.message
    assert {a.get("namespace") for a in access_reviewed(fake)} == {"kube-public", None}


def test_an_unreachable_server_is_exit_code_two():
    fake = cluster_with_istio()
    fake.failures[("get", "version", "*")] = ClusterError("cannot reach the Kubernetes API server at x: refused")
    try:
        check(fake, "api")
    except doctor.Unreachable as e:
        assert e.exit_code == 2 and "cannot reach" in str(e)
    else:
        raise AssertionError("no Unreachable")


def test_a_check_that_cannot_read_what_it_needs_is_a_warning_not_a_crash():
    fake = cluster_with_istio()
    fake.failures[("list", "StorageClass", "*")] = ClusterError("forbidden: cannot list storageclasses")
    [result] = check(fake, "storage")
    assert result.status == "WARN" and result.message == "could not check: forbidden: cannot list storageclasses"


def test_istio_fails_without_its_crds_and_says_when_only_v1beta1_is_served():
    fake = FakeCluster(served={"security.istio.io/v1beta1": {"authorizationpolicies"}})
    [crds, *_] = check(fake, "istio")
    assert crds.status == "FAIL" and "authorizationpolicies.security.istio.io" in crds.message
    assert "only v1beta1: Istio older than 1.22" in crds.message


def test_istio_reports_the_istiod_version_and_the_injector_for_each_workload():
    results = check(cluster_with_istio(), "istio")
    assert lines(results, "FAIL") == [] and lines(results, "WARN") == []
    assert "istiod 1.30.3 revision default (istio-system/istiod, 1 ready)" in lines(results)
    assert "DaemonSet node-proxy is injected by istio-sidecar-injector (revision default)" in lines(results)


def test_istio_fails_when_no_istiod_serves_the_revision_and_names_the_ones_found():
    fake = cluster_with_istio()
    istiod = {**ISTIOD, "metadata": {**ISTIOD["metadata"], "name": "istiod-1-24",
                                     "labels": {"app": "istiod", "istio.io/rev": "1-24"}}}
    del fake.objects[("apps/v1", "Deployment", "istio-system", "istiod")]
    fake.put(istiod)
    failed = [r for r in check(fake, "istio") if r.status == "FAIL"]
    assert [r.message for r in failed] == ["no istiod for revision default (found revisions: 1-24)"]
    assert "set spec.istioRevision to one of: 1-24" in failed[0].fix


def test_istio_follows_a_revision_tag_to_the_revision_it_points_at():
    fake = FakeCluster()
    fake.put({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
              "metadata": {"name": "istio-revision-tag-prod", "labels": {"istio.io/rev": "1-24",
                                                                         "istio.io/tag": "prod"}},
              "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "namespaceSelector": {
                  "matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["prod"]}]}}]})
    fake.put({**ISTIOD, "metadata": {**ISTIOD["metadata"], "name": "istiod-1-24",
                                     "labels": {"app": "istiod", "istio.io/rev": "1-24"}}})
    text = WRITERS + "  istioRevision: prod\n"
    assert "istiod 1.30.3 revision 1-24 (istio-system/istiod-1-24, 1 ready)" in lines(check(fake, "istio", text))


def test_istio_fails_when_only_another_revision_has_an_injector():
    fake = FakeCluster()
    fake.put({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
              "metadata": {"name": "istio-revision-tag-default"},
              "webhooks": [{"name": "w", "namespaceSelector": {"matchLabels": {"istio.io/rev": "default"}}}]})
    failed = lines(check(fake, "istio", WRITERS + "  istioRevision: 1-22\n"), "FAIL")
    assert any("no Istio sidecar injector matches namespace meshreg for Deployment registry, DaemonSet "
               "node-proxy (namespace labels istio.io/rev=1-22)" in m for m in failed)


def test_istio_warns_and_goes_on_when_webhooks_cannot_be_read():
    fake = cluster_with_istio()
    fake.failures[("list", "MutatingWebhookConfiguration", "*")] = ClusterError("forbidden: cannot list webhooks")
    results = check(fake, "istio")
    assert "could not check sidecar injection: forbidden: cannot list webhooks" in lines(results, "WARN")
    assert "istiod 1.30.3 revision default (istio-system/istiod, 1 ready)" in lines(results, "OK")


def test_trust_domain_mismatch_fails_because_every_writer_would_be_denied():
    fake = cluster_with_istio()
    [domain, _] = check(fake, "trust-domain", WRITERS + "  trustDomain: example.org\n")
    assert domain.status == "FAIL"
    assert domain.message.startswith("mesh trust domain is cluster.local (ConfigMap istio-system/istio) but "
                                     "spec.trustDomain is example.org")
    assert domain.fix == "set spec.trustDomain: cluster.local in the config, then meshreg up"


def mesh(fake, text: str) -> None:
    fake.objects[("v1", "ConfigMap", "istio-system", "istio")]["data"]["mesh"] = text


def test_a_trust_domain_alias_works_but_is_worth_fixing():
    fake = cluster_with_istio()
    mesh(fake, "trustDomain: new.example\ntrustDomainAliases: [old.example]\n")
    [domain, _] = check(fake, "trust-domain", WRITERS + "  trustDomain: old.example\n")
    assert domain.status == "WARN" and "is an alias of the mesh trust domain new.example" in domain.message


def test_path_normalization_none_fails_when_a_writer_is_scoped():
    fake = cluster_with_istio()
    mesh(fake, "pathNormalization: {normalization: NONE}\n")
    [_, normalization] = check(fake, "trust-domain", WRITERS)
    assert normalization.status == "FAIL" and "a scoped writer can write outside its prefixes" in normalization.message


def test_path_normalization_none_only_warns_without_scoped_writers():
    fake = cluster_with_istio()
    mesh(fake, "pathNormalization: {normalization: NONE}\n")
    assert [r.status for r in check(fake, "trust-domain")] == ["OK", "WARN"]


def test_a_missing_mesh_config_is_a_warning():
    fake = cluster_with_istio()
    del fake.objects[("v1", "ConfigMap", "istio-system", "istio")]
    [result] = check(fake, "trust-domain")
    assert result.status == "WARN" and result.message.startswith("ConfigMap istio-system/istio not found")


def test_writers_that_do_not_exist_yet_are_warnings():
    fake = cluster_with_istio()
    fake.put(namespace("team-a", **{"istio-injection": "enabled"}))
    results = check(fake, "writers", WRITERS)
    assert [(r.status, r.message) for r in results] == [
        ("WARN", "builds/kaniko: namespace builds does not exist yet"),
        ("WARN", "team-a/builder: ServiceAccount builder does not exist yet in namespace team-a")]


def test_a_writer_in_a_namespace_without_injection_fails():
    fake = cluster_with_istio()
    fake.put(namespace("builds"))
    fake.put(service_account("builds", "kaniko"))
    [result, _] = check(fake, "writers", WRITERS)
    assert result.status == "FAIL" and "namespace builds is not injected" in result.message
    assert result.fix.startswith("kubectl label namespace builds istio-injection=enabled")


def test_a_writer_whose_running_pods_lack_the_sidecar_fails_even_in_a_labelled_namespace():
    fake = cluster_with_istio()
    fake.put(namespace("builds", **{"istio-injection": "enabled"}))
    fake.put(service_account("builds", "kaniko"))
    fake.put(pod("builds", "kaniko-1", spec={"serviceAccountName": "kaniko", "containers": [{"name": "kaniko"}]}))
    fake.put(pod("builds", "other", spec={"serviceAccountName": "other", "containers": [{"name": "istio-proxy"}]}))
    [result, _] = check(fake, "writers", WRITERS)
    assert result.status == "FAIL" and "none of its 1 running pods has an istio-proxy sidecar" in result.message


def test_an_injected_writer_is_ok():
    fake = cluster_with_istio()
    fake.put(namespace("builds", **{"istio-injection": "enabled"}))
    fake.put(service_account("builds", "kaniko"))
    [result, _] = check(fake, "writers", WRITERS)
    assert (result.status, result.message) == (
        "OK", "builds/kaniko: namespace builds is injected (revision default), ServiceAccount exists")


def test_a_writer_namespace_the_caller_may_not_read_is_a_warning_for_that_writer_only():
    fake = cluster_with_istio()
    fake.failures[("get", "Namespace", "builds")] = ClusterError("forbidden: cannot get namespaces")
    [builds, team_a] = check(fake, "writers", WRITERS)
    assert builds.status == "WARN" and builds.message == "could not check: builds/kaniko: forbidden: cannot get " \
                                                         "namespaces"
    assert team_a.message == "team-a/builder: namespace team-a does not exist yet"


def test_all_groups_run_at_once_yet_each_shared_fact_is_read_once_and_lines_keep_their_order():
    import threading
    import time
    fake = cluster_with_istio()
    started = threading.Event()
    real_list, real_version = fake.list, fake.version

    def slow_list(api_version, kind, **kw):
        started.set()
        if kind == "MutatingWebhookConfiguration":  # the first reader is slow: the others must wait for its answer
            time.sleep(0.2)
        return real_list(api_version, kind, **kw)

    def version():
        assert started.wait(5), "the check groups waited for the server version"
        return real_version()
    fake.list, fake.version = slow_list, version
    results = doctor.run(facts=facts(fake), groups=["istio", "trust-domain", "writers", "policies"])
    webhook_reads = [r for r in fake.requests if r[0] == "list" and r[1][1] == "MutatingWebhookConfiguration"]
    assert len(webhook_reads) == 1
    order = [r.check for r in results]
    assert order == sorted(order, key=list(doctor.GROUPS).index) and set(order) == {
        "istio", "trust-domain", "writers", "policies"}

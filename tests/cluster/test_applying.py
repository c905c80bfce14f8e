"""meshreg.cluster.apply on the fake cluster: order, outcomes, ownership (preflight: tests/cluster/test_doctor*)."""

from __future__ import annotations

import pytest

from fakes import FakeCluster
from meshreg.cluster import apply as applying
from meshreg.errors import ClusterError

LABELS = {"app.kubernetes.io/managed-by": "meshreg", "app.kubernetes.io/instance": "meshreg"}


def obj(kind, name, namespace="meshreg", api_version="v1", **rest):
    meta = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **rest}


NAMESPACE = obj("Namespace", "meshreg", namespace=None)
POLICY = obj("AuthorizationPolicy", "registry-allow-writes", api_version="security.istio.io/v1",
             spec={"action": "ALLOW", "rules": []})


def test_objects_are_applied_namespace_first_and_kube_public_last():
    hosting = obj("ConfigMap", "local-registry-hosting", namespace="kube-public")
    given = [hosting, POLICY, obj("Service", "registry"), NAMESPACE]
    assert [o["kind"] for o in applying.ordered(given)] == ["Namespace", "Service", "AuthorizationPolicy",
                                                           "ConfigMap"]


def test_apply_alone_returns_outcomes_with_kind_namespace_name_and_action():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE], cluster=fake)
    [outcome] = applying.apply(manifests=[POLICY], cluster=fake)
    assert (outcome.kind, outcome.namespace, outcome.name, outcome.action) == \
        ("AuthorizationPolicy", "meshreg", "registry-allow-writes", "created")


def test_dry_run_into_a_namespace_that_does_not_exist_yet_reports_created_and_persists_nothing():
    fake = FakeCluster()
    outcomes = applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake, dry_run=True)
    assert [o.action for o in outcomes] == ["created", "created"]
    assert fake.get("v1", "Namespace", "meshreg") is None


def test_dry_run_of_a_changed_object_reports_changed_and_keeps_the_live_one():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake)
    changed = {**POLICY, "spec": {"action": "ALLOW", "rules": [{"from": []}]}}
    [_, outcome] = applying.apply(manifests=[NAMESPACE, changed], cluster=fake, dry_run=True)
    assert outcome.action == "changed"
    assert fake.get("security.istio.io/v1", "AuthorizationPolicy", "registry-allow-writes",
                    namespace="meshreg")["spec"]["rules"] == []


def test_an_object_of_another_instance_is_foreign():
    fake = FakeCluster()
    other = obj("Namespace", "meshreg", namespace=None)
    other["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    fake.put(other)
    with pytest.raises(ClusterError, match="not managed by meshreg, left alone: Namespace meshreg"):
        applying.apply(manifests=[NAMESPACE], cluster=fake)


def test_prune_never_lists_pvcs_or_namespaces():
    fake = FakeCluster()
    applying.prune(manifests=[], cluster=fake, selector="a=b", namespaces=["meshreg"])
    listed = {r[1][1] for r in fake.requests if r[0] == "list"}
    assert "PersistentVolumeClaim" not in listed and "Namespace" not in listed and "Deployment" in listed


def test_down_leaves_a_same_named_object_it_does_not_manage():
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "registry", "namespace": "default"}})
    [outcome] = applying.remove(manifests=[obj("Service", "registry", namespace="default")], cluster=fake)
    assert outcome.action.startswith("left alone")
    assert fake.get("v1", "Service", "registry", namespace="default") is not None


def test_drift_ignores_fields_the_server_adds_and_canonical_quantities():
    from meshreg.cluster.status import drifted
    rendered = {"spec": {"ports": [{"port": 5000}], "cpu": "0.5"}}
    live = {"spec": {"ports": [{"port": 5000, "protocol": "TCP"}], "cpu": "500m", "clusterIP": "10.0.0.1"}}
    assert drifted(rendered, live) == []


def test_drift_names_the_field_that_differs():
    from meshreg.cluster.status import drifted
    assert drifted({"spec": {"replicas": 1}}, {"spec": {"replicas": 3}}) == [".spec.replicas"]


def test_fields_meshreg_stops_applying_are_removed_and_bump_the_version():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE], cluster=fake)
    cm = obj("ConfigMap", "c", data={"a": "1", "b": "2"})
    applying.apply(manifests=[cm], cluster=fake)
    [outcome] = applying.apply(manifests=[obj("ConfigMap", "c", data={"a": "1"})], cluster=fake)
    assert outcome.action == "changed"
    assert fake.get("v1", "ConfigMap", "c", namespace="meshreg")["data"] == {"a": "1"}


def test_an_invalid_name_is_rejected_with_the_servers_message_and_what_was_applied():
    fake = FakeCluster()
    with pytest.raises(ClusterError, match=r"invalid: .*Invalid value; failed at ConfigMap meshreg/Bad; "
                                           r"applied before the failure: Namespace meshreg \(created\)"):
        applying.apply(manifests=[NAMESPACE, obj("ConfigMap", "Bad")], cluster=fake)

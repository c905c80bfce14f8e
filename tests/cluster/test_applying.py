"""meshreg.cluster.apply on the fake cluster: order, outcomes, ownership (preflight: tests/cluster/test_doctor*)."""

from __future__ import annotations

import pytest

from meshreg.cluster import apply as applying
from meshreg.cluster import remove as removing
from meshreg.errors import ClusterError
from support.fakes import FakeCluster

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
    with pytest.raises(ClusterError, match=r"^owned by meshreg instance other, left alone: Namespace meshreg; "
                                           "nothing was applied$"):
        applying.apply(manifests=[NAMESPACE], cluster=fake)
    assert [r for r in fake.requests if r[0] != "get"] == []


def test_prune_deletes_what_the_render_dropped_but_never_a_pvc_or_another_instances_object():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE, POLICY, obj("PersistentVolumeClaim", "old-data"), obj("Service", "old")],
                   cluster=fake)
    theirs = obj("Service", "theirs")
    theirs["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    fake.put(theirs)
    outcomes = applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake,
                              prune={"meshreg": applying.served(fake, applying.PRUNABLE)})
    assert [(o.action, str(o)) for o in outcomes if o.action == "pruned"] == [("pruned", "Service meshreg/old")]
    assert fake.get("v1", "PersistentVolumeClaim", "old-data", namespace="meshreg") is not None
    assert fake.get("v1", "Service", "theirs", namespace="meshreg") is not None


def test_one_list_per_kind_and_namespace_serves_ownership_and_prune():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake)
    fake.requests.clear()
    kinds = applying.served(fake, applying.PRUNABLE)
    assert ("gateway.networking.k8s.io/v1", "Gateway") not in kinds  # the fake serves no Gateway API
    applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake, prune={"meshreg": kinds})
    reads = [(r[0], r[1][1]) for r in fake.requests if r[0] in ("get", "list")]
    assert sorted(reads) == sorted([("get", "Namespace")] + [("list", kind) for _, kind in kinds])


def test_down_leaves_a_same_named_object_it_does_not_manage():
    fake = FakeCluster()
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "registry", "namespace": "default"}})
    [outcome] = removing.remove(manifests=[obj("Service", "registry", namespace="default")], cluster=fake)
    assert outcome.action.startswith("left alone")
    assert fake.get("v1", "Service", "registry", namespace="default") is not None


def test_fields_meshreg_stops_applying_are_removed_and_bump_the_version():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE], cluster=fake)
    cm = obj("ConfigMap", "c", data={"a": "1", "b": "2"})
    applying.apply(manifests=[cm], cluster=fake)
    [outcome] = applying.apply(manifests=[obj("ConfigMap", "c", data={"a": "1"})], cluster=fake)
    assert outcome.action == "changed"
    assert fake.get("v1", "ConfigMap", "c", namespace="meshreg")["data"] == {"a": "1"}


def test_an_invalid_name_is_refused_by_the_dry_run_and_the_namespace_created_for_it_is_deleted_again():
    fake = FakeCluster()
    with pytest.raises(applying.Refused, match=r'^ConfigMap meshreg/Bad: invalid: metadata.name: Invalid value: "Bad"'
                                               r".*; nothing was changed; Namespace meshreg was created for the check "
                                               r"and is deleted again$"):
        applying.apply(manifests=[NAMESPACE, obj("ConfigMap", "Bad"), POLICY], cluster=fake)
    assert fake.get("v1", "Namespace", "meshreg") is None
    real = [r for r in fake.requests if r[0] == "apply" and not r[2]["dry_run"]]
    assert [r[1][1] for r in real] == ["Namespace"]  # created for the check, and only that


def test_the_plan_reports_every_refusal_at_once_and_changes_nothing():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE], cluster=fake)
    before = {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()}
    refusals = applying.plan(manifests=[NAMESPACE, obj("ConfigMap", "Bad"), POLICY, obj("Service", "Also_bad")],
                             cluster=fake).refusals
    assert [str(r).split(":")[0] for r in refusals] == ["ConfigMap meshreg/Bad", "Service meshreg/Also_bad"]
    assert {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()} == before


def test_the_plan_leaves_out_objects_of_a_namespace_that_does_not_exist_yet():
    fake = FakeCluster()
    planned = applying.plan(manifests=[NAMESPACE, POLICY], cluster=fake)
    assert planned.refusals == []
    assert [str(o) for o in planned.unchecked] == ["AuthorizationPolicy meshreg/registry-allow-writes"]
    assert [r[1][1] for r in fake.requests if r[0] == "apply"] == ["Namespace"]


def test_an_unchanged_object_is_not_sent_again_after_its_dry_run():
    fake = FakeCluster()
    applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake)
    fake.requests.clear()
    outcomes = applying.apply(manifests=[NAMESPACE, POLICY], cluster=fake)
    assert [o.action for o in outcomes] == ["unchanged", "unchanged"]
    assert [r for r in fake.requests if r[0] == "apply" and not r[2]["dry_run"]] == []

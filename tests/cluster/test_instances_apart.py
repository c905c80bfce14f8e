"""Instances never touch each other: each is its ApplySet (KEP-3659), so `up`, prune and `down` of one never delete or
change an object of another, whatever the two are called; objects labelled before ApplySets are adopted by the
instance they belong to, and only by it. On the fake cluster (the real API server: tests/realstack/test_instances.py).
"""

from __future__ import annotations

import copy

import pytest

from meshreg import config
from meshreg.errors import ClusterError
from meshreg.operations.down import down
from meshreg.operations.up import up
from meshreg.render import render
from meshreg.render.labels import APPLYSET_ID, APPLYSET_KINDS, APPLYSET_NAMESPACES, APPLYSET_PART_OF, set_id
from support.fakes import INJECTOR, FakeCluster, ready_controller


@pytest.fixture
def fake() -> FakeCluster:
    cluster = FakeCluster()
    cluster.put(INJECTOR)
    cluster.on_apply.append(ready_controller)
    return cluster


def instance(name: str, namespace: str, port: int, *, push: bool = True, publish: bool = False, several: bool = True,
             push_namespace: str | None = None) -> config.Config:
    """An instance with a push proxy on registry `scratch` and, with `several`, a second registry `images`;
    unless `publish`, no local-registry-hosting (its addresses are in kube-public/meshreg-NAME-registries)."""
    uploads = push_namespace or f"{namespace}-push"
    proxy = f"pushProxy: {{repositories: [dev/], port: {port + 10}, namespace: {uploads}}}" if push else ""
    images = f"    - {{name: images, port: {port + 1}, writers: [{{serviceAccount: builds/kaniko}}]}}\n" \
        if several else ""
    text = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {name}}}
spec:
  namespace: {namespace}
  nodeProxy: {{enabled: true}}
  localRegistryHosting: {{publish: {str(publish).lower()}}}
  registries:
    - {{name: scratch, default: true, port: {port}, writers: [{{serviceAccount: builds/kaniko}}], {proxy}}}
{images}"""
    return config.from_text(text, name=f"{namespace}.yaml")


def same_named() -> tuple[config.Config, config.Config]:
    """Two instances named dev: team-a publishes local-registry-hosting for its one registry, team-b (two
    registries) publishes its index; both have a push proxy."""
    return (instance("dev", "team-a", 5200, publish=True, several=False), instance("dev", "team-b", 5300))


def snapshot(fake: FakeCluster, cfg: config.Config) -> dict:
    """Every object of `cfg`'s render as the cluster holds it, resourceVersion included (any write shows)."""
    out = {}
    for obj in render(cfg):
        meta = obj["metadata"]
        found = fake.get(obj["apiVersion"], obj["kind"], meta["name"], namespace=meta.get("namespace"))
        out[(obj["kind"], meta.get("namespace"), meta["name"])] = copy.deepcopy(found)
    return out


def test_every_member_carries_the_set_id_of_its_namespace_and_name():
    for cfg in (instance("dev", "team-a", 5200), instance("dev", "team-b", 5300)):
        objs = render(cfg)
        [parent] = [o for o in objs if APPLYSET_ID in o["metadata"]["labels"]]
        assert parent["metadata"]["labels"][APPLYSET_ID] == set_id("meshreg-dev", cfg.namespace)
        assert {o["metadata"]["labels"][APPLYSET_PART_OF] for o in objs if o is not parent} == \
            {set_id("meshreg-dev", cfg.namespace)}
    assert set_id("meshreg-dev", "team-a") != set_id("meshreg-dev", "team-b")


def test_the_parent_lists_every_members_kind_and_the_namespaces_beside_its_own():
    [parent] = [o for o in render(instance("dev", "team-a", 5200)) if APPLYSET_ID in o["metadata"]["labels"]]
    notes = parent["metadata"]["annotations"]
    assert notes[APPLYSET_NAMESPACES] == "kube-public,team-a-push"
    assert notes[APPLYSET_KINDS].split(",") == sorted(notes[APPLYSET_KINDS].split(","))
    assert {"Deployment.apps", "Namespace", "Role.rbac.authorization.k8s.io", "Gateway.networking.istio.io",
            "PersistentVolumeClaim"} <= set(notes[APPLYSET_KINDS].split(","))


def test_two_instances_of_one_name_in_two_namespaces_never_touch_each_other(fake):
    a, b = same_named()
    up(a, fake)
    before = snapshot(fake, a)
    up(b, fake)
    up(b, fake)  # prune of b runs against a cluster holding a's push proxy (same instance label)
    assert snapshot(fake, a) == before
    down(b, fake, purge=True)
    assert snapshot(fake, a) == before
    assert fake.get("apps/v1", "Deployment", "push-proxy", namespace="team-b-push") is None


def test_up_with_a_push_proxy_disabled_prunes_only_its_own(fake):
    a, b = same_named()
    up(a, fake)
    before = snapshot(fake, a)
    up(b, fake)
    report = up(instance("dev", "team-b", 5300, push=False), fake)
    pruned = {str(o) for o in report.outcomes if o.action == "pruned"}
    assert "Deployment team-b-push/push-proxy" in pruned and not [p for p in pruned if "team-a" in p]
    assert snapshot(fake, a) == before


def test_two_instances_of_two_names_never_touch_each_other(fake):
    a, b = instance("alpha", "team-a", 5200), instance("beta", "team-b", 5300)
    up(a, fake)
    before = snapshot(fake, a)
    up(b, fake)
    down(b, fake)
    assert snapshot(fake, a) == before


def test_a_same_named_instance_is_refused_the_published_object_the_other_holds_naming_its_namespace(fake):
    up(instance("dev", "team-a", 5200), fake)  # both have several registries: both publish meshreg-dev-registries
    with pytest.raises(ClusterError) as refused:
        up(instance("dev", "team-b", 5300), fake)
    assert str(refused.value) == (
        "owned by meshreg instance dev (namespace team-a), left alone: ConfigMap kube-public/meshreg-dev-registries; "
        "nothing was applied; another instance named dev publishes kube-public/meshreg-dev-registries: give this one "
        "its own metadata.name (an instance is its name and its namespace; the name also names what it publishes); "
        "--adopt never takes objects from another instance; see docs/operations.md")
    assert fake.get("v1", "Namespace", "team-b") is None  # nothing half-applied


def test_the_parent_records_where_members_were_so_a_moved_push_proxy_is_pruned_without_cluster_wide_reads(fake):
    up(instance("dev", "team-a", 5200), fake)
    fake.failures[("list", "Namespace", "")] = ClusterError("namespaces is forbidden: cluster-wide list")
    report = up(instance("dev", "team-a", 5200, push_namespace="team-a-uploads"), fake)
    assert "Deployment team-a-push/push-proxy" in {str(o) for o in report.outcomes if o.action == "pruned"}
    assert fake.get("apps/v1", "Deployment", "push-proxy", namespace="team-a-uploads") is not None


def test_an_unchanged_config_lists_only_the_published_config_maps_in_kube_public(fake):
    """The parent records its kinds for all its namespaces at once; kube-public only ever holds the published
    ConfigMaps, so an idempotent `up` lists no other kind there (each would be a LIST that finds nothing)."""
    cfg = instance("dev", "team-a", 5200)
    up(cfg, fake)
    fake.requests.clear()
    up(cfg, fake)
    listed = {key[:2] for verb, key, _ in fake.requests if verb == "list" and key[2] == "kube-public"}
    assert listed == {("v1", "ConfigMap")}
    listed_here = {key[1] for verb, key, _ in fake.requests if verb == "list" and key[2] == "team-a"}
    assert {"Deployment", "Service", "ConfigMap"} <= listed_here  # the instance's own namespace: every kind


def test_down_also_deletes_members_the_config_no_longer_renders(fake):
    up(instance("dev", "team-a", 5200), fake)
    report = down(instance("dev", "team-a", 5200, push=False), fake)
    assert "Deployment team-a-push/push-proxy" in {str(o) for o in report.outcomes if o.action == "deleted"}
    assert fake.get("apps/v1", "Deployment", "push-proxy", namespace="team-a-push") is None


def test_down_keeps_the_data_and_the_parent_that_says_whose_it_is(fake):
    cfg = instance("dev", "team-a", 5200)
    up(cfg, fake)
    report = down(cfg, fake)
    kept = {str(o) for o in report.outcomes if o.action == "kept"}
    assert "ConfigMap team-a/meshreg-dev" in kept and "PersistentVolumeClaim team-a/images-data" in kept
    assert up(cfg, fake).counts.get("created", 0) > 0  # and up finds its set again


def test_an_up_stopped_by_a_refusal_leaves_the_parent_pointing_at_every_member_it_may_have_written(fake):
    cfg = instance("dev", "team-a", 5200)
    up(instance("dev", "team-a", 5200, push=False), fake)
    real_apply = fake.apply

    def refuse_the_push_proxy(obj, *, dry_run=False, **kw):  # after the dry run passed: a real apply refused
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "push-proxy" and not dry_run:
            raise ClusterError("Deployment team-a-push/push-proxy: refused by a ResourceQuota")
        return real_apply(obj, dry_run=dry_run, **kw)

    fake.apply = refuse_the_push_proxy  # type: ignore[method-assign]
    with pytest.raises(ClusterError, match="refused on the real apply"):
        up(cfg, fake)
    parent = fake.get("v1", "ConfigMap", "meshreg-dev", namespace="team-a")
    assert "team-a-push" in parent["metadata"]["annotations"][APPLYSET_NAMESPACES]


# --- upgrading from objects labelled before ApplySets


def legacy(fake: FakeCluster, cfg: config.Config) -> None:
    """Make `cfg`'s objects look as an `up` before ApplySets left them: no parent, no set label."""
    for key, obj in list(fake.objects.items()):
        labels = obj["metadata"].get("labels") or {}
        if APPLYSET_ID in labels and obj["metadata"].get("namespace") == cfg.namespace:
            del fake.objects[key]
        elif labels.get(APPLYSET_PART_OF) == set_id(f"meshreg-{cfg.name}", cfg.namespace):
            del labels[APPLYSET_PART_OF]


def test_objects_labelled_before_applysets_are_adopted_by_their_own_instance(fake):
    cfg = instance("dev", "team-a", 5200)
    up(cfg, fake)
    legacy(fake, cfg)
    report = up(cfg, fake)
    assert not [o for o in report.outcomes if o.action == "pruned"]
    assert {o.action for o in report.outcomes} <= {"changed", "created"}
    assert all(APPLYSET_PART_OF in o["metadata"]["labels"] for o in snapshot(fake, cfg).values()
               if APPLYSET_ID not in o["metadata"]["labels"])


def test_upgrading_one_of_two_old_same_named_instances_touches_nothing_of_the_other(fake):
    a, b = same_named()
    up(a, fake)
    up(b, fake)
    legacy(fake, a)
    legacy(fake, b)
    before = snapshot(fake, a)
    up(instance("dev", "team-b", 5300, push=False), fake)  # b's prune sees a's push-proxy namespace by the instance
    down(b, fake, purge=True)                               # label: it is a's, by its route
    assert snapshot(fake, a) == before


def test_a_stray_labelled_before_applysets_is_pruned_by_its_own_instance(fake):
    cfg = instance("dev", "team-a", 5200)
    up(cfg, fake)
    legacy(fake, cfg)
    report = up(instance("dev", "team-a", 5200, push=False), fake)
    assert "Deployment team-a-push/push-proxy" in {str(o) for o in report.outcomes if o.action == "pruned"}


def test_an_old_published_index_of_a_same_named_instance_elsewhere_is_not_taken(fake):
    up(instance("dev", "team-b", 5300), fake)
    legacy(fake, instance("dev", "team-b", 5300))
    with pytest.raises(ClusterError, match=r"owned by meshreg instance dev \(in namespace team-b\), left alone: "
                                           r"ConfigMap kube-public/meshreg-dev-registries"):
        up(instance("dev", "team-a", 5200), fake)

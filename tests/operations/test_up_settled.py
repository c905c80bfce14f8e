"""An `up` with nothing to do knows it from the server's dry run alone (cluster/settled.py) and reads nothing more; any
sign of a change — an object deleted by hand, an answer stamped within the clock skew, a parent an `up` stopped
half-way left pending — and it reads what exists and prunes as before. On the fake cluster, whose applies stamp
meshreg's managedFields entry with its clock as the API server does (the real server: tests/realstack/test_settled.py).
"""

from __future__ import annotations

import copy

import pytest

from meshreg import config
from meshreg.cluster.settled import SKEW
from meshreg.errors import Interrupted
from meshreg.operations.up import up
from meshreg.render import applyset, render
from meshreg.render.labels import APPLYSET_MEMBERS, is_parent
from support.fakes import INJECTOR, FakeCluster, ready_controller

PUSH = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  registries:
    - {name: registry, default: true, port: 5000, pushProxy: {repositories: [dev/], namespace: meshreg-push}}
"""
PARENT = ("v1", "ConfigMap", "meshreg", "meshreg-meshreg")
CHECKED = {"DaemonSet", "PersistentVolumeClaim", "Pod"}  # what the checks list in the namespace (hostPorts, storage)


class Cluster(FakeCluster):
    """A cluster with Istio and a kubelet; Ctrl-C arrives at a real apply or delete of `stop_at` (a kind, or a kind
    and a name) once `passing` of them went through."""

    def __init__(self) -> None:
        super().__init__()
        self.put(INJECTOR)
        self.on_apply.append(ready_controller)
        self.stop_at: tuple[str, ...] = ()
        self.passing = 0

    def _stop(self, kind: str, name: str) -> None:
        if self.stop_at and self.stop_at == (kind, name)[:len(self.stop_at)]:
            if self.passing == 0:
                self.stop_at = ()
                raise KeyboardInterrupt
            self.passing -= 1

    def apply(self, obj, *, dry_run=False, force=False, field_manager="meshreg"):
        if not dry_run:
            self._stop(obj["kind"], obj["metadata"]["name"])
        return super().apply(obj, dry_run=dry_run, force=force, field_manager=field_manager)

    def delete(self, api_version, kind, name, *, namespace=None, propagation="Background", dry_run=False):
        if not dry_run:
            self._stop(kind, name)
        return super().delete(api_version, kind, name, namespace=namespace, propagation=propagation, dry_run=dry_run)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def again(cluster: Cluster, cfg=config.DEFAULT):
    """`up` once the last one's changes are older than the clock skew allowed for; its report and its requests."""
    cluster.later(SKEW + 1)
    cluster.requests.clear()
    return up(cfg, cluster, wait=False), list(cluster.requests)


def read_for_prune(requests, namespace: str) -> list[str]:
    """The kinds listed in `namespace` beyond what the checks list there."""
    return [r[1][1] for r in requests if r[0] == "list" and r[1][2] == namespace and r[1][1] not in CHECKED]


def test_an_up_with_nothing_to_do_sends_only_its_checks_and_the_dry_run(cluster):
    up(config.DEFAULT, cluster)
    report, sent = again(cluster)
    assert report.counts == {"unchanged": 19}
    assert read_for_prune(sent, "meshreg") == [] and read_for_prune(sent, "kube-public") == []
    applies = [r for r in sent if r[0] == "apply"]
    assert len(applies) == 19 and all(r[2]["dry_run"] for r in applies)


def test_an_up_right_after_a_change_reads_what_exists_as_before(cluster):
    up(config.DEFAULT, cluster)
    cluster.requests.clear()
    assert up(config.DEFAULT, cluster, wait=False).counts == {"unchanged": 19}  # stamped within the skew: not sure
    assert {"AuthorizationPolicy", "ConfigMap", "ServiceAccount"} <= set(read_for_prune(cluster.requests, "meshreg"))


def test_a_policy_deleted_by_hand_is_applied_again(cluster):
    up(config.DEFAULT, cluster)
    cluster.later(SKEW + 1)
    cluster.delete("security.istio.io/v1", "AuthorizationPolicy", "registry-deny-writes", namespace="meshreg")
    report, sent = again(cluster)
    assert report.counts == {"unchanged": 18, "created": 1}
    assert cluster.get("security.istio.io/v1", "AuthorizationPolicy", "registry-deny-writes", namespace="meshreg")
    assert "AuthorizationPolicy" in read_for_prune(sent, "meshreg"), "not settled: what exists is read"


def test_an_up_stopped_before_its_prune_leaves_the_parent_pending_and_the_next_up_prunes(cluster):
    up(config.from_text(PUSH, name="push.yaml"), cluster)
    cluster.later(SKEW + 1)
    cluster.stop_at = ("Deployment",)  # the push proxy's, the first thing pruned
    with pytest.raises(Interrupted, match="while pruning"):
        up(config.DEFAULT, cluster, wait=False)
    assert cluster.objects[PARENT]["metadata"]["annotations"][APPLYSET_MEMBERS] == "pending"
    assert cluster.get("apps/v1", "Deployment", "push-proxy", namespace="meshreg-push")
    report, _ = again(cluster)
    assert report.counts.get("pruned") and not cluster.get("apps/v1", "Deployment", "push-proxy",
                                                            namespace="meshreg-push")
    assert cluster.objects[PARENT]["metadata"]["annotations"][APPLYSET_MEMBERS].startswith("sha256:")
    assert again(cluster)[0].counts == {"unchanged": 19}


def with_extra_member(cfg=config.DEFAULT) -> list:
    """`cfg`'s render and one more member of a kind it has already (a ConfigMap), with its parent made anew: the
    kinds the parent records stay the same, only which objects are members changes."""
    objects = [o for o in render(cfg) if not is_parent(o)]
    extra = copy.deepcopy(next(o for o in objects if o["metadata"]["name"] == "registry-config"))
    extra["metadata"]["name"], extra["data"] = "extra", {"note": "added"}
    return [*objects, extra, applyset.parent(cfg, [*objects, extra])]


def test_a_member_added_and_stopped_half_way_is_pruned_when_the_config_goes_back(cluster):
    """Adding a member marks the parent pending before any member is written: had it kept the old digest, the old
    render's next `up` would find all its own objects unchanged, take that for settled, and leave the new one behind.
    """
    up(config.DEFAULT, cluster)
    cluster.later(SKEW + 1)
    # the parent's last write, after the new member and the prune: the one that says the members are settled
    cluster.stop_at, cluster.passing = ("ConfigMap", "meshreg-meshreg"), 1
    with pytest.raises(Interrupted):
        up(config.DEFAULT, cluster, manifests=with_extra_member(), wait=False)
    cluster.later(SKEW + 1)
    cluster.put(cluster.objects[("apps/v1", "Deployment", "meshreg", "registry")])  # a status write meanwhile
    assert cluster.get("v1", "ConfigMap", "extra", namespace="meshreg"), "written before the stop"
    report, _ = again(cluster)
    assert report.counts.get("pruned") == 1 and not cluster.get("v1", "ConfigMap", "extra", namespace="meshreg")

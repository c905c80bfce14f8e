"""Instances never touch each other, on the real API server: two instances of two names and two of one name, each with
a push proxy and one with several registries; `up`, prune and `down --purge` of one leave every object of the other
with its uid and resourceVersion, and its pods running. Objects labelled before ApplySets are adopted by their own
instance. The set id is the one kubectl computes for the same parent."""

from __future__ import annotations

import json
import subprocess

import pytest

from meshreg.render.labels import APPLYSET_ID, APPLYSET_PART_OF, set_id
from support import faults


def text(name: str, namespace: str, port: int, *, several: bool, publish: bool = False, push: bool = True) -> str:
    proxy = f", pushProxy: {{repositories: [dev/], port: {port + 5}, namespace: {namespace}-push}}" if push else ""
    second = f"    - {{name: images, port: {port + 1}, writers: [{{serviceAccount: fl-w/kaniko}}]}}\n" \
        if several else ""
    return f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {name}}}
spec:
  namespace: {namespace}
  localRegistryHosting: {{publish: {str(publish).lower()}}}
  registries:
    - {{name: scratch, default: true, port: {port}, storage: {{size: 256Mi}},
       writers: [{{serviceAccount: fl-w/kaniko}}]{proxy}}}
{second}"""


NAMES = ("fl-alpha", "fl-beta", "fl-w", "fl-dev", "fl-old", "fl-idcheck")  # what this module creates


@pytest.fixture(scope="module")
def clean(stack):
    faults.sweep(stack, *NAMES)
    yield stack
    faults.sweep(stack, *NAMES)


def running_pods(instance: faults.Instance) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in instance.pods("app.kubernetes.io/managed-by=meshreg")
            if p["status"].get("phase") == "Running"}


def untouched_by(stack, tmp_path, first: faults.Instance, second: str, second_without_push: str) -> None:
    """`up`, an `up` that prunes the push proxy, and `down --purge` of `second`: `first` keeps every object as it
    was (uid and resourceVersion) and its running pods."""
    members, pods = first.members(), running_pods(first)
    assert len(members) > 15 and pods
    with faults.deployed(stack, tmp_path / "second", second, up=("--no-wait",)) as other:
        assert other.members() and set(other.members()).isdisjoint(members)
        faults.write_config(other.directory, second_without_push)
        pruned = other.meshreg("up", "--no-wait").stdout
        assert "pruned      Deployment" in pruned and f"{first.namespace}" not in pruned
        assert first.members() == members
    assert first.members() == members and running_pods(first) == pods


def test_two_instances_of_two_names_never_touch_each_other(clean, tmp_path):
    alpha = text("fl-alpha", "fl-alpha", 5200, several=True)
    beta = text("fl-beta", "fl-beta", 5206, several=True)
    with faults.deployed(clean, tmp_path / "alpha", alpha, accounts=("fl-w/kaniko",)) as first:
        untouched_by(clean, tmp_path, first, beta, text("fl-beta", "fl-beta", 5206, several=True, push=False))


def test_two_instances_of_one_name_never_touch_each_other_and_a_third_is_told_whose_index_it_is(clean, tmp_path):
    one = text("fl-dev", "fl-dev-a", 5212, several=False, publish=True)  # publishes local-registry-hosting
    two = text("fl-dev", "fl-dev-b", 5218, several=True)  # publishes kube-public/meshreg-fl-dev-registries
    with faults.kep1755(), faults.deployed(clean, tmp_path / "a", one, accounts=("fl-w/kaniko",)) as first:
        untouched_by(clean, tmp_path, first, two, text("fl-dev", "fl-dev-b", 5218, several=True, push=False))
        with faults.deployed(clean, tmp_path / "b", two, up=("--no-wait",)):
            third = faults.write_config(tmp_path / "c", text("fl-dev", "fl-dev-c", 5224, several=True))
            refused = faults.Instance(clean, tmp_path / "c", third, []).meshreg("up", "--no-wait", "--skip-checks",
                                                                                check=False)
            assert refused.returncode == 1
            assert "owned by meshreg instance fl-dev (namespace fl-dev-b), left alone: ConfigMap " \
                   "kube-public/meshreg-fl-dev-registries; nothing was applied; another instance named fl-dev " \
                   "publishes kube-public/meshreg-fl-dev-registries: give this one its own metadata.name" \
                   in refused.stderr
            assert faults.get(clean, "namespace", "fl-dev-c") is None


def test_objects_labelled_before_applysets_are_adopted_by_their_own_instance_only(clean, tmp_path):
    one = text("fl-old", "fl-old-a", 5230, several=True)
    two = text("fl-old", "fl-old-b", 5236, several=False, publish=True)
    with faults.kep1755(), faults.deployed(clean, tmp_path / "a", one, up=("--no-wait",)) as first, \
            faults.deployed(clean, tmp_path / "b", two, up=("--no-wait",)) as second:
        for instance in (first, second):  # as meshreg before ApplySets left them: no set label, no parent
            for kind, namespace, name in instance.members():
                clean.kubectl("label", kind, name, *(["-n", namespace] if namespace else []), f"{APPLYSET_PART_OF}-")
            faults.delete(clean, "configmap", f"meshreg-{instance.cfg.name}", namespace=instance.namespace)
        assert first.members() == {} and second.members() == {}
        theirs = versions(clean)
        adopted = first.meshreg("up", "--no-wait").stdout
        assert "pruned" not in adopted and "created     ConfigMap fl-old-a/meshreg-fl-old" in adopted
        assert len(first.members()) > 20 and second.members() == {}  # b's objects: still unlabelled, unchanged
        assert versions(clean) == theirs
        first.meshreg("down", "--purge", "--yes")
        assert versions(clean) == theirs and len(theirs) > 15


def versions(stack) -> dict[str, str]:
    """The resourceVersion of every object of instance fl-old in fl-old-b (its namespace, its push proxy's and its
    local-registry-hosting)."""
    found = [o for ns in ("fl-old-b", "fl-old-b-push") for o in faults.kubectl_json(
        stack, "get", "serviceaccounts,configmaps,services,deployments,daemonsets,roles,gateways.networking.istio.io,"
        "virtualservices.networking.istio.io,authorizationpolicies.security.istio.io", "-n", ns)["items"]]
    found.append(faults.get(stack, "configmap", "local-registry-hosting", namespace="kube-public"))
    return {f"{o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}": version(o)
            for o in found if o["metadata"]["name"] != "kube-root-ca.crt"}


def version(obj: dict) -> str:
    """The resourceVersion, except for workloads: their controllers write status while they roll out (`up --no-wait`),
    so for them what another instance could change: uid, generation (the spec), labels and annotations."""
    meta = obj["metadata"]
    if obj["kind"] not in ("Deployment", "DaemonSet"):
        return str(meta["resourceVersion"])
    return json.dumps([meta["uid"], meta.get("generation"), meta.get("labels"), meta.get("annotations")],
                      sort_keys=True)


def test_the_set_id_is_the_one_kubectl_computes_for_the_same_parent(clean):
    namespace = "fl-idcheck"
    clean.kubectl("create", "namespace", namespace)
    try:
        member = '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "member"}, "data": {"a": "b"}}'
        subprocess.run(["kubectl", "apply", "--server-side", "--prune", "--applyset=configmaps/meshreg-fl-dev", "-n",
                        namespace, "-f", "-"], input=member, text=True, capture_output=True,
                       env=clean.env(KUBECTL_APPLYSET="true"), check=True)  # kubectl's applyset is alpha: opt in
        parent = faults.get(clean, "configmap", "meshreg-fl-dev", namespace=namespace)
        assert parent["metadata"]["labels"][APPLYSET_ID] == set_id("meshreg-fl-dev", namespace)
    finally:
        faults.delete(clean, "namespace", namespace)

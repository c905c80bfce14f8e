"""`meshreg up` on the fake cluster: a dry run of everything before any change, storage size changes, no success
without Istio enforcing on every pod, and two instances side by side."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support import fakes
from support.fakes import quota, writes


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return fakes.connected(monkeypatch)


def run(*args):
    return CliRunner().invoke(main, list(args))

SPLIT = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  registries:
    - {name: images, default: true, port: 5000}
    - {name: cache, role: readonly, port: 5001}
"""


def up(tmp_path, config: str, *args):
    (tmp_path / "m.yaml").write_text(config)
    return run("up", "-q", "-c", str(tmp_path / "m.yaml"), *args)


def error(result) -> str:
    return result.output.strip().splitlines()[-1]


def versions(fake):
    return {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()}


# --- refusals in the dry run, and refusals only the real apply shows

def test_a_quota_refusal_of_a_new_claim_changes_nothing(fake, tmp_path):
    run("up", "-q")
    fake.admission.append(quota("meshreg", persistentvolumeclaims=1))
    before, _ = versions(fake), fake.requests.clear()
    result = up(tmp_path, SPLIT)
    assert result.exit_code == 1
    assert error(result) == (  # the same reason for both claims: one line names both
        "meshreg: error: PersistentVolumeClaim meshreg/images-data, PersistentVolumeClaim meshreg/cache-data: refused "
        "by a ResourceQuota (not a permission problem): exceeded quota: q, requested: persistentvolumeclaims=1, used: "
        "persistentvolumeclaims=1, limited: persistentvolumeclaims=1; nothing was changed")
    assert writes(fake) == [] and versions(fake) == before


def test_two_claims_that_fit_the_quota_one_at_a_time_are_refused_only_on_the_real_apply(fake, tmp_path):
    fake.admission.append(quota("meshreg", persistentvolumeclaims=1))
    run("up", "-q", "--dry-run")
    result = up(tmp_path, SPLIT)
    assert result.exit_code == 1
    assert "refused by a ResourceQuota" in error(result)
    assert "; refused on the real apply, after the dry run had passed; applied before: Namespace meshreg " \
           "(created), ServiceAccount meshreg/images (created)" in error(result)
    assert error(result).endswith("; not applied: Deployment meshreg/images, Deployment meshreg/cache, DaemonSet "
                                  "meshreg/node-proxy, ConfigMap kube-public/local-registry-hosting, ConfigMap "
                                  "kube-public/meshreg-meshreg-registries")
    assert fake.get("apps/v1", "Deployment", "images", namespace="meshreg") is None


def test_dry_run_on_a_new_namespace_says_the_server_could_not_check_its_contents(fake):
    result = run("up", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "17 objects were not checked by the server: namespace meshreg does not exist yet" in result.output
    assert writes(fake) == []


# --- storage size

def sized(size: str, storage_class: str | None = None) -> str:
    cls = f", storageClassName: {storage_class}" if storage_class else ""
    return f"apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {{name: meshreg}}\n" \
           f"spec:\n  registry:\n    storage: {{size: {size}{cls}}}\n"


def bind(fake, *, storage_class="standard", expandable=True, phase="Bound", capacity="10Gi"):
    """What the cluster does to the first `up`'s claim: the default class, a volume, a capacity."""
    fake.put({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard"},
              "provisioner": "ebs.csi.aws.com", "allowVolumeExpansion": expandable})
    key = ("v1", "PersistentVolumeClaim", "meshreg", "registry-data")
    claim = fake.objects[key]
    claim["spec"].update({"storageClassName": storage_class, "volumeName": "pvc-1234"} if storage_class else
                         {"volumeName": "lab-pv-1"})
    claim["status"] = {"phase": phase, "capacity": {"storage": capacity}} if phase == "Bound" else {"phase": phase}


def test_growing_a_bound_claim_of_an_expandable_class_applies_it_and_says_a_restart_may_be_needed(fake, tmp_path):
    run("up", "-q")
    bind(fake)
    result = up(tmp_path, sized("20Gi"))
    assert result.exit_code == 0, result.output
    assert "changed     PersistentVolumeClaim meshreg/registry-data" in result.output
    assert ("meshreg: PersistentVolumeClaim meshreg/registry-data grows from 10Gi to 20Gi: the storage driver "
            "expands the volume, and unless it can grow a mounted filesystem, the filesystem grows only when the "
            "registry pod restarts (kubectl -n meshreg rollout restart deployment/registry)") in result.output
    claim = fake.get("v1", "PersistentVolumeClaim", "registry-data", namespace="meshreg")
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"


@pytest.mark.parametrize("binding, size, expected", [
    ({"expandable": False}, "20Gi",
     "PersistentVolumeClaim meshreg/registry-data: cannot grow from 10Gi to 20Gi: StorageClass standard does not "
     "allow volume expansion (allowVolumeExpansion is not true); set storage.size back to 10Gi, or, if "
     "ebs.csi.aws.com can expand volumes, allow it: kubectl patch storageclass standard -p "
     "'{\"allowVolumeExpansion\": true}'"),
    ({"storage_class": None, "capacity": "1Ti"}, "20Gi",
     "PersistentVolumeClaim meshreg/registry-data: cannot grow from 10Gi to 20Gi: the claim has no StorageClass (it "
     "is bound to PersistentVolume lab-pv-1 directly), and only claims of a StorageClass with allowVolumeExpansion: "
     "true can grow; set storage.size back to 10Gi, or grow that volume outside Kubernetes"),
    ({"phase": "Pending"}, "20Gi",
     "PersistentVolumeClaim meshreg/registry-data is Pending, not bound to a volume, and only a bound claim can be "
     "resized: it holds no images yet, so delete it (kubectl -n meshreg delete pvc registry-data) and run meshreg "
     "up again to create it with 20Gi, or set storage.size back to 10Gi"),
    ({}, "5Gi",
     "PersistentVolumeClaim meshreg/registry-data: storage.size 5Gi is smaller than the claim's 10Gi, and "
     "Kubernetes never shrinks a volume: set storage.size back to 10Gi (to use less space, move the images to a "
     "new, smaller registry: docs/operations.md)"),
])
def test_a_size_change_the_claim_cannot_take_is_refused_before_anything_changes(fake, tmp_path, binding, size,
                                                                                 expected):
    run("up", "-q")
    bind(fake, **binding)
    before, _ = versions(fake), fake.requests.clear()
    result = up(tmp_path, sized(size) + "  writers: [{serviceAccount: builds/kaniko}]\n")  # with a policy change
    assert result.exit_code == 1
    assert error(result).startswith(f"meshreg: error: {expected}")
    assert error(result).endswith("; nothing was changed")
    assert writes(fake) == [] and versions(fake) == before


def test_the_servers_own_refusal_is_quoted_beside_meshregs_explanation(fake, tmp_path):
    run("up", "-q")
    bind(fake, expandable=False)
    result = up(tmp_path, sized("20Gi"))
    assert error(result).endswith(
        "(the API server says: PersistentVolumeClaim meshreg/registry-data: refused by admission (not a permission "
        "problem): only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc "
        "must support resize); nothing was changed")


def test_a_storage_class_change_is_refused(fake, tmp_path):
    run("up", "-q")
    bind(fake)
    result = up(tmp_path, sized("10Gi", "fast"))
    assert error(result).startswith("meshreg: error: PersistentVolumeClaim meshreg/registry-data: "
                                    "storage.storageClassName 'fast' differs from the claim's 'standard', and the "
                                    "class of an existing claim cannot change")


# --- no success without enforcement

def test_up_fails_when_the_registry_pod_has_no_sidecar_and_says_how_to_fix_it(fake):
    fake.inject = False
    result = run("up", "-q")
    assert result.exit_code == 1
    assert error(result) == (
        "meshreg: error: not enforced: registry pod meshreg/registry-1-0 has no istio-proxy sidecar, so nothing "
        "enforces mTLS or the AuthorizationPolicies there: any pod can push; node-proxy pods meshreg/node-proxy-1-0, "
        "meshreg/node-proxy-1-1 were not injected as an Istio gateway (istio-proxy still has the placeholder image "
        "auto), so no proxy serves the node-local port. Fix sidecar injection (the namespace's istio-injection or "
        "istio.io/rev label must match a running istiod's injector, and no sidecar.istio.io/inject: \"false\" on the "
        "pods), then restart the pods: kubectl -n meshreg rollout restart deployment/registry daemonset/node-proxy "
        "(all 19 objects were applied)")
    assert "push (in-cluster writers)" not in result.output


def test_up_succeeds_when_every_pod_is_injected(fake):
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert "push (in-cluster writers)" in result.output


def test_up_without_waiting_says_enforcement_was_not_verified(fake):
    fake.inject = False
    result = run("up", "-q", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "meshreg: not waiting for the rollout, so sidecar injection is not verified; meshreg status checks it" \
        in result.output


# --- two instances in one cluster

def instance(name: str, namespace: str, port: int, *, publish: bool = True) -> str:
    hosting = "" if publish else "  localRegistryHosting: {publish: false}\n"
    return f"apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {{name: {name}}}\nspec:\n" \
           f"  namespace: {namespace}\n  nodeProxy: {{port: {port}}}\n{hosting}"


def test_a_second_instance_that_would_publish_too_is_told_whose_configmap_it_is_and_what_to_do(fake, tmp_path):
    assert up(tmp_path, instance("alpha", "registry-alpha", 5000)).exit_code == 0
    fake.requests.clear()
    result = up(tmp_path, instance("beta", "registry-beta", 5001))
    assert result.exit_code == 1
    assert error(result) == (
        "meshreg: error: owned by meshreg instance alpha (namespace registry-alpha), left alone: ConfigMap "
        "kube-public/local-registry-hosting; "
        "nothing was applied; only one instance can publish kube-public/local-registry-hosting: set "
        "spec.localRegistryHosting.publish: false in this config (its addresses are then published in "
        "kube-public/meshreg-beta-registries); --adopt never takes objects from another instance; see "
        "docs/operations.md")
    assert writes(fake) == []
    assert up(tmp_path, instance("beta", "registry-beta", 5001), "--adopt").exit_code == 1


def test_a_second_instance_in_the_same_namespace_is_told_to_take_its_own(fake, tmp_path):
    up(tmp_path, instance("alpha", "registry", 5000))
    result = up(tmp_path, instance("beta", "registry", 5001, publish=False))
    assert "owned by meshreg instance alpha (namespace registry), left alone: Namespace registry, ServiceAccount " \
        "registry/registry" \
        in error(result)
    assert "two instances cannot share objects: give this one its own spec.namespace and node-proxy port" \
        in error(result)


def test_two_instances_up_then_one_down_leaves_the_other_intact(fake, tmp_path):
    alpha, beta = instance("alpha", "registry-alpha", 5000), instance("beta", "registry-beta", 5001, publish=False)
    assert up(tmp_path, alpha).exit_code == 0
    result = up(tmp_path, beta)
    assert result.exit_code == 0, result.output
    assert "created     ConfigMap kube-public/meshreg-beta-registries" in result.output
    alpha_objects = {k: v for k, v in fake.objects.items() if k[2] == "registry-alpha" or k[3] == "registry-alpha"
                     or k[3] == "local-registry-hosting"}
    down = run("down", "-c", str(tmp_path / "m.yaml"))
    assert down.exit_code == 0, down.output
    assert fake.get("apps/v1", "Deployment", "registry", namespace="registry-beta") is None
    assert fake.get("v1", "ConfigMap", "meshreg-beta-registries", namespace="kube-public") is None
    assert {k: fake.objects.get(k) for k in alpha_objects} == alpha_objects
    assert "registry-alpha.svc.cluster.local" in fake.get("v1", "ConfigMap", "local-registry-hosting",
                                                          namespace="kube-public")["data"]["localRegistryHosting.v1"]
    assert up(tmp_path, alpha).exit_code == 0 and "19 unchanged" in up(tmp_path, alpha).output


def test_status_of_an_instance_that_does_not_publish_reads_its_own_addresses(fake, tmp_path):
    up(tmp_path, instance("alpha", "registry-alpha", 5000))
    up(tmp_path, instance("beta", "registry-beta", 5001, publish=False))
    result = run("status", "-c", str(tmp_path / "m.yaml"))
    assert "published: host=localhost:5001, hostFromContainerRuntime=localhost:5001, " \
           "hostFromClusterNetwork=registry.registry-beta.svc.cluster.local:5000" in result.output


def test_a_namespace_being_deleted_is_said_once(fake):
    run("up", "-q")
    fake.objects[("v1", "Namespace", None, "meshreg")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    fake.requests.clear()
    result = run("up", "-q")
    assert error(result) == ("meshreg: error: Namespace meshreg is being deleted; wait until it is gone (kubectl get "
                             "namespace meshreg), then run meshreg up again; nothing was changed")
    assert writes(fake) == []


"""`meshreg up` and `down` on the fake cluster (tests/support/fakes.py), through click's CliRunner (`status`:
tests/status)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import meshreg.cluster.client
from meshreg.cli import main
from meshreg.cluster.client import ConflictError
from support import fakes
from support.fakes import FakeCluster, refusal, registry_pod

WRITER_CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  writers:
    - serviceAccount: builds/kaniko
"""
NO_PROXY_CONFIG = WRITER_CONFIG + "  nodeProxy: {enabled: false}\n"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./meshreg.yaml: the built-in default config
    monkeypatch.delenv("NO_COLOR", raising=False)
    return fakes.connected(monkeypatch)


def run(*args):
    return CliRunner().invoke(main, list(args))


def writes(fake):
    return fakes.writes(fake)


def test_up_creates_every_rendered_object_and_prints_the_addresses(fake):
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.count("created ") == 19
    assert fake.get("apps/v1", "Deployment", "registry", namespace="meshreg") is not None
    assert "push (in-cluster writers): registry.meshreg.svc.cluster.local:5000" in result.output
    assert "pull (pod specs):          localhost:5000" in result.output
    assert "no writers: nobody can push; run meshreg policy grant NS/SA" in result.output


def test_second_up_reports_everything_unchanged_and_keeps_resource_versions(fake):
    run("up", "-q")
    before = {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()}
    result = run("up", "-q")
    assert result.exit_code == 0, result.output
    assert "19 unchanged" in result.output
    assert {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()} == before


def test_up_reports_a_changed_object_when_the_config_changes(fake, tmp_path):
    run("up", "-q")
    (tmp_path / "m.yaml").write_text(WRITER_CONFIG)
    result = run("up", "-q", "-c", str(tmp_path / "m.yaml"))
    assert "changed     AuthorizationPolicy meshreg/registry-allow-writes" in result.output
    assert "writers:                   builds/kaniko" in result.output


def test_dry_run_prints_outcomes_and_writes_nothing(fake):
    result = run("up", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 19 created" in result.output
    assert writes(fake) == []
    assert fake.get("v1", "Namespace", "meshreg") is None


def test_dry_run_after_up_reports_every_object_unchanged(fake):
    run("up", "-q")
    result = run("up", "--dry-run")
    assert "dry run: 19 unchanged" in result.output


def test_up_prunes_objects_the_config_no_longer_renders_but_keeps_the_pvc(fake, tmp_path):
    run("up", "-q")
    (tmp_path / "m.yaml").write_text(NO_PROXY_CONFIG)
    result = run("up", "-q", "-c", str(tmp_path / "m.yaml"))
    assert result.exit_code == 0, result.output
    assert "pruned      DaemonSet meshreg/node-proxy" in result.output
    assert fake.get("apps/v1", "DaemonSet", "node-proxy", namespace="meshreg") is None
    assert fake.get("v1", "PersistentVolumeClaim", "registry-data", namespace="meshreg") is not None


def test_dry_run_reports_what_would_be_pruned_without_deleting(fake, tmp_path):
    run("up", "-q")
    (tmp_path / "m.yaml").write_text(NO_PROXY_CONFIG)
    result = run("up", "--dry-run", "-c", str(tmp_path / "m.yaml"))
    assert "would prune DaemonSet meshreg/node-proxy" in result.output
    assert fake.get("apps/v1", "DaemonSet", "node-proxy", namespace="meshreg") is not None


def test_up_leaves_an_unmanaged_object_alone_and_says_so(fake):
    fake.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "registry", "namespace": "meshreg"}})
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshreg"}})
    result = run("up", "-q")
    assert result.exit_code == 1
    assert "not managed by meshreg, left alone:" in result.output and "Service meshreg/registry" in result.output
    assert writes(fake) == []


def test_up_adopt_takes_over_an_unmanaged_object(fake):
    fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "meshreg"}})
    result = run("up", "-q", "--adopt")
    assert result.exit_code == 0, result.output
    labels = fake.get("v1", "Namespace", "meshreg")["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "meshreg"


def test_conflict_with_another_manager_is_reported_and_force_overrides_it(fake):
    run("up", "-q")
    fake.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "meshreg"},
                "spec": {"replicas": 3}}, field_manager="kubectl-edit", force=True)
    result = run("up", "-q")
    assert result.exit_code == 1
    assert "Deployment meshreg/registry: conflict: fields .spec.replicas are owned by kubectl-edit" in result.output
    assert run("up", "-q", "--force-conflicts").exit_code == 0
    assert fake.get("apps/v1", "Deployment", "registry", namespace="meshreg")["spec"]["replicas"] == 1


def test_a_refusal_in_the_dry_run_changes_nothing_and_names_the_object(fake, tmp_path):
    run("up", "-q")
    fake.failures[("patch", "Deployment", "registry")] = refusal(
        403, "Deployment meshreg/registry", 'deployments.apps "registry" is forbidden: User "dev" cannot patch '
        'resource "deployments" in API group "apps" in the namespace "meshreg"')
    (tmp_path / "m.yaml").write_text(WRITER_CONFIG)  # a change: the policies would be applied
    fake.requests.clear()
    result = run("up", "-q", "-c", str(tmp_path / "m.yaml"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        'meshreg: error: Deployment meshreg/registry: not permitted (RBAC): User "dev" cannot patch resource '
        '"deployments" in API group "apps" in the namespace "meshreg"; nothing was changed')
    assert writes(fake) == []


def test_up_without_istio_crds_stops_before_any_write_with_an_install_hint(fake):
    fake.served_groups = {}
    result = run("up", "-q")
    assert result.exit_code == 1
    assert "Istio is not installed" in result.output and "istioctl install" in result.output
    assert writes(fake) == []


def test_up_without_a_matching_sidecar_injector_stops_before_any_write(fake):
    del fake.objects[("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                      "istio-sidecar-injector")]
    result = run("up", "-q")
    assert result.exit_code == 1 and "no Istio sidecar injector matches namespace meshreg" in result.output
    assert "Deployment registry, DaemonSet node-proxy" in result.output
    assert writes(fake) == []


def test_invalid_config_fails_before_connecting(monkeypatch, tmp_path):
    def refuse(**kw):
        raise AssertionError("connected despite an invalid config")
    monkeypatch.setattr(meshreg.cluster.client, "connect", refuse)
    (tmp_path / "m.yaml").write_text("apiVersion: meshreg.dev/v1alpha1\nkind: Nope\nmetadata: {name: x}\n")
    result = run("up", "-c", str(tmp_path / "m.yaml"))
    assert result.exit_code == 2 and "kind" in result.output


def test_up_times_out_with_the_image_pull_diagnosis(fake):
    fake.on_apply.clear()  # no controller: nothing ever becomes ready
    run("up", "--no-wait")
    registry_pod(fake, spec={"containers": [{"name": "registry"}, {"name": "istio-proxy"}]}, status={
        "containerStatuses": [{"name": "registry", "image": "registry:2.8.3", "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]})
    result = run("up", "--timeout", "1", "-q")
    assert result.exit_code == 1
    assert "timed out after 1s" in result.output
    assert "pod registry-abc: cannot pull image registry:2.8.3: Back-off pulling image" in result.output


def test_progress_is_plain_lines_when_not_a_tty(fake):
    result = CliRunner().invoke(main, ["up"])
    assert "waiting: registry 1/1, node-proxy 2/2 nodes" in result.output
    assert "\x1b" not in result.output and "\r" not in result.output


def test_down_keeps_the_pvc_and_namespace_and_is_safe_twice(fake):
    run("up", "-q")
    first, second = run("down"), run("down")
    assert first.exit_code == 0 and second.exit_code == 0
    assert fake.get("apps/v1", "Deployment", "registry", namespace="meshreg") is None
    assert fake.get("v1", "PersistentVolumeClaim", "registry-data", namespace="meshreg") is not None
    assert fake.get("v1", "Namespace", "meshreg") is not None
    assert "deleted" not in second.output


def test_down_deletes_workloads_in_the_foreground(fake):
    run("up", "-q")
    run("down")
    deletes = {r[1][1]: r[2]["propagation"] for r in fake.requests if r[0] == "delete"}
    assert deletes["Deployment"] == "Foreground" and deletes["Service"] == "Background"


def test_down_purge_without_yes_and_without_a_terminal_refuses(fake):
    run("up", "-q")
    result = run("down", "--purge")
    assert result.exit_code == 2 and "--yes" in result.output
    assert fake.get("v1", "PersistentVolumeClaim", "registry-data", namespace="meshreg") is not None


def test_down_purge_yes_deletes_the_pvc_and_the_namespace(fake):
    run("up", "-q")
    result = run("down", "--purge", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.get("v1", "Namespace", "meshreg") is None
    assert fake.get("v1", "PersistentVolumeClaim", "registry-data", namespace="meshreg") is None


def test_fake_rejects_conflicting_apply_without_force():
    fake = FakeCluster()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
          "data": {"a": "1"}}
    fake.apply(cm, field_manager="other")
    with pytest.raises(ConflictError):
        fake.apply({**cm, "data": {"a": "2"}})

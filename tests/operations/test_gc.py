"""The gc operation on the fake cluster: the Job from the CronJob, followed to its end, as a typed GcReport."""

from __future__ import annotations

import json

import pytest

from meshreg import config
from meshreg.cluster import apply as applying
from meshreg.errors import ClusterError, ConfigError, UsageError
from meshreg.operations.gc import GcReport, JobStarted, collectable, gc
from meshreg.render import render
from support.configs import GC_CONFIG
from support.fakes import FakeCluster, ready_controller

NS = "registry"
RESULT = {"dryRun": False, "deployment": "registry/workspace-images", "readOnly": "restored", "retention": [],
          "blobs": {"count": 1, "bytes": 10, "unknownSize": 0}, "untaggedManifests": 0}


class Lines:
    """A progress line that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, text: str) -> None:
        self.lines.append(text)

    def done(self) -> None:
        pass


def job_controller(log: str, *, state: str = "Complete"):
    """Play the Job controller and kubelet: a Job gets a pod with `log` as its gc container's log, and ends."""
    def hook(cluster, obj):
        if obj["kind"] != "Job":
            return
        name = obj["metadata"]["name"]
        cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{name}-x1", "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"batch.kubernetes.io/job-name": name}}})
        cluster.logs[(NS, f"{name}-x1", "gc")] = f"retention: ...\nMESHREG-GC-RESULT {log}\n"
        cluster.objects[cluster._key_of(obj)]["status"] = {"conditions": [{"type": state, "status": "True"}]}
        cluster.changed(cluster._key_of(obj))
    return hook


@pytest.fixture
def cfg() -> config.Config:
    return config.from_text(GC_CONFIG, name="t.yaml")


@pytest.fixture
def cluster(cfg) -> FakeCluster:
    """The gc config applied to a fake cluster whose controllers finish everything at once."""
    cluster = FakeCluster()
    cluster.on_apply.append(ready_controller)
    applying.apply(manifests=render(cfg), cluster=cluster)
    return cluster


def test_a_completed_run_reports_the_job_its_state_and_its_result(cfg, cluster):
    cluster.on_apply.append(job_controller(json.dumps(RESULT)))
    told: list[JobStarted] = []
    report = gc(cfg, cluster, registry=None, dry_run=False, timeout=60, progress=Lines(), started=told.append,
                clock=lambda: 1000.0)
    [job] = [o["metadata"]["name"] for o in cluster.objects.values() if o["kind"] == "Job"]
    assert told == [JobStarted(namespace=NS, job=job, cron="workspace-images-gc")]
    assert report == GcReport(namespace=NS, job=job, state="Complete", result=RESULT, result_error="",
                              registry="workspace-images", dry_run=False, writable_at=1000.0)
    assert report.ok


def test_after_a_real_run_it_waits_for_the_writable_registry_and_after_a_dry_run_it_does_not(cfg, cluster):
    cluster.on_apply.append(job_controller(json.dumps(RESULT)))
    real, dry = Lines(), Lines()
    gc(cfg, cluster, registry="workspace-images", dry_run=False, timeout=60, progress=real)
    gc(cfg, cluster, registry="workspace-images", dry_run=True, timeout=60, progress=dry)
    assert [line for line in real.lines if line.startswith("waiting: workspace-images ")]
    assert not [line for line in dry.lines if line.startswith("waiting: ")]


def test_a_failed_job_or_a_result_with_an_error_is_not_ok(cfg, cluster):
    cluster.on_apply.append(job_controller(json.dumps({**RESULT, "error": "boom"}), state="Failed"))
    report = gc(cfg, cluster, registry=None, dry_run=False, timeout=60, progress=Lines())
    assert (report.state, report.result["error"], report.ok) == ("Failed", "boom", False)


def test_a_result_that_cannot_be_read_says_why(cfg, cluster):
    cluster.on_apply.append(job_controller("not json"))
    report = gc(cfg, cluster, registry=None, dry_run=True, timeout=60, progress=Lines())
    assert (report.state, report.result, report.result_error, report.ok) == (
        "Complete", None, "the log has no result line", False)


def test_only_a_registry_with_gc_is_collectable(cfg):
    assert collectable(cfg, None).name == "workspace-images"
    assert collectable(cfg, "service-images").name == "service-images"
    with pytest.raises(UsageError, match=r"^t.yaml: registry cache has no gc \(add gc: "):
        collectable(cfg, "cache")
    with pytest.raises(ConfigError):
        collectable(cfg, "nope")


def test_gc_of_a_registry_without_gc_asks_nothing_of_the_cluster(cfg):
    cluster = FakeCluster()
    with pytest.raises(UsageError, match="has no gc"):
        gc(cfg, cluster, registry="cache", dry_run=False, timeout=60, progress=Lines())
    assert cluster.requests == []


def _switched(cluster: FakeCluster) -> None:
    """The registry as a gc Job's read-only switch leaves it."""
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "workspace-images",
                   "namespace": NS}, "spec": {"template": {"spec": {"containers": [{"name": "registry", "env": [
                       {"name": "REGISTRY_STORAGE_MAINTENANCE_READONLY", "value": '{"enabled": true}'}]}]}}}},
                  force=True, field_manager="meshreg-gc")


def _env(cluster: FakeCluster) -> list:
    deployment = cluster.get("apps/v1", "Deployment", "workspace-images", namespace=NS)
    return deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])


def test_a_registry_an_earlier_job_left_read_only_is_made_writable_first_and_said_so(cfg, cluster):
    _switched(cluster)  # a Job whose pod was killed (SIGKILL, a lost node) before it withdrew its switch
    cluster.on_apply.append(job_controller(json.dumps(RESULT)))
    report = gc(cfg, cluster, registry="workspace-images", dry_run=False, timeout=60, progress=Lines())
    assert report.recovered == ("registry registry/workspace-images is read-only, and no gc Job is running to make it "
                                "writable again (the last one was stopped before it could): made it writable again "
                                "first")
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY" not in str(_env(cluster))


def test_a_dry_run_only_says_the_registry_was_left_read_only(cfg, cluster):
    _switched(cluster)
    cluster.on_apply.append(job_controller(json.dumps({**RESULT, "dryRun": True})))
    report = gc(cfg, cluster, registry="workspace-images", dry_run=True, timeout=60, progress=Lines())
    assert report.recovered.endswith("; run meshreg gc without --dry-run to make it writable again")
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY" in str(_env(cluster))


def test_gc_is_refused_while_another_gc_job_of_the_registry_runs(cfg, cluster):
    cluster.on_apply.append(job_controller(json.dumps(RESULT), state="Running"))
    gc_job = gc  # the first Job never finishes: follow it briefly
    with pytest.raises(Exception, match="did not finish"):
        gc_job(cfg, cluster, registry="workspace-images", dry_run=False, timeout=0.01, progress=Lines())
    _switched(cluster)  # read-only because that Job is running: not to be undone
    with pytest.raises(ClusterError, match=r"^gc Job registry/workspace-images-gc-manual-\d+ of registry "
                                           r"workspace-images is still running; wait for it"):
        gc(cfg, cluster, registry="workspace-images", dry_run=False, timeout=60, progress=Lines())
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY" in str(_env(cluster))


def test_status_says_a_registry_was_left_read_only_and_is_unhealthy_until_gc_runs(cfg, cluster):
    from meshreg.cli.output import status as formats
    from meshreg.operations.status import status
    from meshreg.status.judge import registry_healthy

    [before] = [r for r in status(cfg, cluster).registries if r.name == "workspace-images"]
    _switched(cluster)
    after = status(cfg, cluster)
    [entry] = [r for r in after.registries if r.name == "workspace-images"]
    assert registry_healthy(before) and entry.gc.left_read_only and not registry_healthy(entry)
    assert "READ-ONLY: left so by a gc Job stopped before it could undo it: writes are refused; meshreg gc makes " \
           "it writable again first" in formats.text(after)

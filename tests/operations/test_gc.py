"""The gc operation on the fake cluster: the Job from the CronJob, followed to its end, as a typed GcReport."""

from __future__ import annotations

import json

import pytest

from meshreg import config
from meshreg.cluster import apply as applying
from meshreg.errors import ConfigError, UsageError
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
    report = gc(cfg, cluster, registry=None, dry_run=False, timeout=60, progress=Lines(), started=told.append)
    [job] = [o["metadata"]["name"] for o in cluster.objects.values() if o["kind"] == "Job"]
    assert told == [JobStarted(namespace=NS, job=job, cron="workspace-images-gc")]
    assert report == GcReport(namespace=NS, job=job, state="Complete", result=RESULT, result_error="",
                              registry="workspace-images", dry_run=False)
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

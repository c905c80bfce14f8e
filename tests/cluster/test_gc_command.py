"""`meshreg gc` and the gc lines of `status`, on the fake cluster (meshreg's own wrapper level)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg import status as statuses
from meshreg.cli import main
from meshreg.cli.output import status as status_output
from meshreg.cluster import apply as applying
from meshreg.cluster import gc as gcs
from meshreg.render import render
from support.configs import GC_CONFIG
from support.fakes import FakeCluster, ready_controller, route

NS = "registry"
RESULT = {"dryRun": False, "deployment": "registry/workspace-images", "readOnly": "restored",
          "retention": [{"repository": "workspace/alice", "tags": ["t1", "t2"], "manifests": ["sha256:a"]}],
          "blobs": {"count": 4, "bytes": 3 * 1024 * 1024, "unknownSize": 0}, "untaggedManifests": 1}


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
        live = cluster.objects[cluster._key_of(obj)]
        live["status"] = {"conditions": [{"type": state, "status": "True"}], "startTime": "2026-01-01T00:00:01Z"}
    return hook


@pytest.fixture
def deployed(write_config, monkeypatch):
    """The gc config applied to a fake cluster whose controllers finish everything at once."""
    path = write_config(GC_CONFIG)
    cluster = FakeCluster()
    cluster.on_apply.append(ready_controller)
    applying.apply(manifests=render(config.load(str(path))), cluster=cluster)
    route(monkeypatch, cluster)
    return cluster, path


def run(path, *args):
    return CliRunner().invoke(main, ["gc", "-c", str(path), "--quiet", *args])


def test_gc_creates_a_job_from_the_cronjob_follows_it_and_prints_what_went(deployed):
    cluster, path = deployed
    cluster.on_apply.append(job_controller(json.dumps(RESULT)))
    result = run(path)
    assert result.exit_code == 0, result.output
    [job] = [o for o in cluster.objects.values() if o["kind"] == "Job"]
    cron = cluster.get("batch/v1", "CronJob", "workspace-images-gc", namespace=NS)
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == cron["metadata"]["uid"]
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert "retention: workspace/alice: deleted t1, t2 (1 manifests)" in result.output
    assert "garbage-collect: 4 blobs deleted, 3.0 MiB reclaimed" in result.output
    assert "read-only while collecting, writable again" in result.output


def test_dry_run_tells_the_job_so_and_words_it_as_would(deployed):
    cluster, path = deployed
    cluster.on_apply.append(job_controller(json.dumps({**RESULT, "dryRun": True, "readOnly": None})))
    result = run(path, "--dry-run", "--registry", "workspace-images")
    assert result.exit_code == 0, result.output
    [job] = [o for o in cluster.objects.values() if o["kind"] == "Job"]
    [gc] = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "gc"]
    assert {"name": "MESHREG_GC_DRY_RUN", "value": "true"} in gc["env"] and "-dry-run-" in job["metadata"]["name"]
    assert "would delete t1, t2" in result.output and "4 blobs would be deleted" in result.output


def test_a_failed_job_is_exit_1_with_where_to_look(deployed):
    cluster, path = deployed
    cluster.on_apply.append(job_controller(json.dumps({**RESULT, "error": "boom"}), state="Failed"))
    result = run(path)
    assert result.exit_code == 1
    assert "failed: kubectl -n registry logs job/workspace-images-gc-manual-" in result.output


def test_a_result_line_missing_from_the_log_is_said_plainly(deployed):
    cluster, path = deployed
    cluster.on_apply.append(job_controller("not json"))
    result = run(path, "-o", "json")
    assert result.exit_code == 1 and json.loads(result.stdout)["result"] is None


def test_gc_of_a_registry_without_gc_is_bad_input(deployed):
    _, path = deployed
    result = run(path, "--registry", "cache")
    assert result.exit_code == 2 and "registry cache has no gc" in result.output


def test_gc_before_up_says_to_run_up(write_config, monkeypatch):
    route(monkeypatch, FakeCluster())
    result = run(write_config(GC_CONFIG))
    assert result.exit_code == 2 and "CronJob registry/workspace-images-gc is not on" in result.output


def test_status_shows_the_last_run_and_the_volume_usage(deployed):
    cluster, path = deployed
    cluster.on_apply.append(job_controller(json.dumps(RESULT)))
    assert run(path).exit_code == 0
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wi-1", "namespace": NS, "labels": {
        "app.kubernetes.io/instance": "dev", "app.kubernetes.io/name": "registry",
        "meshreg.dev/registry": "workspace-images"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    cluster.put(pod)
    cluster.summaries["n1"] = {"pods": [{"podRef": {"name": "wi-1"}, "volume": [
        {"name": "data", "pvcRef": {"name": "workspace-images-data"}, "usedBytes": 5 << 30,
         "capacityBytes": 50 << 30}]}]}
    report = statuses.report(cluster, config.load(str(path)), manifests=render(config.load(str(path))))
    entry = next(r for r in status_output.data(report)["registries"] if r["name"] == "workspace-images")
    assert entry["gc"]["lastJob"]["state"] == "Complete" and entry["gc"]["schedule"] == "0 3 * * 0"
    assert entry["volume"] == {"usedBytes": 5 << 30, "capacityBytes": 50 << 30, "reason": None}
    text = status_output.text(report)
    assert "gc: 0 3 * * 0; last Job workspace-images-gc-manual-" in text and "volume: 5.0 GiB used of 50.0 GiB" in text


def test_job_names_stay_within_63_characters():
    cron = {"metadata": {"name": "x" * 40 + "-gc", "namespace": NS, "uid": "u"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}
    assert len(gcs.job_from(cron, dry_run=True, now=2_000_000_000)["metadata"]["name"]) <= 63


def test_meshreg_reads_the_result_line_the_coordinator_prints():
    from meshreg.cluster import gc
    from meshreg.gcjob import run as coordinator
    assert gc.RESULT == coordinator.RESULT

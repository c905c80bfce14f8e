"""gc is safe to interrupt: whichever step the Job is stopped at (SIGTERM, as the kubelet sends it for the Job's
deadline or a deleted Job or pod), and whichever garbage-collect container fails or cannot start, the registry is
writable again when the Job ends, at once rather than at a deadline, and garbage-collect needs no shell in the
registry's image. Run as tests/e2e/test_gc.py runs the rendered pod (tests/support/lab/gcjob.py)."""

from __future__ import annotations

import sys
import time
from contextlib import closing

import pytest

from support.lab import images
from support.lab.clients import skopeo_copy
from support.lab.gcjob import GcJob
from support.lab.mesh import Lab

from .test_gc import CONFIG, push

READ_ONLY = "REGISTRY_STORAGE_MAINTENANCE_READONLY"


@pytest.fixture(scope="module")
def gc(real_parts, tmp_path_factory):
    with closing(Lab(CONFIG, tmp_path_factory.mktemp("gc-stop"))) as lab, closing(GcJob(lab)) as job:
        yield job


@pytest.fixture(scope="module")
def filled(gc, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gc-stop-images")
    for day in range(1, 5):  # retention (keepNewest: 2) deletes two of them
        image = images.build(tmp / f"v{day}", layer_sizes=(5000,), created=f"2026-02-{day:02d}T00:00:00Z")
        assert push(gc.lab, image, f"team-a/app:v{day}").returncode == 0


def writable(gc, tmp_path, tag: str) -> None:
    """The registry has no read-only switch left and takes a push."""
    assert gc.deployment.env == {}, gc.deployment.env
    image = images.build(tmp_path / tag, layer_sizes=(1000,))
    result = push(gc.lab, image, f"team-b/after:{tag}")
    assert result.returncode == 0, result.stderr


def test_the_shared_script_is_gone_and_garbage_collect_is_the_registry_binary_itself(gc):
    commands = [c["command"] for c in gc.pod["containers"] + gc.pod["initContainers"]]
    assert [c[:2] for c in commands if c[0] != "python"] == [["registry", "garbage-collect"]] * 3
    assert not [c for c in commands if c[0] in ("sh", "/bin/sh", "bash")]


@pytest.mark.parametrize(("step", "switched"), [
    ("retention: team-a/app", None),  # once retention has deleted, just before (or while) switching
    ("registry registry/registry: read-only", True),  # while the registry restarts read-only
    ("garbage-collect: garbage-collect running", True),  # while garbage-collect runs
])
def test_a_job_stopped_at_any_step_leaves_the_registry_writable(gc, filled, tmp_path, step, switched: bool | None):
    run = gc.run(stop_when=step)
    assert run.codes["gc"] == 1 and "stopped by SIGTERM" in run.result["error"], run.logs
    expected = {None, "restored"} if switched is None else {"restored" if switched else None}
    assert run.result.get("readOnly") in expected, run.result
    writable(gc, tmp_path, f"after-{len(step)}")


def test_a_garbage_collect_container_that_fails_makes_the_registry_writable_at_once(gc, filled, tmp_path):
    fails = [sys.executable, "-c", "import sys; open(sys.argv[1]).read(); print('panic: bad disk'); sys.exit(3)",
             str(gc.lab.root / f"gc-run-{gc.runs + 1}" / "shared" / "garbage-collect.yml")]
    started = time.monotonic()
    run = gc.run(replace={"garbage-collect": fails})
    assert time.monotonic() - started < 60  # not the Job's deadline
    assert run.result["error"] == "garbage-collect exited 3: panic: bad disk", run.result
    assert run.result["readOnly"] == "restored" and [a["body"]["spec"]["template"]["spec"]["containers"][0]
                                                      .get("env") for a in run.applied] == [
        [{"name": READ_ONLY, "value": '{"enabled": true}'}], None]
    writable(gc, tmp_path, "after-failure")


def test_a_garbage_collect_container_that_cannot_start_is_named_and_the_registry_made_writable(gc, filled, tmp_path):
    run = gc.run(unstartable=("garbage-collect",))
    assert run.result["error"].startswith("garbage-collect cannot start: ImagePullBackOff: Back-off pulling image")
    assert run.result["readOnly"] == "restored"
    writable(gc, tmp_path, "after-pull-failure")


def test_a_registry_nothing_was_pushed_to_is_left_alone_without_error(real_parts, tmp_path):
    """distribution's garbage-collect fails on such a storage (Path not found): the Job does not run it, nor restart
    the registry, and every container exits 0 (a Job's pod fails when any container does)."""
    with closing(Lab(CONFIG, tmp_path / "lab")) as lab, closing(GcJob(lab)) as job:
        run = job.run()
        assert run.result.get("error") is None and run.result["blobs"]["count"] == 0, run.logs
        assert "readOnly" not in run.result and run.applied == [] and set(run.codes.values()) == {0}


def test_the_result_records_when_the_registry_stopped_and_started_taking_writes(gc, filled):
    run = gc.run()
    window = run.result["window"]
    assert window["readOnlyFrom"] <= window["readOnlyServing"] <= window["writableFrom"]
    pull = skopeo_copy(f"docker://{gc.lab.node_proxy}/team-a/app:v4", f"oci:{gc.lab.root / 'pulled'}:x")
    assert pull.returncode == 0, pull.stderr

"""Long waits show progress: on a terminal one line rewritten in place, its clock moving; piped, a line only when what
is waited for changes. Through the commands (`up`, `gc`, `verify`) on the fake cluster, and the line itself."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.cluster import apply as applying
from meshreg.cluster import gc as gcs
from meshreg.cluster import wait as waiting
from meshreg.render import render
from support import fakes
from support.configs import GC_CONFIG
from support.fakes import FakeCluster, ready_controller, route


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def slow(monkeypatch, function, *, polls: int, then=lambda: None) -> None:
    """Make `function`'s polling loop sleep 2 s per poll on a clock of its own, and run `then` after `polls` sleeps."""
    now = [0.0]
    slept = itertools.count(1)

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if next(slept) == polls:
            then()

    monkeypatch.setitem(function.__kwdefaults__, "clock", lambda: now[0])
    monkeypatch.setitem(function.__kwdefaults__, "sleep", sleep)


def progress_lines(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    cluster = fakes.connected(monkeypatch)
    cluster.on_apply.clear()  # the rollout finishes only when the test says so
    return cluster


def finish_rollouts(cluster: FakeCluster) -> None:
    for key, obj in list(cluster.objects.items()):
        if key[1] in ("Deployment", "DaemonSet"):
            ready_controller(cluster, obj)


def test_up_piped_prints_a_progress_line_only_when_the_rollout_changes(cluster, monkeypatch):
    slow(monkeypatch, waiting.wait, polls=4, then=lambda: finish_rollouts(cluster))
    result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 0, result.output
    # five polls, 0 s to 8 s: the first state once, then the finished rollout once
    assert progress_lines(result.stderr, "waiting: ") == [
        "waiting: registry 0/1, node-proxy 0/0 nodes (0s)", "waiting: registry 1/1, node-proxy 2/2 nodes (8s)"]
    assert "\r" not in result.stderr and "\x1b" not in result.stderr


def test_up_with_output_json_still_shows_progress_on_stderr_only(cluster, monkeypatch):
    slow(monkeypatch, waiting.wait, polls=2, then=lambda: finish_rollouts(cluster))
    result = CliRunner().invoke(main, ["up", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "UpReport"
    assert len(progress_lines(result.stderr, "waiting: ")) == 2


def test_up_quiet_shows_no_progress(cluster, monkeypatch):
    slow(monkeypatch, waiting.wait, polls=2, then=lambda: finish_rollouts(cluster))
    result = CliRunner().invoke(main, ["up", "-q"])
    assert result.exit_code == 0 and not progress_lines(result.stderr, "waiting: ")


def test_gc_piped_prints_each_state_of_the_job_once(write_config, monkeypatch):
    path = write_config(GC_CONFIG)
    cluster = FakeCluster()
    cluster.on_apply.append(ready_controller)
    applying.apply(manifests=render(config.load(str(path))), cluster=cluster)
    route(monkeypatch, cluster)

    def run_job(cluster: FakeCluster, obj: dict) -> None:
        if obj["kind"] == "Job":
            cluster.objects[cluster._key_of(obj)]["status"] = {"active": 1}

    def complete() -> None:
        job = next(o for k, o in cluster.objects.items() if k[1] == "Job")
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}

    cluster.on_apply.append(run_job)
    slow(monkeypatch, gcs.follow, polls=3, then=complete)
    result = CliRunner().invoke(main, ["gc", "-c", str(path), "--dry-run"])
    lines = progress_lines(result.stderr, "Job ")
    assert [line.split(": ", 1)[1] for line in lines] == ["running (0s)", "Complete (6s)"]


def test_verify_piped_prints_no_line_twice(monkeypatch, tmp_path):
    from support.verify_helpers import CONFIG, deployed_cluster

    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(CONFIG)
    route(monkeypatch, deployed_cluster()[0])
    result = CliRunner().invoke(main, ["verify"])
    lines = progress_lines(result.stderr, "verify: ")
    assert lines and all(a != b for a, b in itertools.pairwise(lines))
    assert not [line for line in lines if line.endswith("s)")]  # no clock when piped


def test_a_terminal_sees_the_clock_move_and_a_pipe_only_news():
    tty, pipe = TtyBuffer(), io.StringIO()
    for out in (tty, pipe):
        progress = waiting.Progress(stream=out)
        for text in ("waiting: registry 0/1 (0s)", "waiting: registry 0/1 (2s)", "waiting: registry 1/1 (4s)"):
            progress.update(text)
        progress.done()
    assert tty.getvalue() == ("\r\x1b[Kwaiting: registry 0/1 (0s)\r\x1b[Kwaiting: registry 0/1 (2s)"
                              "\r\x1b[Kwaiting: registry 1/1 (4s)\n")
    assert pipe.getvalue() == "waiting: registry 0/1 (0s)\nwaiting: registry 1/1 (4s)\n"


def test_a_new_wait_after_done_starts_a_new_line(monkeypatch):
    pipe = io.StringIO()
    progress = waiting.Progress(stream=pipe)
    progress.update("Job j: Complete (3s)")
    progress.done()
    progress.update("Job j: Complete (0s)")
    assert pipe.getvalue().count("Job j: Complete") == 2


def test_a_dumb_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    out = TtyBuffer()
    waiting.Progress(stream=out).update("a")
    assert out.getvalue() == "a\n"

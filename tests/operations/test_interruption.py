"""Ctrl-C in `up` and `down`: one line saying where it stopped and what to run, exit 130, nothing half-made that the
next run cannot finish (a Namespace created for the dry run is deleted again), and requests not yet sent never sent.
The same on the real API server and node, SIGKILL included: tests/realstack/test_interrupted.py."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.cluster import parallel
from meshreg.errors import Interrupted
from meshreg.operations.down import down
from meshreg.operations.up import up
from support.fakes import INJECTOR, FakeCluster, ready_controller, route


class Stopping(FakeCluster):
    """A cluster where Ctrl-C arrives during the first request `when(verb, obj_or_kind, dry_run)` matches."""

    def __init__(self, when) -> None:
        super().__init__()
        self.when, self.fired = when, False
        self.put(INJECTOR)
        self.on_apply.append(ready_controller)

    def _stop(self, *what) -> None:
        if not self.fired and self.when(*what):
            self.fired = True
            raise KeyboardInterrupt

    def apply(self, obj, *, dry_run=False, force=False, field_manager="meshreg"):
        self._stop("apply", obj["kind"], dry_run)
        return super().apply(obj, dry_run=dry_run, force=force, field_manager=field_manager)

    def delete(self, api_version, kind, name, *, namespace=None, propagation="Background", dry_run=False):
        self._stop("delete", kind, dry_run)
        return super().delete(api_version, kind, name, namespace=namespace, propagation=propagation,
                              dry_run=dry_run)


def test_ctrl_c_in_the_first_dry_run_of_the_parent_says_the_checks_stopped_and_creates_nothing():
    cluster = Stopping(lambda verb, kind, dry_run: verb == "apply" and dry_run)  # the parent's, in the checks
    with pytest.raises(Interrupted) as stopped:
        up(config.DEFAULT, cluster)
    assert str(stopped.value) == "interrupted during the checks, before anything was changed; run meshreg up again"
    assert cluster.get("v1", "Namespace", "meshreg") is None
    assert not [r for r in cluster.requests if r[0] == "apply" and not r[2]["dry_run"]]


def test_ctrl_c_in_the_dry_run_deletes_the_namespace_it_created_and_says_nothing_changed():
    cluster = Stopping(lambda verb, kind, dry_run: verb == "apply" and dry_run and kind == "Deployment")
    with pytest.raises(Interrupted) as stopped:
        up(config.DEFAULT, cluster)
    assert stopped.value.exit_code == 130
    assert str(stopped.value) == ("interrupted during the server's dry run, before anything was changed (a namespace "
                                  "created for it is deleted again); run meshreg up again")
    assert cluster.get("v1", "Namespace", "meshreg") is None


def test_ctrl_c_while_applying_says_so_and_the_next_up_finishes_it():
    cluster = Stopping(lambda verb, kind, dry_run: verb == "apply" and kind == "Deployment" and not dry_run)
    with pytest.raises(Interrupted, match=r"^interrupted while applying: some objects are applied, the others not "
                                          r"yet; .* run meshreg up again to finish \(it converges\), or meshreg down"):
        up(config.DEFAULT, cluster)
    assert cluster.get("apps/v1", "Deployment", "registry", namespace="meshreg") is None
    assert cluster.get("v1", "ConfigMap", "meshreg-meshreg", namespace="meshreg") is not None  # the parent first
    again = up(config.DEFAULT, cluster)
    assert again.counts["created"] >= 1 and cluster.get("apps/v1", "Deployment", "registry", namespace="meshreg")


def test_ctrl_c_while_deleting_keeps_the_images_and_the_next_down_finishes_it():
    cluster = Stopping(lambda verb, kind, dry_run: verb == "delete")
    up(config.DEFAULT, cluster)
    with pytest.raises(Interrupted, match=r"^interrupted while deleting: some objects are deleted, the others not yet; "
                                          r"the images' claim and its namespace are kept; run meshreg down again"):
        down(config.DEFAULT, cluster)
    assert down(config.DEFAULT, cluster).counts["kept"] == 3


def test_the_cli_prints_one_line_and_exits_130(monkeypatch, tmp_path):
    route(monkeypatch, Stopping(lambda verb, kind, dry_run: verb == "apply" and not dry_run and kind != "Namespace"))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["up", "--skip-checks"])
    assert done.exit_code == 130
    assert done.stderr.splitlines()[-1].startswith("meshreg: error: interrupted while applying: ")
    assert "Traceback" not in done.output and "Aborted" not in done.output


def test_ctrl_c_in_any_other_command_is_one_line_too(monkeypatch, tmp_path):
    cluster = route(monkeypatch, Stopping(lambda *what: False))
    monkeypatch.setattr(cluster, "get", lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["status"])
    assert (done.exit_code, done.stderr.splitlines()[-1]) == (130, "meshreg: error: interrupted")


def test_requests_not_yet_sent_are_never_sent_after_ctrl_c(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 2)
    sent, lock = [], threading.Lock()

    def send(item: int) -> int:
        with lock:
            sent.append(item)
        if item == 1:
            raise KeyboardInterrupt
        time.sleep(0.05)  # a request on the wire
        return item

    with pytest.raises(KeyboardInterrupt):
        parallel.each(send, range(50))
    assert len(sent) < 10


def test_an_up_right_after_a_prune_waits_for_the_pruned_workload_to_go_then_creates_it_again():
    """A prune (or an interrupted run's) deletes a Deployment in the foreground: it stays, with a deletionTimestamp,
    until its pods are gone. Applied then, it would read "unchanged" and vanish a moment later."""
    cluster = Stopping(lambda *what: False)
    up(config.DEFAULT, cluster)
    key = ("apps/v1", "Deployment", "registry")
    going = cluster.get(*key, namespace="meshreg")
    going["metadata"]["deletionTimestamp"] = "2026-12-06T09:00:00Z"
    cluster.put(going)
    gets = []
    real_get = cluster.get

    def get(api_version, kind, name, *, namespace=None):
        if (api_version, kind, name) == key and not gets:
            gets.append(name)
            cluster.objects.pop(cluster._key(api_version, kind, namespace, name))  # its pods are gone now
        return real_get(api_version, kind, name, namespace=namespace)

    cluster.get = get
    report = up(config.DEFAULT, cluster)
    assert ("Deployment", "created") in {(o.kind, o.action) for o in report.outcomes}
    assert real_get(*key, namespace="meshreg") is not None

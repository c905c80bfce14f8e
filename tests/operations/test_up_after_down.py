"""`up` right after `down`: down deletes workloads in the foreground, so they stay (with a deletionTimestamp) until
their pods are gone. Applying to them would change nothing and then they would vanish (seen on the real stack: up
said "unchanged" and waited 180 s for a registry that was gone). up waits until they are gone, then creates them."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.cluster import deleting
from meshreg.cluster.wait import Progress
from meshreg.errors import ClusterError
from meshreg.operations.up import UpEvents, up
from support.fakes import INJECTOR, FakeCluster, ready_controller

KEY = ("apps/v1", "Deployment", "meshreg", "registry")


class Collecting(FakeCluster):
    """A fake whose garbage collector removes an object being deleted after it was read `after` times."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def get(self, api_version, kind, name, *, namespace=None):
        found = super().get(api_version, kind, name, namespace=namespace)
        key = (api_version, kind, namespace, name)
        if found and found["metadata"].get("deletionTimestamp") and key == KEY:
            self.after -= 1
            if self.after <= 0:
                del self.objects[key]
        return found


def deployed(after: int) -> Collecting:
    fake = Collecting(after)
    fake.put(INJECTOR)
    fake.on_apply.append(ready_controller)
    up(config.DEFAULT, fake)
    fake.objects[KEY]["metadata"]["deletionTimestamp"] = "2026-12-06T08:00:00Z"
    fake.objects[KEY]["metadata"]["finalizers"] = ["foregroundDeletion"]
    return fake


class Said(UpEvents):
    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def test_up_waits_for_a_deployment_being_deleted_and_then_creates_it(monkeypatch):
    monkeypatch.setattr(deleting.time, "sleep", lambda s: None)
    fake = deployed(after=3)
    report = up(config.DEFAULT, fake)
    assert dict(report.counts).get("created") == 1  # the registry Deployment, created anew
    assert "deletionTimestamp" not in fake.objects[KEY]["metadata"]


def test_a_dry_run_only_says_that_up_would_wait(monkeypatch):
    fake = deployed(after=100)
    events = Said()
    up(config.DEFAULT, fake, dry_run=True, events=events)
    assert "1 object(s) are being deleted; up waits until they are gone before applying" in events.warnings


def test_an_object_that_never_goes_is_an_error_naming_it_and_nothing_is_changed():
    fake = deployed(after=10**6)
    clock = iter(range(0, 10_000))
    with pytest.raises(ClusterError, match="still being deleted after 5s: Deployment meshreg/registry"):
        deleting.await_gone(fake, [fake.objects[KEY]], timeout=5, progress=Progress(quiet=True),
                            clock=lambda: float(next(clock)), sleep=lambda s: None)

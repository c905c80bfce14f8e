"""The up, down and status flows as operations, without the CLI: typed reports, and events in the order the CLI
prints them."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.cluster.outcomes import Outcome
from meshreg.operations.down import DownEvents, Purge, down
from meshreg.operations.status import status
from meshreg.operations.up import UpEvents, UpReport, up
from support.fakes import INJECTOR, FakeCluster, ready_controller


@pytest.fixture
def fake() -> FakeCluster:
    cluster = FakeCluster()
    cluster.put(INJECTOR)
    cluster.on_apply.append(ready_controller)
    return cluster


class Recorder(UpEvents, DownEvents):
    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []

    def dry_run(self, server: str) -> None:
        self.said.append("dry run")

    def outcome(self, outcome: Outcome) -> None:
        self.said.append("outcome")

    def applied(self, report: UpReport) -> None:
        self.said.append("applied")

    def confirm_purge(self, purge: Purge) -> None:
        self.said.append(f"purge {purge.claim} {','.join(purge.namespaces)}")
        raise RuntimeError("no")


def test_up_returns_what_it_applied_and_where_to_push_and_pull_and_prints_nothing(fake, capsys):
    report = up(config.DEFAULT, fake)
    assert report.counts == {"created": 19} and not report.dry_run
    [addresses] = report.addresses
    assert addresses.pull == "localhost:5000" and addresses.push == "registry.meshreg.svc.cluster.local:5000"
    assert capsys.readouterr() == ("", "")


def test_up_tells_each_outcome_as_it_happens_then_that_everything_is_applied(fake):
    events = Recorder()
    up(config.DEFAULT, fake, dry_run=True, events=events)
    assert events.said == ["dry run", *["outcome"] * 19, "applied"]


def test_down_asks_before_a_purge_and_deletes_nothing_when_the_answer_is_no(fake):
    up(config.DEFAULT, fake)
    events = Recorder()
    with pytest.raises(RuntimeError):
        down(config.DEFAULT, fake, purge=True, events=events)
    assert events.said == ["purge meshreg/registry-data meshreg"]
    assert fake.get("apps/v1", "Deployment", "registry", namespace="meshreg") is not None


def test_down_then_status_report_what_is_left(fake):
    up(config.DEFAULT, fake)
    report = down(config.DEFAULT, fake)
    assert report.counts["deleted"] > 0 and report.counts["kept"] == 3 and report.note is None
    assert sorted(str(o) for o in report.outcomes if o.action == "kept") == [  # the data, and whose it is
        "ConfigMap meshreg/meshreg-meshreg", "Namespace meshreg", "PersistentVolumeClaim meshreg/registry-data"]
    after = status(config.DEFAULT, fake)
    assert not after.healthy and {o.state for o in after.objects} == {"missing", "present"}

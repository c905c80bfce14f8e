"""`meshreg status` on the fake cluster (tests/support/fakes.py), through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support import fakes
from support.fakes import registry_pod


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./meshreg.yaml: the built-in default config
    monkeypatch.delenv("NO_COLOR", raising=False)
    return fakes.connected(monkeypatch)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_status_after_up_is_healthy_when_pods_carry_the_sidecar(fake):
    run("up", "-q")
    registry_pod(fake, spec={"containers": [{"name": "registry"}],
                             "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]})
    result = run("status", "-o", "json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert report["registry"]["mtls"]["effective"] == "STRICT"
    assert report["registry"]["addresses"]["hostFromContainerRuntime"] == "localhost:5000"


def test_status_reads_each_thing_once_and_objects_only_through_their_kinds_lists(fake):
    run("up", "-q")
    fake.requests.clear()
    assert run("status").exit_code == 0
    reads = [(r[0], r[1], tuple(sorted(r[2].items()))) for r in fake.requests if r[0] in ("get", "list")]
    assert len(reads) == len(set(reads))
    # the Deployment, DaemonSet, PeerAuthentication and published ConfigMap come from the LIST of their kind
    assert [r[1] for r in reads if r[0] == "get"] == [("v1", "Namespace", None, "meshreg")]  # cluster-scoped


def test_status_reports_drift_and_exits_one(fake):
    run("up", "-q")
    live = fake.objects[("apps/v1", "Deployment", "meshreg", "registry")]
    live["spec"]["replicas"] = 0
    result = run("status")
    assert result.exit_code == 1
    assert "drifted  Deployment meshreg/registry (.spec.replicas)" in result.output


def test_status_on_an_empty_cluster_reports_missing_objects(fake):
    result = run("status", "-o", "json")
    assert result.exit_code == 1
    assert {o["state"] for o in json.loads(result.stdout)["objects"]} == {"missing"}


"""The audit operation on the fake cluster: which logs it reads (the registry sidecars' istio-proxy, the previous run
of a restarted one, a dedicated ingress gateway), what it asks the kubelet for, how far back each source reaches, and
why records may be missing. Records come from tests/support/audit_lines.py, shaped as Envoy writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meshreg import config
from meshreg.operations.audit import audit
from support.audit_cluster import NOW, REFUSAL, REGISTRY_POD, SIDECAR_LOG, deployed, pod, stamped
from support.audit_lines import line
from support.fakes import FakeCluster


@pytest.fixture
def fake() -> FakeCluster:
    return deployed(FakeCluster())


def test_it_reads_the_sidecars_log_with_the_kubelets_timestamps(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(), line(**REFUSAL))
    report = audit(config.DEFAULT, fake, now=NOW)
    assert [e.action for e in report.events] == ["push", "refused"]
    assert ("log", SIDECAR_LOG, {"previous": False, "timestamps": True, "since_seconds": None}) in fake.requests
    [source] = report.logs
    assert (source.proxy, source.pod, source.records, source.rotated) == ("registry sidecar", "registry-1", 2, False)
    assert report.ok and report.recording is True and report.exit_code == 0


def test_a_restarted_proxy_is_read_with_its_previous_run_and_the_runs_before_are_named_lost(fake):
    fake.put(pod("registry-1", REGISTRY_POD, restarts=3))
    fake.logs[(*SIDECAR_LOG, True)] = stamped(line(time="2026-12-06T06:10:00.000Z"),
                                              start="2026-12-06T06:00:00.000000000Z")
    fake.logs[SIDECAR_LOG] = stamped(line(**REFUSAL))
    report = audit(config.DEFAULT, fake, now=NOW)
    assert [e.time.hour for e in report.events] == [6, 7]
    [source] = report.logs
    assert (source.restarts, source.previous, source.lost_runs) == (3, True, 2)
    assert report.oldest is not None and report.oldest.hour == 6


def test_a_log_whose_first_lines_were_rotated_away_is_told_from_a_complete_one(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(**REFUSAL), start="2026-12-06T07:09:00.000000000Z")
    [source] = audit(config.DEFAULT, fake, now=NOW).logs
    assert source.rotated and source.first_line is not None and source.first_line.minute == 9


def test_a_window_that_starts_after_the_container_cannot_tell_rotation(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(**REFUSAL), start="2026-12-06T07:09:00.000000000Z")
    [source] = audit(config.DEFAULT, fake, since=timedelta(minutes=30), now=NOW).logs
    assert not source.rotated


def test_since_asks_the_kubelet_and_filters_the_records_too(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(time="2026-12-06T07:05:00.000Z"), line(**REFUSAL))
    report = audit(config.DEFAULT, fake, since=timedelta(minutes=52), now=NOW)
    assert [e.action for e in report.events] == ["refused"]
    assert ("log", SIDECAR_LOG, {"previous": False, "timestamps": True, "since_seconds": 3120}) in fake.requests


def test_without_the_telemetry_the_proxies_record_nothing_and_it_says_to_run_up(fake):
    del fake.objects[("telemetry.istio.io/v1", "Telemetry", "meshreg", "registry-audit")]
    fake.logs[SIDECAR_LOG] = stamped()
    report = audit(config.DEFAULT, fake, now=NOW)
    assert report.recording is False and report.exit_code == 1
    assert "Telemetry meshreg/registry-audit is not deployed: run meshreg up" in report.notes


def test_audit_disabled_says_so_and_reads_what_the_logs_still_hold(fake):
    cfg = config.from_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: meshreg}\n"
                           "spec:\n  audit: {enabled: false}\n", name="m.yaml")
    fake.logs[SIDECAR_LOG] = stamped(line())
    report = audit(cfg, fake, now=NOW)
    assert report.recording is False and [e.action for e in report.events] == ["push"]
    assert report.notes[0].startswith("spec.audit.enabled is false in m.yaml")


def test_no_registry_pod_is_named_with_its_selector(fake):
    del fake.objects[("v1", "Pod", "meshreg", "registry-1")]
    report = audit(config.DEFAULT, fake, now=NOW)
    assert report.logs == () and not report.ok
    assert ("no registry sidecar pod in namespace meshreg (app.kubernetes.io/instance=meshreg,"
            "app.kubernetes.io/name=registry,meshreg.dev/registry=registry): is it deployed? (meshreg status)") in \
        report.notes


def test_an_unreadable_log_is_named_and_the_others_still_read(fake):
    fake.put(pod("registry-2", REGISTRY_POD))
    fake.logs[("meshreg", "registry-2", "istio-proxy")] = stamped(line())
    report = audit(config.DEFAULT, fake, now=NOW)  # registry-1: the fake's kubelet does not answer for it
    problems = {p.pod: p.problem for p in report.logs}
    assert problems["registry-2"] is None and "get pods/log in namespace meshreg failed" in problems["registry-1"]
    assert [e.action for e in report.events] == ["push"] and report.exit_code == 1


def test_a_malformed_audit_line_is_counted_and_named_not_guessed(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(code="201"), line(), line(peer=7))
    report = audit(config.DEFAULT, fake, now=NOW)
    assert report.malformed_count == 2 and [e.action for e in report.events] == ["push"]
    assert report.malformed[0] == "registry-1: code must be a number, got '201'"


def test_a_dedicated_ingress_gateways_log_is_read_too(monkeypatch, tmp_path):
    from support.ingress_configs import CLIENTS, HOST, ingress_text, load

    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path, ingress_text(clients=CLIENTS, extra="    gateway: {dedicated: true}\n"))
    cluster = deployed(FakeCluster(), cfg)
    cluster.put(pod("registry-1", {**REGISTRY_POD, "app.kubernetes.io/instance": "dev"}))
    cluster.put(pod("gw-1", {"istio": "ingressgateway"}, ns="istio-system"))
    cluster.logs[SIDECAR_LOG] = stamped()
    cluster.logs[("istio-system", "gw-1", "istio-proxy")] = stamped(
        line(peer=f"spiffe://{HOST}/client/loader", path="/v2/images/app/manifests/v1"))
    report = audit(cfg, cluster, now=NOW)
    assert [(e.who.name, e.proxy, e.repository) for e in report.events] == [
        ("client loader", "ingress gateway", "images/app")]
    assert [p.proxy for p in report.logs] == ["registry sidecar", "ingress gateway"]


def test_ambient_mode_reads_the_waypoints_pods():
    from support.configs import AMBIENT

    cfg = config.from_text(AMBIENT, name="ambient.yaml")
    cluster = deployed(FakeCluster(), cfg)
    cluster.put(pod("waypoint-1", {"gateway.networking.k8s.io/gateway-name": "waypoint"}, ns=cfg.namespace))
    cluster.logs[(cfg.namespace, "waypoint-1", "istio-proxy")] = stamped(
        line(peer=None, peer_principal="spiffe://example.org/ns/team-a/sa/builder"))
    report = audit(cfg, cluster, now=NOW)
    assert [(p.proxy, p.pod) for p in report.logs] == [("waypoint", "waypoint-1")]
    assert [e.who.name for e in report.events] == ["team-a/builder"]


def test_an_ingress_on_a_shared_gateway_is_named_as_unrecorded(monkeypatch, tmp_path):
    from support.ingress_configs import load

    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path)  # dedicated: false
    cluster = deployed(FakeCluster(), cfg)
    cluster.put(pod("registry-1", {**REGISTRY_POD, "app.kubernetes.io/instance": "dev"}))
    cluster.logs[SIDECAR_LOG] = stamped(line(peer="spiffe://cluster.local/ns/istio-system/sa/"
                                                  "istio-ingressgateway-service-account"))
    report = audit(cfg, cluster, now=NOW)
    assert [p.proxy for p in report.logs] == ["registry sidecar"]
    assert [e.who.kind for e in report.events] == ["ingress-gateway"]
    assert report.notes[-1].startswith("the ingress gateway (istio-system) is shared, so it keeps no audit records")

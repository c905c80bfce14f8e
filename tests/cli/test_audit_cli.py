"""`meshreg audit` on the fake cluster: which logs it reads (the registry sidecars' istio-proxy, the previous run of a
restarted one, a dedicated ingress gateway), how far back they reach, what it says when records cannot exist, and its
output. Records come from tests/support/audit_lines.py, shaped as Envoy writes them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from meshreg import config
from meshreg.audit import provider
from meshreg.cli import main
from meshreg.cli.audit import parse_since
from meshreg.errors import UsageError
from meshreg.operations.audit import audit
from meshreg.render import render
from support import fakes
from support.audit_lines import DIGEST, line
from support.fakes import MESH

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
REFUSAL = dict(method="POST", path="/v2/team-b%2Fapp/blobs/uploads/", code=403, digest=None, location=None,
               details="rbac_access_denied_matched_policy[ns[meshreg]-policy[registry-deny-writes]-rule[1]]",
               peer="spiffe://cluster.local/ns/team-a/sa/builder", time="2026-12-06T07:10:00.000Z")


def stamped(*lines: str, start: str = "2026-12-06T07:00:00.000000000Z") -> str:
    """A log as the kubelet sends it with timestamps: the proxy's start-up line first, then `lines`."""
    out = [f"{start} 2026-12-06T07:00:00.000Z\tinfo\tFLAG: --concurrency=\"2\""]
    for text in lines:
        when = json.loads(text)["time"] if text.startswith("{") else "2026-12-06T07:30:00.000Z"
        out.append(f"{when[:-1]}123456Z {text}")
    return "\n".join(out) + "\n"


def pod(name: str, labels: dict, *, ns: str = "meshreg", started="2026-12-06T07:00:00Z", restarts: int = 0) -> dict:
    status = {"name": "istio-proxy", "restartCount": restarts, "state": {"running": {"startedAt": started}}}
    if restarts:
        status["lastState"] = {"terminated": {"exitCode": 0, "startedAt": "2026-12-06T06:00:00Z"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "status": {"phase": "Running", "containerStatuses": [status]}}


REGISTRY_POD = {"app.kubernetes.io/instance": "meshreg", "app.kubernetes.io/name": "registry",
                "meshreg.dev/registry": "registry"}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A cluster after `meshreg up` of the default config, whose mesh config defines the audit provider."""
    monkeypatch.chdir(tmp_path)
    cluster = fakes.connected(monkeypatch)
    for obj in render(config.DEFAULT):
        cluster.put(obj)
    mesh = {**yaml.safe_load(MESH["data"]["mesh"]), "extensionProviders": [provider("meshreg-audit")]}
    cluster.put({**MESH, "data": {"mesh": yaml.safe_dump(mesh)}})
    cluster.put(pod("registry-1", REGISTRY_POD))
    return cluster


def run(*args: str):
    return CliRunner().invoke(main, ["audit", *args])


def test_the_trail_names_who_pushed_which_tag_and_digest_and_who_was_refused(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(time="2026-12-06T07:05:00.000Z"),
                                                                  line(**REFUSAL))
    result = run()
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert out[0] == "meshreg audit: registry registry (namespace meshreg) on https://fake.invalid:6443"
    assert out[1].split() == ["TIME", "ACTION", "WHO", "FROM", "WHAT"]
    assert out[2].split() == ["2026-12-06T07:05:00.000Z", "push", "builds/kaniko", "10.244.0.12:43210",
                              f"builds/app:v1@{DIGEST}"]
    assert out[3].split(None, 4) == ["2026-12-06T07:10:00.000Z", "refused", "team-a/builder", "10.244.0.12:43210",
                                     "POST team-b/app: meshreg/registry-deny-writes rule 1"]
    assert "  registry sidecar meshreg/registry-1: 2 record(s) since 2026-12-06T07:05:00.000Z; container started " \
           "2026-12-06T07:00:00.000Z; its log is complete since then" in out
    assert ("log", ("meshreg", "registry-1", "istio-proxy"), {"previous": False, "timestamps": True,
                                                              "since_seconds": None}) in fake.requests


def test_json_lists_every_record_upload_steps_included(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(
        line(method="POST", path="/v2/builds/app/blobs/uploads/", code=202, digest=None), line())
    result = run("-o", "json")
    data = json.loads(result.output)
    assert [e["action"] for e in data["events"]] == ["upload", "push"]
    push = data["events"][1]
    assert (push["repository"], push["tag"], push["digest"], push["who"]["principal"]) == (
        "builds/app", "v1", DIGEST, "cluster.local/ns/builds/sa/kaniko")
    assert data["sources"][0]["records"] == 2 and data["ok"] is True and data["recording"] is True
    assert "(and 1 upload step(s): -o json lists every record)" in run().output


def test_a_restarted_proxy_is_read_with_its_previous_run_and_the_runs_before_are_named_lost(fake):
    fake.put(pod("registry-1", REGISTRY_POD, restarts=3))
    fake.logs[("meshreg", "registry-1", "istio-proxy", True)] = stamped(
        line(time="2026-12-06T06:10:00.000Z"), start="2026-12-06T06:00:00.000000000Z")
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(**REFUSAL))
    data = json.loads(run("-o", "json").output)
    assert [e["time"] for e in data["events"]] == ["2026-12-06T06:10:00.000Z", "2026-12-06T07:10:00.000Z"]
    source = data["sources"][0]
    assert (source["previousRead"], source["lostRuns"], source["oldest"]) == (True, 2, "2026-12-06T06:10:00.000Z")
    assert "the logs of 2 earlier run(s) are gone" in run().output


def test_a_log_whose_first_lines_were_rotated_away_says_so(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(**REFUSAL),
                                                                  start="2026-12-06T07:09:00.000000000Z")
    assert "the kubelet rotated its first lines away (it keeps lines from 2026-12-06T07:09:00.000Z)" in run().output


def test_since_asks_the_kubelet_and_filters_the_records_too(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(time="2026-12-06T07:05:00.000Z"),
                                                                  line(**REFUSAL))
    report = audit(config.DEFAULT, fake, since=timedelta(minutes=52), now=NOW)
    assert [e.action for e in report.events] == ["refused"]
    assert ("log", ("meshreg", "registry-1", "istio-proxy"), {"previous": False, "timestamps": True,
                                                              "since_seconds": 3120}) in fake.requests


def test_without_the_mesh_config_provider_it_says_why_nothing_is_recorded_and_exits_1(fake):
    fake.put(MESH)
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped()
    result = run()
    assert result.exit_code == 1
    assert "no writes or refusals recorded" in result.output
    assert ("note: ConfigMap istio-system/istio: the mesh config has no extension provider 'meshreg-audit', so the "
            "audit Telemetry logs nothing: add the provider") in result.output


def test_without_the_telemetry_it_says_to_run_up(fake):
    del fake.objects[("telemetry.istio.io/v1", "Telemetry", "meshreg", "registry-audit")]
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped()
    result = run()
    assert result.exit_code == 1 and "note: Telemetry meshreg/registry-audit is not deployed: run meshreg up" in \
        result.output


def test_no_registry_pod_is_named_with_its_selector(fake):
    del fake.objects[("v1", "Pod", "meshreg", "registry-1")]
    result = run()
    assert result.exit_code == 1
    assert ("note: no registry sidecar pod in namespace meshreg (app.kubernetes.io/instance=meshreg,"
            "app.kubernetes.io/name=registry,meshreg.dev/registry=registry): is it deployed? (meshreg status)") in \
        result.output


def test_an_unreadable_log_is_named_and_the_rest_still_shown(fake):
    fake.put(pod("registry-2", REGISTRY_POD))
    fake.logs[("meshreg", "registry-2", "istio-proxy")] = stamped(line())
    result = run()  # registry-1 has no log the kubelet can give (the fake: the kubelet is unreachable)
    assert result.exit_code == 1
    assert "registry sidecar meshreg/registry-1: not read: get pods/log in namespace meshreg failed" in result.output
    assert "push" in result.output


def test_a_malformed_audit_line_is_reported_not_guessed(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(code="201"), line())
    result = run()
    assert "warning: 1 audit line(s) are not valid v1 records, e.g. registry-1: code must be a number" in \
        result.output


def test_the_repository_and_who_filters_reach_the_trail(fake):
    fake.logs[("meshreg", "registry-1", "istio-proxy")] = stamped(line(time="2026-12-06T07:05:00.000Z"),
                                                                  line(**REFUSAL))
    data = json.loads(run("--repo", "team-b", "-o", "json").output)
    assert [e["action"] for e in data["events"]] == ["refused"] and data["query"]["repository"] == "team-b"
    data = json.loads(run("--who", "spiffe://cluster.local/ns/builds/sa/kaniko", "-o", "json").output)
    assert [e["action"] for e in data["events"]] == ["push"]


def test_a_dedicated_ingress_gateways_log_is_read_too(monkeypatch, tmp_path):
    from support.ingress_configs import CLIENTS, HOST, ingress_text, load

    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path, ingress_text(clients=CLIENTS, extra="    gateway: {dedicated: true}\n"))
    cluster = fakes.FakeCluster()
    for obj in render(cfg):
        cluster.put(obj)
    cluster.put(pod("registry-1", {**REGISTRY_POD, "app.kubernetes.io/instance": "dev"}))
    cluster.put(pod("gw-1", {"istio": "ingressgateway"}, ns="istio-system"))
    cluster.logs[("meshreg", "registry-1", "istio-proxy")] = stamped()
    cluster.logs[("istio-system", "gw-1", "istio-proxy")] = stamped(
        line(peer=f"spiffe://{HOST}/client/loader", path="/v2/images/app/manifests/v1"))
    report = audit(cfg, cluster)
    assert [(e.who.name, e.proxy, e.repository) for e in report.events] == [
        ("client loader", "ingress gateway", "images/app")]
    assert [p.proxy for p in report.logs] == ["registry sidecar", "ingress gateway"]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since yesterday: not a duration (e.g. 30m, 1h, 2h30m, 7d)"),
    (["--repo", "Team-A"], "--repo Team-A: 'Team-A' is not a repository prefix"),
    (["--registry", "nope"], "no registry named 'nope' (registries: registry)"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_request(monkeypatch, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    cluster = fakes.connected(monkeypatch)
    result = run(*args)
    assert result.exit_code == 2 and message in result.output and cluster.requests == []


@pytest.mark.parametrize(("text", "expected"), [("30m", timedelta(minutes=30)), ("2h30m", timedelta(hours=2.5)),
                                                ("7d", timedelta(days=7)), ("45s", timedelta(seconds=45))])
def test_since_takes_go_style_durations_and_days(text, expected):
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "1x", "h", "1.5h", "-1h"])
def test_since_refuses_anything_else(text):
    with pytest.raises(UsageError):
        parse_since(text)


def test_mesh_config_prints_the_provider_as_yaml_without_a_cluster(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run("--mesh-config")
    assert result.exit_code == 0
    assert yaml.safe_load(result.output) == {"extensionProviders": [provider("meshreg-audit")]}


def test_schema_prints_the_record_contract():
    assert json.loads(run("--schema").output)["title"] == "meshreg audit record, v1"

"""`meshreg doctor` and the preflight of `meshreg up` (with `--skip-checks`) through click, on the fake cluster."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.errors import ClusterError
from support.doctor_helpers import cluster_with_istio
from support.fakes import route


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cluster = cluster_with_istio()
    return route(monkeypatch, cluster)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_doctor_prints_one_line_per_check_and_exits_zero_without_failures(fake):
    result = run("doctor")
    assert result.exit_code == 0, result.output
    first, *body, summary = result.stdout.splitlines()
    assert first == "meshreg doctor: https://fake.invalid:6443 (config <built-in default>, namespace meshreg)"
    assert body[0].split() == ["OK", "api", "Kubernetes", "v1.31.0", "at", "https://fake.invalid:6443"]
    assert any(line.split()[:2] == ["WARN", "deployed"] for line in body)
    assert all(line.split()[0] in ("OK", "WARN", "FAIL", "fix:") for line in body)
    assert summary.endswith("0 FAIL")


def test_every_warning_and_failure_says_what_to_do(fake):
    del fake.objects[("apps/v1", "Deployment", "istio-system", "istiod")]
    lines = run("doctor").stdout.splitlines()[1:-1]
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith(("WARN", "FAIL")):
            assert after.split()[0] == "fix:", line


def test_doctor_exits_one_when_a_check_fails(fake):
    fake.served_groups = {}
    result = run("doctor", "--check", "istio")
    assert result.exit_code == 1
    assert "FAIL  istio" in result.output and "1 FAIL" in result.output


def test_doctor_json_has_every_result_with_its_status_and_fix(fake):
    fake.served_groups = {}
    result = run("doctor", "-o", "json", "--check", "istio", "--check", "storage")
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["counts"]["FAIL"] >= 1
    assert {r["check"] for r in data["results"]} == {"istio", "storage"}
    assert all(set(r) == {"check", "status", "message", "fix"} for r in data["results"])


def test_doctor_exits_two_when_the_cluster_cannot_be_reached(fake):
    fake.failures[("get", "version", "*")] = ClusterError("cannot reach the Kubernetes API server at x: refused")
    result = run("doctor")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("meshreg: no meshreg.yaml here; using the built-in default (writers: none)\n"
                             "meshreg: error: cannot reach the Kubernetes API server at x: refused\n")


def test_doctor_exits_two_for_an_unknown_check(fake):
    assert run("doctor", "--check", "nope").exit_code == 2


def test_doctor_changes_nothing(fake):
    before = {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()}
    run("doctor")
    assert {k: v["metadata"]["resourceVersion"] for k, v in fake.objects.items()} == before
    assert all(r[2].get("dry_run") for r in fake.requests if r[0] == "apply")
    assert not [r for r in fake.requests if r[0] == "delete"]


def test_up_refuses_before_any_write_when_a_preflight_check_fails_and_names_it(fake):
    del fake.objects[("apps/v1", "Deployment", "istio-system", "istiod")]
    result = run("up", "-q")
    assert result.exit_code == 1
    assert "preflight found 1 problem(s), nothing was applied: istio: no istiod for revision default" \
           in result.output and "--skip-checks" in result.output
    assert not [r for r in fake.requests if r[0] == "apply" and not r[2]["dry_run"]]


def test_up_skip_checks_goes_ahead_without_asking_anything(fake):
    del fake.objects[("apps/v1", "Deployment", "istio-system", "istiod")]
    result = run("up", "-q", "--no-wait", "--skip-checks")
    assert result.exit_code == 0, result.output
    assert not [r for r in fake.requests if r[0] == "create"]  # no access or rules reviews
    # the dry run of every object is part of applying, not a check: it still comes first
    first_write = next(i for i, r in enumerate(fake.requests) if r[0] == "apply" and not r[2]["dry_run"]
                       and r[1][1] != "Namespace")  # a new Namespace is created first, for the dry run to land in
    assert len({r[1] for r in fake.requests[:first_write] if r[0] == "apply" and r[2]["dry_run"]}) == 18


def test_up_prints_preflight_warnings_and_goes_on(fake):
    result = run("up", "-q", "--no-wait")
    assert result.exit_code == 0
    assert "meshreg: warning: nodes: no nodes found (the kubelet pulls nothing until nodes join the cluster)" \
           in result.output
    assert result.output.index("meshreg: warning: nodes") < result.output.index("created     Namespace meshreg")

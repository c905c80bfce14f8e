"""`meshreg audit` as a user runs it on the fake cluster: the text trail and where it comes from, -o json, the
filters, the notes and exit codes when records cannot exist, bad input, and the commands that need no cluster
(--mesh-config, --schema). What the operation reads and judges: tests/operations/test_audit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import yaml
from click.testing import CliRunner

from meshreg.audit import provider
from meshreg.cli import main
from support import fakes
from support.audit_cluster import REFUSAL, SIDECAR_LOG, deployed, stamped
from support.audit_lines import DIGEST, line
from support.fakes import MESH
from support.paths import ROOT


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A cluster after `meshreg up` of the default config, whose mesh config defines the audit provider."""
    monkeypatch.chdir(tmp_path)
    return deployed(fakes.connected(monkeypatch))


def run(*args: str):
    return CliRunner().invoke(main, ["audit", *args])


def test_the_trail_names_who_pushed_which_tag_and_digest_and_who_was_refused(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(time="2026-12-06T07:05:00.000Z"),
                                                                  line(**REFUSAL))
    result = run()
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
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
    fake.logs[SIDECAR_LOG] = stamped(
        line(method="POST", path="/v2/builds/app/blobs/uploads/", code=202, digest=None), line())
    result = run("-o", "json")
    data = json.loads(result.stdout)
    assert [e["action"] for e in data["events"]] == ["upload", "push"]
    push = data["events"][1]
    assert (push["repository"], push["tag"], push["digest"], push["who"]["principal"]) == (
        "builds/app", "v1", DIGEST, "cluster.local/ns/builds/sa/kaniko")
    assert data["sources"][0]["records"] == 2 and data["ok"] is True and data["recording"] is True
    assert "(and 1 upload step(s): -o json lists every record)" in run().output


def test_without_the_mesh_config_provider_it_says_why_nothing_is_recorded_and_exits_1(fake):
    fake.put(MESH)
    fake.logs[SIDECAR_LOG] = stamped()
    result = run()
    assert result.exit_code == 1
    assert "no writes or refusals recorded" in result.output
    assert ("note: ConfigMap istio-system/istio: the mesh config has no extension provider 'meshreg-audit', so the "
            "audit Telemetry logs nothing: add the provider") in result.output


def test_a_malformed_audit_line_is_reported_not_guessed(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(code="201"), line())
    result = run()
    assert "warning: 1 audit line(s) are not valid v1 records, e.g. registry-1: code must be a number" in \
        result.output


def test_the_repository_and_who_filters_reach_the_trail(fake):
    fake.logs[SIDECAR_LOG] = stamped(line(time="2026-12-06T07:05:00.000Z"),
                                                                  line(**REFUSAL))
    data = json.loads(run("--repo", "team-b", "-o", "json").stdout)
    assert [e["action"] for e in data["events"]] == ["refused"] and data["query"]["repository"] == "team-b"
    data = json.loads(run("--who", "spiffe://cluster.local/ns/builds/sa/kaniko", "-o", "json").stdout)
    assert [e["action"] for e in data["events"]] == ["push"]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "'--since': 'yesterday' is not a duration (e.g. 90s, 5m, 1h30m"),
    (["--repo", "Team-A"], "--repo Team-A: 'Team-A' is not a repository prefix"),
    (["--registry", "nope"], "no registry named 'nope' (registries: registry)"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_request(monkeypatch, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    cluster = fakes.connected(monkeypatch)
    result = run(*args)
    assert result.exit_code == 2 and message in result.output and cluster.requests == []


@pytest.mark.parametrize(("text", "expected"), [("30m", timedelta(minutes=30)), ("2h30m", timedelta(hours=2.5)),
                                                ("7d", timedelta(days=7)), ("45s", timedelta(seconds=45)),
                                                ("90", timedelta(seconds=90))])
def test_since_takes_durations_as_every_option_does(fake, monkeypatch, text, expected):
    import meshreg.cli.audit

    seen = {}
    monkeypatch.setattr(meshreg.cli.audit, "run_audit", lambda *a, since, **kw: seen.setdefault("since", since))
    run("--since", text)
    assert seen == {"since": expected}


@pytest.mark.parametrize("text", ["", "1x", "h", "-1h"])
def test_since_refuses_anything_else(fake, text):
    result = run("--since", text)
    assert result.exit_code == 2 and "'--since'" in result.stderr


def test_mesh_config_prints_the_provider_as_yaml_without_a_cluster(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run("--mesh-config")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == {"extensionProviders": [provider("meshreg-audit")]}


def test_schema_prints_the_record_contract():
    assert json.loads(run("--schema").stdout)["title"] == "meshreg audit record, v1"


def _docs_recipe(name: str) -> str:
    """The shell lines of docs/audit.md that write `name` (from the comment above them to `> name`)."""
    text = (ROOT / "docs" / "audit.md").read_text()
    block = text[text.index("```sh\n# Helm values for the istiod chart"):]
    current: list[str] = []
    for shell in block[len("```sh\n"):block.index("\n```")].splitlines():
        current = [] if shell.startswith("#") else [*current, shell]
        if f"> {name}" in shell:
            return "\n".join(current)
    raise AssertionError(f"docs/audit.md has no recipe for {name}")


@pytest.mark.parametrize(("name", "wrap"), [
    ("audit-values.yaml", lambda providers: {"meshConfig": providers}),
    ("audit-operator.yaml", lambda providers: {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
                                               "spec": {"meshConfig": providers}})])
def test_the_docs_recipes_write_helm_values_and_an_istio_operator_with_the_provider(name, wrap, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "meshreg").write_text(f"#!/bin/sh\nexec {sys.executable} -m meshreg \"$@\"\n")
    (bin_dir / "meshreg").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    subprocess.run(["bash", "-ec", _docs_recipe(name)], cwd=tmp_path, env=env, check=True, timeout=60)
    assert yaml.safe_load((tmp_path / name).read_text()) == wrap({"extensionProviders": [provider("meshreg-audit")]})

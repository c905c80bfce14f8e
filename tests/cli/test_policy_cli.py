"""`meshreg policy` end to end through click: exit codes, refusals that leave the file alone, --apply."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from click.testing import CliRunner

from meshreg.cli import main
from meshreg.config import starter


@contextlib.contextmanager
def _inside(directory):
    """Run in `directory`, then go back (what CliRunner.isolated_filesystem did before click deprecated it)."""
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def run(args, cwd):
    runner = CliRunner()
    with _inside(cwd):
        (cwd_file := __import__("pathlib").Path("meshreg.yaml")).write_text(starter.TEXT)
        result = runner.invoke(main, args, catch_exceptions=False)
        return result, cwd_file.read_text()


def test_grant_writes_the_writer_and_check_allows_its_push(tmp_path):
    runner = CliRunner()
    with _inside(tmp_path):
        Path("meshreg.yaml").write_text(starter.TEXT)
        assert runner.invoke(main, ["policy", "grant", "ci/b", "--repo", "team-a/"]).exit_code == 0
        ok = runner.invoke(main, ["policy", "check", "--as", "ci/b", "push", "team-a/app:v1"])
        denied = runner.invoke(main, ["policy", "check", "--as", "ci/b", "push", "team-ab/app", "-o", "json"])
        outside = runner.invoke(main, ["policy", "check", "--as", "ci/b", "push", "other/app"])
    assert (ok.exit_code, denied.exit_code, outside.exit_code) == (0, 3, 3)
    assert json.loads(denied.output)["decision"] == "DENY"


def test_a_refused_grant_exits_2_and_leaves_the_file_byte_identical(tmp_path):
    result, text = run(["policy", "grant", "Not/Valid"], tmp_path)
    assert (result.exit_code, text) == (2, starter.TEXT)


def test_grant_without_a_config_file_says_to_run_init(tmp_path):
    runner = CliRunner()
    with _inside(tmp_path):
        result = runner.invoke(main, ["policy", "grant", "a/b"])
    assert result.exit_code == 2 and "meshreg init" in result.output


def test_anonymous_is_denied_by_strict_mtls(tmp_path):
    result, _ = run(["policy", "check", "--as", "anonymous", "GET", "/v2/", "-o", "json"], tmp_path)
    assert result.exit_code == 3 and json.loads(result.output)["requests"][0]["policy"] == "PeerAuthentication/registry"


def test_check_rejects_a_lowercase_method_with_exit_2(tmp_path):
    result, _ = run(["policy", "check", "--as", "a/b", "get", "/v2/"], tmp_path)
    assert result.exit_code == 2


def test_grant_apply_applies_only_the_authorization_policies(tmp_path, monkeypatch):
    from meshreg import config
    from meshreg import render as rendering
    from meshreg.cluster import apply as applying
    from support.fakes import FakeCluster, route

    fake = FakeCluster()
    namespace = [o for o in rendering.render(config.from_text(starter.TEXT, name="x")) if o["kind"] == "Namespace"]
    applying.apply(manifests=namespace, cluster=fake)  # `meshreg up` has run before
    route(monkeypatch, fake)
    result, _ = run(["policy", "grant", "builds/kaniko", "--apply"], tmp_path)
    assert result.exit_code == 0, result.output
    stored = fake.get("security.istio.io/v1", "AuthorizationPolicy", "registry-allow-writes", namespace="meshreg")
    principals = stored["spec"]["rules"][0]["from"][0]["source"]["principals"]
    assert principals == ["cluster.local/ns/builds/sa/kaniko"]
    assert fake.get("apps/v1", "Deployment", "registry", namespace="meshreg") is None


def test_granting_an_existing_writer_again_says_unchanged_and_exits_0(tmp_path):
    runner = CliRunner()
    with _inside(tmp_path):
        Path("meshreg.yaml").write_text(starter.TEXT)
        first = runner.invoke(main, ["policy", "grant", "ci/b", "--repo", "team-a/"])
        granted = Path("meshreg.yaml").read_bytes()
        again = runner.invoke(main, ["policy", "grant", "ci/b", "--repo", "team-a/app"])
        assert Path("meshreg.yaml").read_bytes() == granted
    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stdout == ("meshreg.yaml: ci/b unchanged\n"
                            "  writer: writes repositories team-a/; DELETE not granted\n"
                            "  note:   ci/b already writes team-a/app/ (by team-a/)\n")
    assert "next: meshreg up" not in again.output  # nothing new to deploy


def test_revoking_what_is_not_granted_says_unchanged_and_exits_0(tmp_path):
    result, text = run(["policy", "revoke", "ci/b"], tmp_path)
    assert (result.exit_code, text) == (0, starter.TEXT)
    assert result.stdout.splitlines()[0] == "meshreg.yaml: ci/b unchanged"


def test_a_grant_keeps_a_crlf_file_crlf(tmp_path):
    runner = CliRunner()
    with _inside(tmp_path):
        Path("meshreg.yaml").write_bytes(starter.TEXT.replace("\n", "\r\n").encode())
        assert runner.invoke(main, ["policy", "grant", "ci/b"]).exit_code == 0
        data = Path("meshreg.yaml").read_bytes()
        assert runner.invoke(main, ["policy", "revoke", "ci/b"]).exit_code == 0
        back = Path("meshreg.yaml").read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == starter.TEXT.count("\n") + 2
    assert back == starter.TEXT.replace("\n", "\r\n").encode()

"""`meshreg policy grant/revoke/list` on a config with several registries."""

from __future__ import annotations

import json

from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from support.paths import ROOT

SPLIT = (ROOT / "examples" / "gitpod-separate-registries" / "meshreg.yaml").read_text()


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_grant_edits_the_named_registry_and_keeps_comments(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text(SPLIT)
    result = run("policy", "grant", "ci/kaniko", "--repo", "team-a/", "--registry", "workspace-images", "-c", str(path))
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert "# grows with every workspace build" in text and "# ...except the job that loads the airgap bundle" in text
    reg = config.from_text(text, name="m.yaml").get_registry("workspace-images")
    assert [(w.service_account, w.repositories) for w in reg.writers] == [
        ("gitpod/image-builder-mk3", ("*",)), ("ci/kaniko", ("team-a/",))]
    result = run("policy", "check", "-c", str(path), "--as", "ci/kaniko", "push", "team-a/app")
    assert result.exit_code == 0, result.output


def test_grant_on_a_readonly_registry_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text(SPLIT)
    result = run("policy", "grant", "ci/kaniko", "--registry", "service-images", "-c", str(path))
    assert result.exit_code == 2
    assert ("registry service-images is readonly: it has no writers (its publisher is gitpod/airgap-loader"
            in result.output)
    assert path.read_text() == SPLIT


def test_revoke_removes_the_writer_from_the_named_registry_only(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text(SPLIT)
    result = run("policy", "revoke", "gitpod/image-builder-mk3", "-c", str(path))
    assert result.exit_code == 0, result.output
    cfg = config.from_text(path.read_text(), name="m.yaml")
    assert cfg.get_registry("workspace-images").writers == ()
    assert cfg.get_registry("service-images").publisher == "gitpod/airgap-loader"
    check = run("policy", "check", "-c", str(path), "--as", "gitpod/image-builder-mk3", "push", "ws/ws-1")
    assert check.exit_code == 3


def test_list_shows_the_publisher_of_a_readonly_registry_as_its_only_writer(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text(SPLIT)
    data = json.loads(run("policy", "list", "-c", str(path), "--registry", "service-images", "-o", "json").output)
    assert data["registry"] == {"name": "service-images", "role": "readonly", "default": False,
                                "publisher": "gitpod/airgap-loader"}
    assert [w["serviceAccount"] for w in data["writers"]] == ["gitpod/airgap-loader"]
    assert data["nodeProxy"]["port"] == 5001


def test_list_says_reads_are_per_registry_when_writers_are_scoped(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: m}\nspec:\n"
                    "  writers: [{serviceAccount: ci/a, repositories: [team-a/]}]\n")
    scoped = run("policy", "list", "-c", str(path)).output
    assert "reads are per registry: each reader and writer reads every repository of registry" in scoped
    path.write_text(path.read_text().replace("repositories: [team-a/]", "repositories: ['*']"))
    assert "reads are per registry" not in run("policy", "list", "-c", str(path)).output

"""Where meshreg.yaml is found without -c: here, then up to the root of the Git work tree (like git); outside a work
tree only here. A command that falls back to the built-in default says so once on stderr."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.config import discovery
from support.configs import SEVERAL_WRITERS, minimal

OTHER = minimal("  namespace: other\n")


@pytest.fixture
def repo(tmp_path):
    """outer/meshreg.yaml (not in the repository), outer/repo/.git, outer/repo/meshreg.yaml, outer/repo/a/b/."""
    outer = tmp_path / "outer"
    (outer / "repo" / ".git").mkdir(parents=True)
    (outer / "repo" / "a" / "b").mkdir(parents=True)
    (outer / "meshreg.yaml").write_text(OTHER)
    (outer / "repo" / "meshreg.yaml").write_text(SEVERAL_WRITERS)
    return outer / "repo"


def test_the_config_here_is_found(repo):
    assert discovery.find(str(repo)) == discovery.Search(path="meshreg.yaml", in_work_tree=True)


def test_a_config_above_is_found_up_to_the_root_of_the_work_tree(repo):
    assert discovery.find(str(repo / "a" / "b")).path == "../../meshreg.yaml"


def test_a_config_above_the_root_of_the_work_tree_is_not(repo):
    (repo / "meshreg.yaml").unlink()
    assert discovery.find(str(repo / "a")) == discovery.Search(path=None, in_work_tree=True)


def test_a_nearer_config_wins(repo):
    (repo / "a" / "meshreg.yaml").write_text(OTHER)
    assert discovery.find(str(repo / "a" / "b")).path == "../meshreg.yaml"


def test_a_git_file_marks_a_work_tree_too(tmp_path):
    """Linked work trees and submodules have a .git file, not a directory."""
    (tmp_path / "wt" / "sub").mkdir(parents=True)
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n")
    (tmp_path / "wt" / "meshreg.yaml").write_text(OTHER)
    assert discovery.find(str(tmp_path / "wt" / "sub")).path == "../meshreg.yaml"


def test_outside_a_work_tree_only_this_directory_counts(tmp_path):
    (tmp_path / "meshreg.yaml").write_text(OTHER)
    (tmp_path / "sub").mkdir()
    assert discovery.find(str(tmp_path / "sub")) == discovery.Search(path=None, in_work_tree=False)
    assert discovery.find(str(tmp_path)).path == "meshreg.yaml"


def run(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="meshreg")


def test_a_command_in_a_subdirectory_uses_the_repositorys_config(repo, monkeypatch):
    monkeypatch.chdir(repo / "a" / "b")
    monkeypatch.delenv("MESHREG_CONFIG", raising=False)
    result = run("render")
    assert result.exit_code == 0 and "namespace: registry" in result.stdout
    assert "from ../../meshreg.yaml." in result.stdout.splitlines()[0]
    assert "built-in default" not in result.stderr


def test_policy_grant_in_a_subdirectory_edits_the_repositorys_config(repo, monkeypatch):
    monkeypatch.chdir(repo / "a")
    monkeypatch.delenv("MESHREG_CONFIG", raising=False)
    assert run("policy", "grant", "apps/ci").exit_code == 0
    assert "serviceAccount: apps/ci" in (repo / "meshreg.yaml").read_text()
    assert not (repo / "a" / "meshreg.yaml").exists()


def test_config_option_and_meshreg_config_come_before_the_search(repo, monkeypatch):
    monkeypatch.chdir(repo / "a")
    (repo / "a" / "x.yaml").write_text(OTHER)
    monkeypatch.delenv("MESHREG_CONFIG", raising=False)
    assert "namespace: other" in run("render", "-c", "x.yaml").stdout
    monkeypatch.setenv("MESHREG_CONFIG", "x.yaml")
    assert "namespace: other" in run("render").stdout


def test_the_built_in_default_is_said_once_on_stderr(repo, monkeypatch):
    (repo / "meshreg.yaml").unlink()
    monkeypatch.chdir(repo / "a")
    monkeypatch.delenv("MESHREG_CONFIG", raising=False)
    result = run("policy", "list", "-o", "json")
    assert result.exit_code == 0 and result.stdout.startswith("{")
    assert result.stderr.count("built-in default") == 1
    assert result.stderr.splitlines()[0] == ("meshreg: no meshreg.yaml here or above (up to the repository root); "
                                             "using the built-in default (writers: none)")


def test_outside_a_repository_the_note_says_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESHREG_CONFIG", raising=False)
    result = run("render")
    assert "meshreg: no meshreg.yaml here; using the built-in default (writers: none)" in result.stderr


def test_commands_that_read_no_config_say_nothing_of_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["schema"], ["completion", "bash"], ["init", "-c", "-"], ["--help"], ["up", "--help"]):
        assert "built-in default" not in run(*args).stderr, args

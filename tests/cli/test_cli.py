"""The `meshreg` command as a newcomer meets it: init, render, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from click.testing import CliRunner

from meshreg.cli import main
from support.configs import SEVERAL_WRITERS


def meshreg(*args: str, cwd, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "meshreg", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_render_without_a_config_renders_the_default_and_says_how_to_grant(tmp_path):
    out = meshreg("render", cwd=tmp_path)
    assert out.returncode == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout) if d]
    assert kinds[0] == "Namespace" and "AuthorizationPolicy" in kinds
    assert "meshreg policy grant" in out.stderr and "nobody can push" in out.stderr


def test_render_to_a_directory_writes_one_file_per_object(tmp_path):
    out = meshreg("render", "--output-dir", "out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    files = sorted(p for p in (tmp_path / "out").iterdir() if p.name != "kustomization.yaml")
    stream = [d for d in yaml.safe_load_all(meshreg("render", cwd=tmp_path).stdout) if d]
    assert [yaml.safe_load(p.read_text()) for p in files] == stream


def test_render_reads_meshreg_yaml_from_the_working_directory(tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SEVERAL_WRITERS)
    out = meshreg("render", cwd=tmp_path)
    assert "namespace: registry" in out.stdout and "nobody can push" not in out.stderr


def test_render_takes_the_config_from_meshreg_config(tmp_path):
    (tmp_path / "x.yaml").write_text(SEVERAL_WRITERS)
    out = meshreg("render", cwd=tmp_path, env_extra={"MESHREG_CONFIG": "x.yaml"})
    assert out.returncode == 0 and "example.org/ns/builds/sa/kaniko" in out.stdout


def test_a_bad_config_is_one_line_and_exit_2_without_traceback(tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SEVERAL_WRITERS.replace("team-a/builder", "Team-A/builder"))
    out = meshreg("render", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("meshreg: error: meshreg.yaml:15: spec.writers[1].serviceAccount: 'Team-A/builder'")


def test_init_writes_a_starter_that_renders_and_refuses_to_overwrite(tmp_path):
    assert meshreg("init", cwd=tmp_path).returncode == 0
    text = (tmp_path / "meshreg.yaml").read_text()
    assert text.count("#") > 10  # commented
    assert meshreg("render", cwd=tmp_path).returncode == 0
    again = meshreg("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "meshreg.yaml").read_text() == text


def test_render_does_not_import_the_kubernetes_client(tmp_path):
    code = ("import sys; from meshreg.cli import main\n"
            "try:\n    main(['render'])\nexcept SystemExit:\n    pass\n"
            "print('kubernetes' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stderr.strip().endswith("False")


def test_every_command_has_help_with_examples():
    runner = CliRunner()
    for args in (["--help"], ["render", "--help"], ["init", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    assert "Examples:" in runner.invoke(main, ["render", "--help"]).output


def test_output_to_a_closed_pipe_is_not_a_traceback(tmp_path):
    out = subprocess.run(f"{sys.executable} -m meshreg render | head -1", shell=True, cwd=tmp_path,
                         capture_output=True, text=True)
    assert "Traceback" not in out.stderr

"""The option conventions every command shares: durations for --timeout, bad input as one line and exit 2, options
that write files saying so (render --output-dir, init -c, certs issue --output-dir) and never writing over what
they did not write."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.cli.options import Duration
from support import fakes
from support.configs import GC_CONFIG, minimal
from support.ingress_configs import CLIENTS, ingress_text


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="meshreg")


def one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("meshreg: error: ")
    for part in parts:
        assert part in result.stderr


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("2m30s", 150), ("300", 300),
    ("2.5", 2.5), (" 45s ", 45)])
def test_a_duration_is_go_syntax_or_seconds(text, seconds):
    assert Duration(minimum=1).convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["5x", "m5", "1h 30m", "", "nan", "inf", "-5s", "5 min"])
def test_a_bad_duration_is_refused(text):
    with pytest.raises(click.BadParameter, match=r"is not a duration|shorter than the minimum"):
        Duration(minimum=1).convert(text, None, None)


@pytest.fixture
def deploys(monkeypatch, tmp_path):
    """`up` and `verify` on the fake cluster, recording the timeout each operation was given."""
    monkeypatch.chdir(tmp_path)
    fakes.connected(monkeypatch)
    seen: dict[str, float] = {}

    def record(name):
        def operation(*args, timeout, **kwargs):
            seen[name] = timeout
            raise SystemExit(0)
        return operation

    import meshreg.cli.up
    import meshreg.cli.verify

    monkeypatch.setattr(meshreg.cli.up, "deploy", record("up"))
    monkeypatch.setattr(meshreg.cli.verify, "run_verify", record("verify"))
    return seen


def test_timeouts_take_durations_and_seconds(deploys):
    invoke("up", "--timeout", "5m")
    invoke("verify", "--timeout", "90")
    assert deploys == {"up": 300, "verify": 90}


def test_the_default_timeouts_read_as_durations_in_help():
    assert "[default: 5m]" in invoke("up", "--help").stdout
    assert "[default: 3m]" in invoke("verify", "--help").stdout
    assert "[default: 1h]" in invoke("gc", "--help").stdout


def test_a_timeout_from_the_environment_is_a_duration_too(deploys, monkeypatch):
    monkeypatch.setenv("MESHREG_UP_TIMEOUT", "2m")
    invoke("up")
    assert deploys == {"up": 120}


@pytest.mark.parametrize(("args", "parts"), [
    (["up", "--timeout", "5x"], ["'--timeout'", "'5x' is not a duration (e.g. 90s, 5m, 1h30m"]),
    (["verify", "--timeout", "5s"], ["'--timeout'", "'5s' is shorter than the minimum, 10s"]),
    (["gc", "--timeout", "soon"], ["'--timeout'", "'soon' is not a duration"]),
    (["status", "-o", "xml"], ["'xml' is not one of 'text', 'json', 'yaml'"]),
    (["status", "--bogus"], ["No such option '--bogus'", "see meshreg status --help"]),
    (["--bogus"], ["No such option '--bogus'"]),
    (["policy", "grant"], ["Missing argument 'NS/SA'"]),
])
def test_bad_input_is_one_line_naming_the_option_and_exit_2(args, parts, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke(*args), *parts)


def test_render_o_is_a_format_and_a_directory_there_names_output_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("render", "-o", "deploy/base"), "'deploy/base' is not a format (yaml or json)",
                   "use --output-dir deploy/base")
    one_line_error(invoke("render", "-o", "json", "--output-dir", "out"), "--output-dir writes YAML files")
    assert list(tmp_path.iterdir()) == []


def test_render_output_dir_refuses_a_file_and_a_directory_it_did_not_write(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(minimal())
    (tmp_path / "taken").write_text("mine")
    one_line_error(invoke("render", "--output-dir", "taken"), "--output-dir taken: exists and is not a directory")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    one_line_error(invoke("render", "--output-dir", "app"), "--output-dir app: is not empty and no render wrote it")
    assert (tmp_path / "taken").read_text() == "mine"
    assert [p.name for p in (tmp_path / "app").iterdir()] == ["kustomization.yaml"]
    assert not (tmp_path / "meshreg.yaml").read_text().startswith("#")  # nothing written anywhere


def test_render_output_dir_renders_again_over_its_own_files_and_leaves_others(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(minimal())
    assert invoke("render", "--output-dir", "base").exit_code == 0
    (tmp_path / "base" / "99-stale.yaml").write_text("# Generated by `meshreg render --output-dir base`\n")
    (tmp_path / "base" / "98-mine.yaml").write_text("kind: Mine\n")
    again = invoke("render", "--output-dir", "base")
    assert again.exit_code == 0, again.output
    names = {p.name for p in (tmp_path / "base").iterdir()}
    assert "99-stale.yaml" not in names and "98-mine.yaml" in names  # a stale generated file goes; the user's stays
    (tmp_path / "base" / "00-namespace-meshreg.yaml").write_text("kind: Mine\n")
    one_line_error(invoke("render", "--output-dir", "base"), "would replace 00-namespace-meshreg.yaml")


def test_init_writes_the_file_config_names_and_refuses_its_old_o(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "-c", "dev.yaml").exit_code == 0 and (tmp_path / "dev.yaml").exists()
    one_line_error(invoke("init", "-c", "dev.yaml"), "dev.yaml already exists (use --force to overwrite it)")
    one_line_error(invoke("init", "-o", "x.yaml"), "-o/--output x.yaml: meshreg init takes the file to write as "
                                                   "-c/--config FILE")
    (tmp_path / "adir").mkdir()
    one_line_error(invoke("init", "-c", "adir", "--force"), "adir already exists and is not a file")
    assert not (tmp_path / "x.yaml").exists()


def test_init_takes_the_config_file_from_meshreg_config(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESHREG_CONFIG", "env.yaml")
    assert invoke("init").exit_code == 0 and (tmp_path / "env.yaml").exists()


def test_certs_issue_writes_into_output_dir_and_refuses_its_old_o(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(ingress_text(clients=CLIENTS))
    assert invoke("certs", "init").exit_code == 0
    one_line_error(invoke("certs", "issue", "loader", "-o", "certs.d"), "-o/--output certs.d: meshreg certs issue "
                                                                        "takes the certs.d directory as --output-dir")
    assert not (tmp_path / "certs.d").exists()
    issued = invoke("certs", "issue", "loader", "--output-dir", "certs.d")
    assert issued.exit_code == 0, issued.output
    assert (tmp_path / "certs.d" / "registry.example.com" / "client.cert").exists()


def test_up_and_down_take_output_formats(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    fakes.connected(monkeypatch)
    up = invoke("up", "-q", "-o", "yaml")
    assert up.exit_code == 0 and up.stdout.startswith("apiVersion: meshreg.dev/v1alpha1\nkind: UpReport\n")
    assert "created     Namespace" not in up.stdout  # no line per object with a document
    text = invoke("up", "-q")
    assert " unchanged\n" in text.stdout and "push (in-cluster writers):" in text.stdout


def test_gc_help_and_timeout_keep_one_line_errors_for_a_registry_without_gc(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(GC_CONFIG)
    one_line_error(invoke("gc", "--registry", "cache", "--timeout", "10m"), "registry cache has no gc")

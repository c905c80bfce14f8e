"""`meshreg --help` lists every command from LAZY_COMMANDS' summaries without importing the commands, and says
exactly what it would say with every command imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from meshreg.cli import LAZY_COMMANDS, main


def real(name: str) -> click.Command:
    module, _, attr = LAZY_COMMANDS[name][0].partition(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    return command


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_summary_is_the_first_sentence_of_its_commands_help(name: str) -> None:
    summary = LAZY_COMMANDS[name][1]
    assert real(name).get_short_help_str(10_000) == summary, (
        f"LAZY_COMMANDS[{name!r}] in meshreg/cli/__init__.py must be the command's own short help: "
        f"{real(name).get_short_help_str(10_000)!r}")


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_summary_shortens_as_the_command_would_at_every_width(name: str) -> None:
    listed = click.Command(name, help=LAZY_COMMANDS[name][1])
    for limit in range(1, 200):
        assert listed.get_short_help_str(limit) == real(name).get_short_help_str(limit), limit


def test_the_group_help_is_what_it_is_with_every_command_imported() -> None:
    lazy = CliRunner().invoke(main, ["--help"], terminal_width=80)
    eager = click.Group(commands=[*main.commands.values(), *(real(n) for n in LAZY_COMMANDS)])
    formatter = click.HelpFormatter(width=80)
    eager.format_commands(click.Context(eager), formatter)
    assert lazy.exit_code == 0
    assert lazy.output.endswith(formatter.getvalue())
    assert [line.split()[0] for line in formatter.getvalue().splitlines()[1:]] == sorted(
        [*main.commands, *LAZY_COMMANDS])


def test_no_lazy_command_is_hidden_or_deprecated() -> None:
    """The listing shows every lazy command as it is; a hidden or deprecated one would need more than a summary."""
    for name in LAZY_COMMANDS:
        assert not real(name).hidden and not real(name).deprecated, name


def test_a_lazy_command_runs_and_has_its_own_help() -> None:
    result = CliRunner().invoke(main, ["policy", "--help"])
    assert result.exit_code == 0 and "Usage: main policy" in result.output and "grant" in result.output


def test_every_command_runs_as_the_installed_command_does(tmp_path) -> None:
    """`python -m meshreg` (and the console script) run `run`, which freezes the collector on the way out: a command
    module named like a standard one (meshreg.cli.gc) must not take its name."""
    for name in sorted(LAZY_COMMANDS):
        done = subprocess.run([sys.executable, "-m", "meshreg", name, "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), name

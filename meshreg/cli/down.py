"""`meshreg down`: remove what `up` applied."""

from __future__ import annotations

import sys

import click

from meshreg.cli.options import cluster_options, config_option, echo_report, output_option, prepare, say
from meshreg.cli.output import down as formats
from meshreg.cli.output.up import outcome_line
from meshreg.cluster.outcomes import Outcome
from meshreg.errors import UsageError
from meshreg.operations.down import DownEvents, Purge
from meshreg.operations.down import down as remove


class _Terminal(DownEvents):
    """Asks before --purge (unless --yes), and prints each outcome on stdout."""

    def __init__(self, *, yes: bool, output: str) -> None:
        self.yes = yes
        self.text = output == "text"

    def confirm_purge(self, purge: Purge) -> None:
        if self.yes:
            return
        if not sys.stdin.isatty():
            raise UsageError("--purge deletes the registry's images; add --yes to confirm (no terminal to ask on)")
        click.confirm(formats.question(purge), abort=True, err=True)

    def outcome(self, outcome: Outcome) -> None:
        if self.text:
            click.echo(outcome_line(outcome))


@click.command()
@config_option
@cluster_options
@click.option("--purge", is_flag=True, help="Also delete the registry's data (its PVC) and its namespace.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before --purge deletes data.")
@output_option
def down(config_path: str | None, kubeconfig: str | None, context: str | None, purge: bool, yes: bool,
         output: str) -> None:
    """Remove what `meshreg up` applied, in reverse order. Keeps the PVC (the images) and its namespace unless
    --purge. Safe to run twice.

    \b
    Examples:
      meshreg down
      meshreg down --purge --yes      # everything, images included
      meshreg down -o json | jq '.objects[] | select(.action == "deleted")'
    """
    cfg, objects, cluster = prepare(config_path, kubeconfig, context)
    report = remove(cfg, cluster, manifests=objects, purge=purge, events=_Terminal(yes=yes, output=output))
    if report.note:
        say(report.note)
    echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))

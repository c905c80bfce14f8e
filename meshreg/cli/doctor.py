"""`meshreg doctor`: read-only checks of the cluster meshreg lands on."""

from __future__ import annotations

import click

from meshreg.cli.options import cluster_options, config_option, echo_report, output_option, prepare
from meshreg.cli.output import doctor as formats
from meshreg.doctor import GROUPS
from meshreg.operations.doctor import doctor as run_doctor


@click.command()
@config_option
@cluster_options
@output_option
@click.option("--check", "checks", multiple=True, type=click.Choice(list(GROUPS)), metavar="NAME",
              help=f"Run only these checks (repeatable): {', '.join(GROUPS)}.")
@click.pass_context
def doctor(ctx: click.Context, config_path: str | None, kubeconfig: str | None, context: str | None, output: str,
           checks: tuple[str, ...]) -> None:
    """Check the cluster for what meshreg needs, before or after `up`. Changes nothing. One line per check:
    OK, WARN or FAIL, and for WARN and FAIL what to do. Exit 0 when nothing FAILs, 1 when something does, 2 for
    bad input or a cluster that cannot be reached. `up` runs the checks that can FAIL before a deployment.

    \b
    Examples:
      meshreg doctor
      meshreg doctor --check nodes --check bypass
      meshreg doctor -o json | jq '.results[] | select(.status != "OK")'
      meshreg doctor -o yaml
    """
    cfg, manifests, cluster = prepare(config_path, kubeconfig, context)
    report = run_doctor(cfg, cluster, checks=checks or None, manifests=manifests)
    echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))
    ctx.exit(report.exit_code)

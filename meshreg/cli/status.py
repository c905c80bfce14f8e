"""`meshreg status`: what is deployed, whether it matches the config and is ready; exit 0 only when healthy."""

from __future__ import annotations

import click

from meshreg.cli.options import cluster_options, config_option, echo_report, output_option, prepare
from meshreg.cli.output import status as formats
from meshreg.operations.status import status as read_status


@click.command()
@config_option
@cluster_options
@output_option
@click.pass_context
def status(ctx: click.Context, config_path: str | None, kubeconfig: str | None, context: str | None,
           output: str) -> None:
    """Show each object (present, missing or drifted from the config), readiness, mTLS mode, writers and the
    published addresses. Exit code 0 when healthy, 1 when not.

    \b
    Examples:
      meshreg status
      meshreg status -o json | jq .registry
      meshreg status -o yaml
    """
    cfg, objects, cluster = prepare(config_path, kubeconfig, context)
    report = read_status(cfg, cluster, manifests=objects)
    echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))
    ctx.exit(0 if report.healthy else 1)

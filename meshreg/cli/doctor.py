"""`meshreg doctor`: read-only checks of the cluster meshreg deploys to."""

from __future__ import annotations

import json

import click

from meshreg import config
from meshreg import render as rendering
from meshreg.cli.options import cluster_options, config_option
from meshreg.cluster import client as clusters
from meshreg.cluster import doctor as doctoring
from meshreg.cluster.doctor.facts import Facts

output_option = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                             show_default=True, help="Output format.")


def _prepare(config_path, kubeconfig, context):
    cfg = config.load(config_path)
    objects = rendering.render(cfg)
    return cfg, objects, clusters.connect(kubeconfig=kubeconfig, context=context)


@click.command()
@config_option
@cluster_options
@output_option
@click.option("--check", "checks", multiple=True, type=click.Choice(list(doctoring.GROUPS)), metavar="NAME",
              help=f"Run only these checks (repeatable): {', '.join(doctoring.GROUPS)}.")
@click.pass_context
def doctor(ctx, config_path, kubeconfig, context, output, checks):
    """Check the cluster for what meshreg needs, before or after `up`. Changes nothing. One line per check:
    OK, WARN or FAIL, and for WARN and FAIL what to do. Exit 0 when nothing FAILs, 1 when something does, 2 for
    bad input or a cluster that cannot be reached. `up` runs the checks that can FAIL before a deployment.

    \b
    Examples:
      meshreg doctor
      meshreg doctor --check nodes --check bypass
      meshreg doctor -o json | jq '.results[] | select(.status != "OK")'
    """
    cfg, objects, cluster = _prepare(config_path, kubeconfig, context)
    results = doctoring.run(facts=Facts(cluster, cfg, objects), groups=checks or None)
    if output == "json":
        click.echo(json.dumps({"server": cluster.server, "config": cfg.source, "results":
                               [r.as_dict() for r in results], "counts": doctoring.counts(results),
                               "ok": not doctoring.failed(results)}, indent=2))
    else:
        header = f"meshreg doctor: {cluster.server} (config {cfg.source}, namespace {cfg.namespace})"
        click.echo(doctoring.text(results, header=header))
    ctx.exit(doctoring.exit_code(results))


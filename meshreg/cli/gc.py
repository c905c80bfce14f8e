"""`meshreg gc`: run a registry's garbage collection (and retention) now, and say what went or would go."""

from __future__ import annotations

import click

from meshreg.cli.options import (
    cluster_options,
    config_option,
    echo_report,
    load_config,
    output_option,
    registry_option,
    say,
    timeout_option,
)
from meshreg.cli.output import gc as formats
from meshreg.errors import ClusterError


@click.command()
@config_option
@cluster_options
@registry_option
@click.option("--dry-run", is_flag=True, help="Change nothing: say what retention would delete and what "
                                              "garbage-collect would reclaim (the registry stays writable).")
@timeout_option(default="1h", minimum=1, what="the Job")
@output_option
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.pass_context
def gc(ctx: click.Context, config_path: str | None, kubeconfig: str | None, context: str | None, registry: str | None,
       dry_run: bool, timeout: float, output: str, quiet: bool) -> None:
    """Run a registry's gc CronJob now (a Job from its template, like kubectl create job --from=cronjob/...),
    follow it, and print what retention deleted and what garbage-collect reclaimed.

    \b
    During a real run the registry is restarted read-only while distribution's garbage-collect runs (pushes
    get 405, pulls go on), then restarted writable; each restart pauses reads for a few seconds with a volume.
    The window is printed; whatever stops the Job, the registry is made writable again. See docs/gc.md.

    \b
    Examples:
      meshreg gc --dry-run
      meshreg gc --registry workspace-images
      meshreg gc --timeout 30m -o json | jq .result.blobs

    \b
    Exit codes: 0 done, 1 the Job failed or its result is unknown, 2 bad input.
    """
    from meshreg.cluster import client as clusters
    from meshreg.cluster.wait import Progress
    from meshreg.operations import gc as gcs

    cfg = load_config(config_path)
    gcs.collectable(cfg, registry)  # bad input fails before any connection
    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)
    report = gcs.gc(cfg, cluster, registry=registry, dry_run=dry_run, timeout=timeout, progress=Progress(quiet=quiet),
                    started=lambda job: say(formats.started(job)))
    echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))
    if not report.ok:
        if output == "text" and report.state != "Complete":
            raise ClusterError(formats.failure(report))
        ctx.exit(1)

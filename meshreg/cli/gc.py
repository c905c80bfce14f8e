"""`meshreg gc`: run a registry's garbage collection (and retention) now, and say what went or would go."""

from __future__ import annotations

import json

import click

from meshreg.cli.options import cluster_options, config_option, output_option, registry_option, say
from meshreg.errors import ClusterError, UsageError


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def describe(result: dict) -> list[str]:
    """The result line of a gc Job, for people."""
    dry = result.get("dryRun")
    lines = []
    for entry in result.get("retention") or []:
        tags = ", ".join(entry["tags"]) or "no tags"
        lines.append(f"retention: {entry['repository']}: {'would delete' if dry else 'deleted'} {tags} "
                     f"({len(entry['manifests'])} manifests)")
    if not result.get("retention"):
        lines.append("retention: nothing to delete" if "blobs" in result or dry else "retention: not run")
    if result.get("untaggedManifests"):
        lines.append(f"untagged manifests: {result['untaggedManifests']} {'would be ' if dry else ''}deleted")
    for kept in result.get("untaggedKept") or []:
        lines.append(f"untagged manifest kept: {kept} (a tagged index lists it; distribution 2.8's "
                     "--delete-untagged would break that image)")
    blobs = result.get("blobs")
    if blobs is not None:
        unknown = f" (+{blobs['unknownSize']} of unknown size)" if blobs.get("unknownSize") else ""
        lines.append(f"garbage-collect: {blobs['count']} blobs {'would be deleted' if dry else 'deleted'}, "
                     f"{size(blobs['bytes'])}{unknown} {'would be reclaimed' if dry else 'reclaimed'}")
    state = {"restored": "read-only while collecting, writable again", "stuck": "STILL READ-ONLY"}
    if result.get("readOnly"):
        lines.append(f"registry {result.get('deployment', '')}: {state.get(result['readOnly'], result['readOnly'])}")
    if result.get("error"):
        lines.append(f"error: {result['error']}")
    return lines


@click.command()
@config_option
@cluster_options
@registry_option
@click.option("--dry-run", is_flag=True, help="Change nothing: say what retention would delete and what "
                                              "garbage-collect would reclaim (the registry stays writable).")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True, metavar="SECONDS",
              help="How long to follow the Job.")
@output_option()
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.pass_context
def gc(ctx, config_path, kubeconfig, context, registry, dry_run, timeout, output, quiet):
    """Run a registry's gc CronJob now (a Job from its template, like kubectl create job --from=cronjob/...),
    follow it, and print what retention deleted and what garbage-collect reclaimed.

    \b
    During a real run the registry is restarted read-only (pulls go on, pushes fail cleanly) while
    distribution's garbage-collect runs, then restarted writable; see docs/gc.md.

    \b
    Examples:
      meshreg gc --dry-run
      meshreg gc --registry workspace-images
      meshreg gc -o json | jq .blobs

    \b
    Exit codes: 0 done, 1 the Job failed or its result is unknown, 2 bad input.
    """
    from meshreg import config
    from meshreg.cluster import client as clusters
    from meshreg.cluster import gc as gcs
    from meshreg.cluster import wait as waiting
    from meshreg.render.gc import gc_name

    cfg = config.load(config_path)
    reg = cfg.get_registry(registry)
    if reg.gc is None:
        raise UsageError(f"{cfg.source}: registry {reg.name} has no gc (add gc: {{schedule: \"0 3 * * 0\"}})")
    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)
    job = gcs.start(cluster=cluster, namespace=cfg.namespace, cron_name=gc_name(reg), dry_run=dry_run)
    name = job["metadata"]["name"]
    say(f"created Job {cfg.namespace}/{name} from CronJob {gc_name(reg)}")
    progress = waiting.Progress(quiet=quiet)
    state = gcs.finished(gcs.follow(cluster=cluster, namespace=cfg.namespace, name=name, timeout=timeout,
                                    progress=progress))
    result, why = gcs.result(cluster=cluster, namespace=cfg.namespace, job_name=name)
    if state == "Complete" and not dry_run:  # the registry's last restart, writable again
        waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "Deployment", reg.name)],
                     timeout=600, progress=progress)
    if output == "json":
        click.echo(json.dumps({"job": name, "state": state, "result": result,
                               **({"resultError": why} if result is None else {})}, indent=2))
    elif result is None:
        click.echo(f"Job {name}: {state}; its result cannot be read ({why}); "
                   f"try kubectl -n {cfg.namespace} logs job/{name} -c gc")
    else:
        click.echo("\n".join(describe(result)))
    if state != "Complete" or result is None or result.get("error"):
        if output == "text" and state != "Complete":
            raise ClusterError(f"Job {cfg.namespace}/{name} failed: kubectl -n {cfg.namespace} logs job/{name} "
                               "--all-containers")
        ctx.exit(1)

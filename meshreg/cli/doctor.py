"""`meshreg doctor` (read-only checks of the cluster) and `meshreg verify` (an end-to-end self-test in it)."""

from __future__ import annotations

import json
import signal
import textwrap

import click

from meshreg.cli.options import cluster_options, config_option, interruptible, output_option, prepare, say
from meshreg.cli.output import doctor as formats
from meshreg.doctor import GROUPS
from meshreg.errors import UsageError
from meshreg.operations.doctor import doctor as run_doctor

OBSERVED_WIDTH = 60


@click.command()
@config_option
@cluster_options
@output_option("Output format.")
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
    """
    cfg, manifests, cluster = prepare(config_path, kubeconfig, context)
    report = run_doctor(cfg, cluster, checks=checks or None, manifests=manifests)
    click.echo(json.dumps(formats.data(report), indent=2) if output == "json" else formats.text(report))
    ctx.exit(report.exit_code)


def _identity(value: str | None) -> str | None:
    from meshreg.config.names import check_identity

    if value is None:
        return None
    problem = check_identity(value)
    if problem:
        raise UsageError(f"--as {value}: {problem}")
    return value


@click.command()
@config_option
@cluster_options
@output_option("Output format.")
@click.option("--as", "as_identity", metavar="NS/SA", default=None,
              help="The writer whose identity pushes [default: each registry's first unscoped writer].")
@click.option("--image", default=None, metavar="IMAGE",
              help="Probe image with sh and curl, for airgapped clusters [default: docker.io/curlimages/curl].")
@click.option("--node", metavar="NAME", default=None,
              help="Node for the node-proxy and kubelet probes [default: a Ready node running the node proxy].")
@click.option("--timeout", type=click.FloatRange(min=10), default=180, show_default=True, metavar="SECONDS",
              help="How long to wait for each phase of probes.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.pass_context
def verify(ctx, config_path, kubeconfig, context, output, as_identity, image, node, timeout, quiet):
    """Prove the deployment works: short-lived probe pods push and pull through the mesh as a writer, a writer
    outside its prefixes, a bystander and a pod with no sidecar; a hostNetwork probe uses the node proxy on a node;
    the kubelet pulls the pushed image from localhost. Prints expectation / observed / verdict, removes every probe
    (also on Ctrl-C), and exits 0 only if every expectation held.

    \b
    Examples:
      meshreg verify
      meshreg verify --as builds/kaniko --node worker-2
      meshreg verify --image registry.internal/tools/curl:8.11.1 -o json
    """
    from meshreg import verify as verifying
    from meshreg.verify import objects
    from meshreg.cluster.wait import Progress

    cfg, _, cluster = prepare(config_path, kubeconfig, context)
    as_identity = _identity(as_identity)
    if as_identity and not any(w.service_account == as_identity for r in cfg.registries for w in cfg.writers_of(r)):
        raise UsageError(f"--as {as_identity}: not a writer of any registry in {cfg.source} (meshreg policy list)")
    interruptible()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = verifying.run(cluster=cluster, cfg=cfg, image=image or objects.DEFAULT_IMAGE,
                               as_identity=as_identity, node=node, timeout=timeout,
                               progress=Progress(quiet=quiet or output == "json"))
    except verifying.Interrupted as e:
        for note in e.report.notes:
            say(note)
        say("interrupted")
        ctx.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(json.dumps(_as_json(cluster, report), indent=2) if output == "json" else
               table(report, several=len(cfg.registries) > 1))
    ctx.exit(0 if report.ok else 1)


def _as_json(cluster, report) -> dict:
    return {"server": cluster.server, "run": report.run, "node": report.node,
            "expectations": [v.as_dict() for v in report.verdicts], "notes": report.notes, "ok": report.ok}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def table(report, *, several: bool) -> str:
    """EXPECTATION / OBSERVED / VERDICT (long observations wrapped in their column), then what was cleaned up or
    left behind."""
    rows = [(("[" + v.registry + "] " if several else "") + f"{v.expectation} → {v.expected}", v.observed, v.verdict)
            for v in report.verdicts]
    width = max([len(r[0]) for r in rows] + [len("EXPECTATION")])
    seen = min(max([len(r[1]) for r in rows] + [len("OBSERVED")]), OBSERVED_WIDTH)
    lines = [f"{'EXPECTATION':<{width}}  {'OBSERVED':<{seen}}  VERDICT"]
    for expectation, observed, verdict in rows:
        parts = textwrap.wrap(observed, seen, break_on_hyphens=False) or [""]
        lines.append(f"{expectation:<{width}}  {parts[0]:<{seen}}  {verdict}")
        lines += [f"{'':<{width}}  {part}" for part in parts[1:]]
    held = sum(1 for v in report.verdicts if v.verdict != "FAIL")
    lines.append(f"{held} of {len(report.verdicts)} expectations held (probes on node {report.node}, run "
                 f"{report.run})")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)

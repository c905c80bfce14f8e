"""`meshreg verify`: an end-to-end self-test of the deployment, in the cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from meshreg.cli.options import (
    cluster_options,
    completer,
    config_option,
    echo_report,
    interruptible,
    output_option,
    prepare,
    say,
    timeout_option,
)
from meshreg.cli.output import verify as formats
from meshreg.cluster.wait import Progress
from meshreg.operations.verify import verify as run_verify
from meshreg.verify.placement import Placement, parse_label, parse_toleration

Callback = Callable[[click.Context, click.Parameter, tuple[str, ...]], tuple[Any, ...]]


def _parsed(parse: Callable[[str], Any]) -> Callback:
    """A click callback applying `parse` to each value; its ValueError becomes a bad-parameter error (exit 2)."""
    def callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Any, ...]:
        try:
            return tuple(parse(v) for v in values)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return callback

writers = completer("writers")  # completes for a shell that asks; loads nothing for a command that runs


@click.command()
@config_option
@cluster_options
@output_option
@click.option("--as", "as_identity", metavar="NS/SA", default=None, shell_complete=writers,
              help="The writer whose identity pushes [default: each registry's first unscoped writer].")
@click.option("--image", default=None, metavar="IMAGE", envvar="MESHREG_VERIFY_IMAGE", show_envvar=True,
              help="Probe image with sh and curl, e.g. in a private mirror for airgapped clusters "
                   "[default: docker.io/curlimages/curl:8.11.1].")
@click.option("--node", metavar="NAME", default=None,
              help="Node for the node-proxy and kubelet probes [default: the first Ready, schedulable node with a "
                   "ready node proxy whose taints the probes tolerate].")
@click.option("--toleration", "tolerations", multiple=True, metavar="KEY[=VALUE][:EFFECT]",
              callback=_parsed(parse_toleration),
              help="A taint the probes tolerate, in kubectl's taint syntax (repeatable; ':NoSchedule' alone: every "
                   "NoSchedule taint). Default: none, so probes run only where untolerating pods may.")
@click.option("--node-selector", "node_selector", multiple=True, metavar="KEY=VALUE", callback=_parsed(parse_label),
              help="Run the probes only on nodes with this label (repeatable).")
@timeout_option(default="3m", minimum=10, what="each phase of probes")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.pass_context
def verify(ctx: click.Context, config_path: str | None, kubeconfig: str | None, context: str | None, output: str,
           as_identity: str | None, image: str | None, node: str | None, tolerations: tuple[dict[str, str], ...],
           node_selector: tuple[tuple[str, str], ...], timeout: float, quiet: bool) -> None:
    """Prove the deployment works: short-lived probe pods push and pull through the mesh as a writer, a writer
    outside its prefixes, a bystander and a pod with no sidecar; a hostNetwork probe uses the node proxy on a node;
    the kubelet pulls the pushed image from localhost. Prints expectation / observed / verdict, removes every probe
    (also on Ctrl-C), and exits 0 only if every expectation held.

    \b
    Examples:
      meshreg verify
      meshreg verify --as builds/kaniko --node worker-2
      meshreg verify --image registry.internal/tools/curl:8.11.1 -o json
      meshreg verify --timeout 5m -o yaml
      meshreg verify --toleration dedicated=registry:NoSchedule --node-selector pool=registry
    """
    cfg, _, cluster = prepare(config_path, kubeconfig, context)
    interruptible()
    report = run_verify(cfg, cluster, image=image, as_identity=as_identity, node=node, timeout=timeout,
                        placement=Placement(tolerations, node_selector), progress=Progress(quiet=quiet))
    if report.interrupted:
        for line in formats.interruption(report):
            say(line)
    else:
        echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))
    ctx.exit(report.exit_code)

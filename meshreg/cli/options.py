"""Options and steps shared by several commands, each defined once.

Nothing here imports the cluster part at import time: `meshreg render` loads this module too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from meshreg.cluster.api import ClusterClient, Object
    from meshreg.config import Config

F = TypeVar("F", bound=Callable[..., object])

config_option = click.option(
    "-c", "--config", "config_path", metavar="FILE", default=None, envvar="MESHREG_CONFIG",
    help="Config file [default: ./meshreg.yaml if present, else the built-in default].",
)

registry_option = click.option(
    "--registry", "registry", metavar="NAME", default=None,
    help="Which registry, with spec.registries [default: the default registry].")


def output_option(help: str | None = None) -> Callable[[F], F]:
    """-o/--output text|json; `help` as each command's --help has always shown it (some show none)."""
    return click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help=help)


def cluster_options(func: F) -> F:
    """--kubeconfig and --context, as kubectl spells them."""
    func = click.option("--context", metavar="NAME", default=None,
                        help="Kubeconfig context to use [default: the current context].")(func)
    # $KUBECONFIG is read by meshreg.cluster.connect, not here: an explicit --kubeconfig must exist, while entries
    # of a $KUBECONFIG list that do not exist are skipped, as kubectl does.
    func = click.option("--kubeconfig", metavar="PATH", default=None,
                        help="Kubeconfig file(s) [default: $KUBECONFIG, then ~/.kube/config, then in-cluster].")(func)
    return func


def say(line: str) -> None:
    """A line from meshreg itself (a note, a warning, progress) on stderr, so stdout stays the command's output."""
    click.echo(f"meshreg: {line}", err=True)


def prepare(config_path: str | None, kubeconfig: str | None,
            context: str | None) -> tuple[Config, list[Object], ClusterClient]:
    """Config, render and connection, in that order: bad input fails before any request."""
    from meshreg import config
    from meshreg import render as rendering
    from meshreg.cluster import client as clusters

    cfg = config.load(config_path)
    objects = rendering.render(cfg)
    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)  # looked up now, so tests can swap it
    return cfg, objects, cluster


def only_with_apply(*, apply: bool, context: str | None) -> None:
    """For commands that edit files and apply with --apply: checked before they change anything."""
    if context and not apply:
        raise click.UsageError("--context only makes sense with --apply")


def apply_only(manifests: list[Object], *, kubeconfig: str | None, context: str | None) -> None:
    """Server-side apply just these manifests (what a command has just changed), one line per object."""
    from meshreg.cluster import client as clusters
    from meshreg.operations.publish import publish

    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)
    for outcome in publish(manifests, cluster):
        click.echo(f"  {outcome.action}: {outcome}")


def interruptible() -> None:
    """Ctrl-C (SIGINT) stops the command even when a shell started it with SIGINT ignored (as a background job):
    long-running commands that clean up after themselves call this first."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)

"""Options shared by several commands, each defined once."""

from __future__ import annotations

import click

config_option = click.option(
    "-c", "--config", "config_path", metavar="FILE", default=None, envvar="MESHREG_CONFIG",
    help="Config file [default: ./meshreg.yaml if present, else the built-in default].",
)


def cluster_options(func):
    """--kubeconfig and --context, as kubectl spells them."""
    func = click.option("--context", metavar="NAME", default=None,
                        help="Kubeconfig context to use [default: the current context].")(func)
    # $KUBECONFIG is read by meshreg.cluster.connect, not here: an explicit --kubeconfig must exist, while entries
    # of a $KUBECONFIG list that do not exist are skipped, as kubectl does.
    func = click.option("--kubeconfig", metavar="PATH", default=None,
                        help="Kubeconfig file(s) [default: $KUBECONFIG, then ~/.kube/config, then in-cluster].")(func)
    return func


def interruptible() -> None:
    """Ctrl-C (SIGINT) stops the command even when a shell started it with SIGINT ignored (as a background job):
    long-running commands that clean up after themselves call this first."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)

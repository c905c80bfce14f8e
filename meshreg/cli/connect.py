"""`meshreg connect`: push from a laptop through a registry's push proxy, over a port-forward."""

from __future__ import annotations

import ipaddress
import signal
import threading

import click

from meshreg.cli.options import cluster_options, config_option, interruptible, load_config, registry_option, say
from meshreg.cli.output import connect as formats
from meshreg.operations import connect as connecting


@click.command()
@config_option
@registry_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Local port [default: the push proxy's port, the one published as local-registry-hosting].")
@click.option("--address", default="127.0.0.1", show_default=True, metavar="IP",
              help="Local address to listen on.")
@cluster_options
def connect(config_path: str | None, registry: str | None, port: int | None, address: str, kubeconfig: str | None,
            context: str | None) -> None:
    """Forward a local port to the registry's push proxy, so `docker push`, Skaffold and Tilt can push to
    localhost:PORT. Runs until Ctrl-C; follows the push proxy to a new pod when its pod is replaced.

    \b
    Who may push is Kubernetes RBAC: port-forward in the push proxy's namespace (the Role meshreg-connect there,
    see `meshreg policy list`). What may be pushed is pushProxy.repositories.

    \b
    Examples:
      meshreg connect                             # localhost:5000 -> the default registry
      meshreg connect --registry service-images --port 5001
      docker push localhost:5000/dev/app:v1       # in another terminal
      tilt up                                     # Tilt reads kube-public/local-registry-hosting
      skaffold run --default-repo=localhost:5000/dev

    \b
    On a machine that is itself the cluster's node (k3s, minikube --driver=none), the node proxy's hostPort takes
    127.0.0.1:<nodeProxy.port>: give the push proxy a port of its own (pushProxy.port), see docs/pushing.md.

    \b
    Exit codes: 0 stopped with Ctrl-C, 1 cluster problem (no ready pod, forbidden), 2 bad input.
    """
    from meshreg.cluster import client as clusters

    interruptible()
    cfg = load_config(config_path)
    target = connecting.target(cfg, registry)
    session = connecting.listen(cfg, target, address=_address(address), port=port)
    try:  # from here on Ctrl-C, even while starting, stops cleanly with exit 0
        forwarding = session.start(clusters.connect(kubeconfig=kubeconfig, context=context), say=say)
        click.echo(formats.text(forwarding))
        _serve(session)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    click.echo("stopped", err=True)


def _address(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address", param_hint="--address") from None
    if not ip.is_loopback:
        say(f"warning: listening on {value}: anyone who can reach this machine there can push as the push proxy")
    return value


def _serve(session: connecting.Session) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        session.serve(stop)
    finally:
        signal.signal(signal.SIGTERM, previous)

"""`meshreg connect`: push from a laptop through a registry's push proxy, over a port-forward."""

from __future__ import annotations

import ipaddress

import click

from meshreg.cli.options import (
    cluster_options,
    config_option,
    interruptible,
    registry_option,
    say,
)
from meshreg.errors import ConfigError


@click.command()
@config_option
@registry_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Local port [default: the push proxy's port, the one published as local-registry-hosting].")
@click.option("--address", default="127.0.0.1", show_default=True, metavar="IP",
              help="Local address to listen on.")
@cluster_options
def connect(config_path, registry, port, address, kubeconfig, context):
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
    from meshreg import config
    from meshreg.cluster import client as clusters
    from meshreg.cluster import portforward
    from meshreg.render.devloop import devloop

    interruptible()
    cfg = config.load(config_path)
    reg = cfg.get_registry(registry)
    target = _target(cfg, reg)
    address = _address(address)
    loop = devloop(cfg, reg)
    hints = {} if port or loop is None else {"hint": loop.taken_hint(), "node_hint": loop.intercepted_hint()}
    listener = portforward.listen(address, port or target.port, **hints)
    try:  # from here on Ctrl-C, even while starting, stops cleanly with exit 0
        cluster = clusters.connect(kubeconfig=kubeconfig, context=context)
        forwarder = portforward.Forwarder(cluster=cluster, target=target, listener=listener, say=say)
        pod = forwarder.start()
        local = f"{'localhost' if address in ('127.0.0.1', '::1') else address}:{listener.getsockname()[1]}"
        click.echo(_banner(loop, target, local=local, pod=pod))
        _serve(forwarder)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    click.echo("stopped", err=True)


def _target(cfg, reg):
    from meshreg.cluster.pushproxy import Target
    from meshreg.render import pushproxy

    if reg.push_proxy is None:
        which = "the registry " if len(cfg.registries) == 1 else f"registry {reg.name} "
        raise ConfigError(f"{cfg.source}: {which}has no push proxy; enable one (pushProxy: {{enabled: true, "
                          "repositories: [dev/]}), run meshreg up, then meshreg connect (see docs/pushing.md)")
    return Target(registry=reg.name, namespace=reg.push_proxy.namespace, selector=pushproxy.selector(cfg, reg),
                  port=reg.push_proxy.port, role=pushproxy.ROLE)


def _address(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address", param_hint="--address") from None
    if not ip.is_loopback:
        say(f"warning: listening on {value}: anyone who can reach this machine there can push as the push proxy")
    return value


def _banner(loop, target, *, local: str, pod: str) -> str:
    """What to give docker, Skaffold and Tilt; the local address replaces the default one where --port moved it."""
    push = local + loop.push[len(f"localhost:{loop.port}"):] if local != f"localhost:{loop.port}" else loop.push
    tilt = ("nothing to set: it reads kube-public/local-registry-hosting" if loop.published and push == loop.push
            else f"default_registry('{push}', host_from_cluster='{loop.pull}')")
    skaffold = (f"skaffold run --default-repo={push}" if loop.same_name or push != loop.push else
                f"skaffold run --default-repo={push}   (pods then pull {push}/...: only on a node that reaches "
                "this meshreg connect)")
    return "\n".join([
        (f"forwarding {local} -> pod {target.namespace}/{pod}:{target.port} (registry {loop.registry}: pushes to "
        f"{push}/...)"),
        f"  docker:   docker push {push}/IMAGE:TAG",
        f"  skaffold: {skaffold}",
        f"  tilt:     {tilt}",
        f"  pull in pod specs: {loop.pull}/..." + ("" if loop.node_proxy else " (no node proxy)"),
        "Ctrl-C to stop.",
    ])


def _serve(forwarder) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM; then stop listening and end every connection."""
    forwarder.serve(signals=True)

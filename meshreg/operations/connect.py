"""`meshreg connect`: which push proxy a registry has, a local port that forwards to its ready pod, and what
to tell people once it does (the Forwarding), served until stopped."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from meshreg.cluster import portforward
from meshreg.cluster.pushproxy import Target
from meshreg.config import Config
from meshreg.errors import ConfigError
from meshreg.render import pushproxy
from meshreg.render.devloop import DevLoop, devloop

__all__ = ["Forwarding", "Session", "listen", "target"]

LOOPBACK = ("127.0.0.1", "::1")


def target(cfg: Config, registry: str | None) -> Target:
    """Where `registry`'s push proxy runs; ConfigError saying how to enable one when it has none."""
    reg = cfg.get_registry(registry)
    if reg.push_proxy is None:
        which = "the registry " if len(cfg.registries) == 1 else f"registry {reg.name} "
        raise ConfigError(f"{cfg.source}: {which}has no push proxy; enable one (pushProxy: {{enabled: true, "
                          "repositories: [dev/]}), run meshreg up, then meshreg connect (see docs/pushing.md)")
    return Target(registry=reg.name, namespace=reg.push_proxy.namespace, selector=pushproxy.selector(cfg, reg),
                  port=reg.push_proxy.port, role=pushproxy.ROLE)


@dataclass(frozen=True)
class Forwarding:
    """A local address forwarding to a push-proxy pod: what people push to, and where pod specs pull from."""

    local: str  # host:port, as docker and skaffold name it
    namespace: str
    pod: str
    port: int  # the push proxy's port in its pod
    registry: str
    repositories: tuple[str, ...]  # what the push proxy writes: ("*",) or prefixes
    pull: str  # where pod specs pull from: localhost:<port>[/prefix] through the node proxy, else the Service
    node_proxy: bool
    loop: DevLoop  # the published names and the setup (same name or split) the config makes


def listen(cfg: Config, where: Target, *, address: str, port: int | None) -> Session:
    """Listen on address:port (default: the push proxy's port); UsageError when that is impossible, saying which
    setting to change when the default port is taken or, on a machine that is a node, intercepted by a hostPort."""
    loop = devloop(cfg, cfg.get_registry(where.registry))
    if port or loop is None:
        return Session(cfg, where, portforward.listen(address, port or where.port), address=address)
    listener = portforward.listen(address, where.port, hint=loop.taken_hint(), node_hint=loop.intercepted_hint())
    return Session(cfg, where, listener, address=address)


class Session:
    """A listening local port for one push proxy: started on a cluster, served until stopped, then closed."""

    def __init__(self, cfg: Config, where: Target, listener: socket.socket, *, address: str) -> None:
        self.cfg, self.target, self.listener, self.address = cfg, where, listener, address
        self.forwarder: portforward.Forwarder | None = None

    def start(self, cluster: portforward.Forwardable, *, say: Callable[[str], None]) -> Forwarding:
        """Pick the ready pod to forward to (ClusterError when there is none); `say` hears of pod changes later."""
        self.forwarder = portforward.Forwarder(cluster=cluster, target=self.target, listener=self.listener, say=say)
        pod = self.forwarder.start()
        host = "localhost" if self.address in LOOPBACK else self.address
        reg = self.cfg.get_registry(self.target.registry)
        assert reg.push_proxy is not None  # target() has checked
        loop = devloop(self.cfg, reg)
        assert loop is not None
        return Forwarding(local=f"{host}:{self.listener.getsockname()[1]}", namespace=self.target.namespace, pod=pod,
                          port=self.target.port, registry=reg.name, repositories=reg.push_proxy.repositories,
                          pull=loop.pull, node_proxy=loop.node_proxy, loop=loop)

    def serve(self, stop: threading.Event) -> None:
        """Forward every connection until `stop` is set."""
        assert self.forwarder is not None, "start() first"
        self.forwarder.serve(stop)

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        if self.forwarder is not None:
            self.forwarder.close()
        self.listener.close()

"""The dev loop of a registry with a push proxy, as the config makes it: the name people push (through `meshreg
connect`, published as KEP-1755 `host`), the name pods pull (`hostFromContainerRuntime`), whether they are the same,
and what to do when connect's port is taken or, on a machine that is a node, intercepted.

Two setups:
- same name: the push proxy and the node proxy share a port (the default; `nodeProxy.port: 5001` moves both, for
  a laptop whose 5000 is taken, e.g. by macOS's AirPlay Receiver). Tilt and Skaffold both work, on any node.
- split: `pushProxy.port` differs. Tilt pushes `host` and deploys `hostFromContainerRuntime`; Skaffold deploys the
  name it pushed, which only a node that reaches `meshreg connect` can pull: the machine itself when it is the
  cluster's node (k3s, minikube's none driver). On such a machine the node proxy's hostPort takes 127.0.0.1:PORT,
  so connect needs a port of its own: this is the setup for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.config import Config, Registry
from meshreg.render.hosting import addresses

__all__ = ["PORT_HINT", "DevLoop", "devloop"]

PORT_HINT = "pick another port with --port"


@dataclass(frozen=True)
class DevLoop:
    """What a registry's push proxy gives people outside the cluster."""

    registry: str
    port: int  # where `meshreg connect` listens by default
    push: str  # localhost:PORT[/prefix], the published `host`
    pull: str  # what pod specs name: localhost:PORT[/prefix] through the node proxy, else the registry's Service
    node_proxy: bool
    published: bool  # this registry's addresses are kube-public/local-registry-hosting (Tilt and Skaffold read it)

    @property
    def same_name(self) -> bool:
        return self.push == self.pull

    @property
    def setup(self) -> str:
        return "same name" if self.same_name else "split"

    def taken_hint(self) -> str:
        """What to do when connect's default port is in use on this machine."""
        if self.same_name:
            return (f"to keep one name for push and pull, set nodeProxy.port to a free port such as {self.port + 1} "
                    f"and run meshreg up (the push proxy follows it), or {PORT_HINT}")
        return f"set pushProxy.port to a free port and run meshreg up, or {PORT_HINT}"

    def intercepted_hint(self) -> str:
        """What to do when this machine is a node and a hostPort takes connect's default port."""
        return (f"set pushProxy.port to a port no pod uses as a hostPort (e.g. {self.port + 1}) and run meshreg up: "
                "pods on this node then pull through meshreg connect too (docs/pushing.md, a machine that is a node)")


def devloop(cfg: Config, reg: Registry) -> DevLoop | None:
    """The dev loop of `reg`, or None when it has no push proxy."""
    if reg.push_proxy is None:
        return None
    found = addresses(cfg, reg)
    under = found["host"].partition("/")[2]
    push = f"localhost:{reg.push_proxy.port}" + (f"/{under}" if under else "")
    pull = found.get("hostFromContainerRuntime") or cfg.service_host(reg)
    return DevLoop(registry=reg.name, port=reg.push_proxy.port, push=push, pull=pull,
                   node_proxy=cfg.node_proxy.enabled,
                   published=reg.default and cfg.local_registry_hosting.publish)

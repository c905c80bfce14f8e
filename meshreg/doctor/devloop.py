"""Check `connect`: the dev loop of each registry with a push proxy, from the machine doctor runs on.

Which setup the config makes (one name for push and pull, or split ports; meshreg.render.devloop), whether this
machine is itself one of the cluster's nodes (a node address is an address of this machine, so a node proxy's
hostPort on 127.0.0.1 takes that port here), and whether `meshreg connect`'s port is free here, taken by another
program, or intercepted: the port is really bound and connected to, as connect itself does.
"""

from __future__ import annotations

import socket

from meshreg.cluster.api import Object
from meshreg.cluster.localport import Probe, is_local_address, probe
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, ok, warn
from meshreg.render.devloop import DevLoop, devloop

CHECK = "connect"


def this_node(nodes: list[Object]) -> str | None:
    """The node this machine is (one of its addresses is local, or its name is this host's name), or None."""
    hostname = socket.gethostname()
    for node in nodes:
        addresses = [a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
                     if a.get("type") in ("InternalIP", "ExternalIP")]
        if node["metadata"]["name"] == hostname or any(is_local_address(a) for a in addresses if a):
            return str(node["metadata"]["name"])
    return None


def check(facts: Facts) -> list[Result]:
    cfg = facts.cfg
    loops = [loop for reg in cfg.registries if (loop := devloop(cfg, reg))]
    if not loops:
        return []  # no push proxy: nothing is pushed from outside the cluster, so no line
    node = this_node(facts.cluster.list("v1", "Node"))
    return [judge(loop, node=node, port=probe("127.0.0.1", loop.port)) for loop in loops]


def _describe(loop: DevLoop) -> str:
    who = f"registry {loop.registry}: " if not loop.published else ""
    if loop.same_name:
        return f"{who}same name for push and pull, {loop.push} (push proxy and node proxy share port {loop.port})"
    return f"{who}split: push {loop.push} through meshreg connect, pods pull {loop.pull}"


def judge(loop: DevLoop, *, node: str | None, port: Probe) -> Result:
    """One line for one registry's dev loop, from this machine's point of view."""
    setup = _describe(loop)
    if port.state == "intercepted" or (node and loop.same_name and loop.node_proxy):
        where = f"this machine is node {node}" if node else "this machine is a node"
        return warn(CHECK, f"{setup}; {where}: a hostPort takes 127.0.0.1:{loop.port} here, so meshreg connect "
                           "cannot listen on it", loop.intercepted_hint())
    if port.state == "taken":
        return warn(CHECK, f"{setup}; 127.0.0.1:{loop.port} is in use on this machine (by meshreg connect, or by "
                           "another program such as macOS's AirPlay Receiver on 5000)",
                    f"if it is not meshreg connect: {loop.taken_hint()}")
    if node:
        return ok(CHECK, f"{setup}; this machine is node {node}: Tilt deploys {loop.pull}, Skaffold deploys "
                         f"{loop.push}, which this node pulls through meshreg connect")
    if not loop.same_name:
        return warn(CHECK, f"{setup}; Skaffold deploys the name it pushed ({loop.push}), which nodes cannot pull "
                           "unless they are this machine (Tilt deploys the pull name)",
                    f"for one name everywhere, drop pushProxy.port and set nodeProxy.port: {loop.port} (the push "
                    "proxy follows it), then run meshreg up")
    return ok(CHECK, f"{setup}; 127.0.0.1:{loop.port} is free here for meshreg connect")

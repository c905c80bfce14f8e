"""Check 6: each node's container runtime, judged for plain HTTP to `localhost:PORT` (what the kubelet pulls from),
and anything else already holding the node proxy's hostPort on a node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshreg.cluster.api import Object
from meshreg.cluster.selectors import matches
from meshreg.config import Config
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, could_not, fail, ok, some, warn
from meshreg.errors import ClusterError
from meshreg.render.labels import node_proxy_pods
from meshreg.runtimes import DOCS, judge

CHECK = "nodes"
SETUP = DOCS  # what to configure on such nodes


def judge_runtime(runtime: str, *, configured: tuple[str, ...] = ()) -> tuple[str, str]:
    """(OK|WARN, why) for a `status.nodeInfo.containerRuntimeVersion` such as `containerd://1.6.20`, as
    meshreg.runtimes judges it; `configured`: the runtimes meshreg's runtime config writes files for."""
    found = judge(runtime)
    if found.needed is False:
        return "OK", found.reason
    if found.needed and found.setting in configured:
        return "OK", f"{found.reason}; spec.nodeProxy.runtimeConfig.{found.setting} configures it"
    return "WARN", found.reason


def check(facts: Facts) -> list[Result]:
    cfg = facts.cfg
    if not cfg.node_proxy.enabled:
        return [ok(CHECK, "node proxy disabled: nothing pulls from localhost")]
    nodes = facts.cluster.list("v1", "Node")
    try:
        ports = host_ports(facts, nodes)
    except ClusterError as e:  # listing pods in every namespace needs cluster-wide read access
        ports = [could_not(CHECK, e)]
    return runtimes(cfg, nodes) + ports


def runtimes(cfg: Config, nodes: list[Object]) -> list[Result]:
    groups: dict[str, list[str]] = {}
    for node in nodes:
        runtime = ((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or "unknown"
        groups.setdefault(runtime, []).append(node["metadata"]["name"])
    if not groups:
        return [warn(CHECK, "no nodes found", "the kubelet pulls nothing until nodes join the cluster")]
    ports = ", ".join(f"localhost:{r.port}" for r in sorted(cfg.registries, key=lambda r: r.port))
    out = []
    configured = tuple(runtime for runtime, _ in cfg.node_proxy.runtime_config.directories)
    for runtime, names in sorted(groups.items()):
        status, why = judge_runtime(runtime, configured=configured)
        where = f"{runtime} on {len(names)} node(s) ({_few(names)})"
        if status == "OK":
            out.append(ok(CHECK, f"{where}: {why}"))
        else:
            out.append(warn(CHECK, f"{where}: {why}",
                            f"configure those nodes for plain HTTP to {ports}: spec.nodeProxy.runtimeConfig does it "
                            f"(see {SETUP}), then meshreg verify"))
    return out


def host_ports(facts: Facts, nodes: list[Object]) -> list[Result]:
    cfg = facts.cfg
    wanted = {r.port for r in cfg.registries}
    mine = node_proxy_pods(cfg)
    pods = facts.cluster.list("v1", "Pod", field_selector="status.phase!=Succeeded,status.phase!=Failed")
    taken = [found for pod in pods for found in _taken(pod, cfg=cfg, wanted=wanted, mine=mine)]
    if taken:
        return [fail(CHECK, f"the node proxy's hostPort is taken: {some(sorted(taken))}",
                     "choose free ports (nodeProxy.port / registries[].port) or move those pods; a node whose port "
                     "is taken gets no node proxy and cannot pull from localhost")]
    return [ok(CHECK, f"hostPort {', '.join(map(str, sorted(wanted)))} is free on {cfg.node_proxy.host_ip} "
                      f"on all {len(nodes)} node(s)")]


def _taken(pod: Object, *, cfg: Config, wanted: set[int], mine: dict[str, str]) -> list[str]:
    """`PORT on NODE by pod NS/NAME` for each of the `wanted` ports a pod holds where the node proxy listens; none
    for the node proxy's own pods (labels `mine` in the registry's namespace)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    labels = meta.get("labels") or {}
    if not spec.get("nodeName") or (meta.get("namespace") == cfg.namespace and matches({"matchLabels": mine}, labels)):
        return []
    return [f"{port} on {spec['nodeName']} by pod {meta.get('namespace')}/{meta['name']}"
            for port, host_ip in _host_ports(spec)
            if port in wanted and host_ip in ("", "0.0.0.0", cfg.node_proxy.host_ip)]


def _host_ports(spec: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """(port, hostIP) of every TCP port a pod holds on its node (hostNetwork pods hold their containerPorts)."""
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            port = _host_port(p, host_network=bool(spec.get("hostNetwork")))
            if port:
                yield port, p.get("hostIP") or ""


def _host_port(port: dict[str, Any], *, host_network: bool) -> int | None:
    """The node port a container port holds: its hostPort, or with hostNetwork its containerPort; None for UDP and
    SCTP ports."""
    if (port.get("protocol") or "TCP") != "TCP":
        return None
    held: int | None = port.get("hostPort") or (port.get("containerPort") if host_network else None)
    return held


def _few(names: list[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

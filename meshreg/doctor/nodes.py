"""Check 6: each node's container runtime, judged for plain HTTP to `localhost:PORT` (what the kubelet pulls from),
and anything else already holding the node proxy's hostPort on a node (reading only the pods of nodes where the
node proxy does not hold it yet: none once it runs everywhere, so the check costs the same with 100 pods or 50,000)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshreg.cluster import parallel
from meshreg.cluster.api import Object
from meshreg.cluster.pushproxy import is_ready
from meshreg.cluster.selectors import matches
from meshreg.config import Config
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, could_not, fail, ok, some, warn
from meshreg.errors import ClusterError
from meshreg.render.labels import node_proxy_pods, selector
from meshreg.render.nodeproxy import NAME
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
    """Whether another pod holds a registry's port on the node proxy's host IP on some node. Where this node proxy
    already runs, ready, with those ports, nothing else can hold them (the scheduler places no two pods with one
    host port on a node), so only the pods of the other nodes are read: none at all once it runs everywhere, one
    node's pods for a node that joined, every pod before the first `up`."""
    cfg = facts.cfg
    wanted = {r.port for r in cfg.registries}
    names = sorted(n["metadata"]["name"] for n in nodes)
    held = _held(facts, wanted=wanted, nodes=names)
    unsure = [n for n in names if n not in held]
    pods = _pods_on(facts, unsure, every=len(unsure) == len(names))
    mine = node_proxy_pods(cfg)
    taken = [found for pod in pods for found in _taken(pod, cfg=cfg, wanted=wanted, mine=mine)]
    ports = ", ".join(map(str, sorted(wanted)))
    if taken:
        return [fail(CHECK, f"the node proxy's hostPort is taken: {some(sorted(taken))}",
                     "choose free ports (nodeProxy.port / registries[].port) or move those pods; a node whose port "
                     "is taken gets no node proxy and cannot pull from localhost")]
    if names and not unsure:
        return [ok(CHECK, f"hostPort {ports} on {cfg.node_proxy.host_ip} is the node proxy's on all {len(names)} "
                          "node(s)")]
    return [ok(CHECK, f"hostPort {ports} is free on {cfg.node_proxy.host_ip} on all {len(nodes)} node(s)")]


def _held(facts: Facts, *, wanted: set[int], nodes: list[str]) -> set[str]:
    """The nodes where this node proxy runs, ready, holding every `wanted` port on its host IP: from its
    DaemonSet's status when it is ready on every node, else from its pods (one per node)."""
    cfg = facts.cfg
    try:
        daemon_set = _daemon_set(facts)
    except ClusterError:  # not allowed to read it: every node's pods are read
        return set()
    if daemon_set is None or not _declares(_pod_template(daemon_set), cfg=cfg, wanted=wanted):
        return set()
    if _ready_everywhere(daemon_set, nodes=len(nodes)):
        return set(nodes)
    pods = facts.cluster.list("v1", "Pod", namespace=cfg.namespace, label_selector=selector(node_proxy_pods(cfg)))
    return {p["spec"]["nodeName"] for p in pods
            if is_ready(p) and p["spec"].get("nodeName") and _declares(p["spec"], cfg=cfg, wanted=wanted)}


def _daemon_set(facts: Facts) -> Object | None:
    """The node proxy's DaemonSet as it is, from the namespace's DaemonSets (which `up` reads anyway)."""
    found = facts.collection("apps/v1", "DaemonSet", facts.cfg.namespace)
    return next((d for d in found if d["metadata"]["name"] == NAME), None)


def _pod_template(daemon_set: Object) -> dict[str, Any]:
    """The pod spec of a DaemonSet's template (empty where it has none: nothing it declares)."""
    template = (daemon_set.get("spec") or {}).get("template") or {}
    spec: dict[str, Any] = template.get("spec") or {}
    return spec


def _ready_everywhere(daemon_set: Object, *, nodes: int) -> bool:
    """Its current template scheduled, updated and ready on `nodes` nodes."""
    status = daemon_set.get("status") or {}
    current = status.get("observedGeneration", 0) >= daemon_set["metadata"].get("generation", 1)
    counts = {status.get(k) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberReady")}
    return current and counts == {nodes}


def _declares(spec: dict[str, Any], *, cfg: Config, wanted: set[int]) -> bool:
    """Whether a pod spec holds every `wanted` port on the node proxy's host IP."""
    return wanted <= {port for port, host_ip in _host_ports(spec) if host_ip == cfg.node_proxy.host_ip}


def _pods_on(facts: Facts, nodes: list[str], *, every: bool) -> list[Object]:
    """The pods that may hold a port on `nodes` (not finished): one LIST of all when `every` node is in question,
    else one LIST per node (a field selector on spec.nodeName)."""
    running = "status.phase!=Succeeded,status.phase!=Failed"
    if every:
        return facts.cluster.list("v1", "Pod", field_selector=running)
    per_node = parallel.values(lambda node: facts.cluster.list("v1", "Pod", field_selector=f"spec.nodeName={node},"
                                                                                          f"{running}"), nodes)
    return [pod for pods in per_node for pod in pods]


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

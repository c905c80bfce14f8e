"""The node verify's node-proxy and kubelet probes run on: the one asked for, or a Ready node with a node proxy."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.verify.objects import Platform


def pick_node(cluster: ClusterClient, cfg: Config, *, wanted: str | None) -> tuple[str, Platform]:
    """(node name, (os, arch)) for the node-proxy and kubelet probes: `wanted`, or a Ready node with a node proxy."""
    nodes = {n["metadata"]["name"]: n for n in cluster.list("v1", "Node")}
    if wanted and wanted not in nodes:
        raise ClusterError(f"--node {wanted}: no such node (nodes: {', '.join(sorted(nodes)) or 'none'})")
    ready = [n for n in sorted(nodes) if _ready(nodes[n])]
    proxied = _proxied(cluster, cfg)  # read even when --node names one
    name = wanted or _first(ready, proxied)
    if name is None:
        raise ClusterError("no Ready node to run the node probes on")
    return name, _platform(nodes[name])


def _first(ready: list[str], proxied: set[str | None]) -> str | None:
    """The first Ready node with a node proxy, else the first Ready node."""
    return next((n for n in ready if n in proxied), ready[0] if ready else None)


def _ready(node: Object) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _proxied(cluster: ClusterClient, cfg: Config) -> set[str | None]:
    """The nodes a node-proxy pod runs on (none when the node proxy is disabled)."""
    if not cfg.node_proxy.enabled:
        return set()
    selector = labels.selector(labels.node_proxy_pods(cfg))
    return {p["spec"].get("nodeName") for p in cluster.list("v1", "Pod", namespace=cfg.namespace,
                                                            label_selector=selector)}


def _platform(node: Object) -> Platform:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return info.get("operatingSystem") or "linux", info.get("architecture") or "amd64"

"""The node verify's node-proxy and kubelet probes run on: the one asked for, or the first that can run them (Ready,
not cordoned, its taints tolerated, the node selector matched, a ready node-proxy pod there); with the reason for
every node that cannot when none can."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.verify.objects import Platform
from meshreg.verify.placement import ANYWHERE, Placement, unfit


def pick_node(cluster: ClusterClient, cfg: Config, *, wanted: str | None,
              placement: Placement = ANYWHERE) -> tuple[str, Platform]:
    """(node name, (os, arch)) for the node-proxy and kubelet probes."""
    nodes = {n["metadata"]["name"]: n for n in cluster.list("v1", "Node")}
    if wanted and wanted not in nodes:
        raise ClusterError(f"--node {wanted}: no such node (nodes: {', '.join(sorted(nodes)) or 'none'})")
    proxied = _proxied(cluster, cfg)
    why = {name: unfit(nodes[name], placement, proxied=proxied) for name in sorted(nodes) if wanted in (None, name)}
    name = next((n for n, problem in why.items() if problem is None), None)
    if name is None:
        raise ClusterError(_none_fits(why, wanted=wanted))
    return name, _platform(nodes[name])


def _none_fits(why: dict[str, str | None], *, wanted: str | None) -> str:
    """The error when no node (or not the one asked for) can run the node probes, with every node's reason."""
    if wanted:
        return f"--node {wanted}: the node probes cannot run there: {why[wanted]}"
    reasons = "; ".join(f"{n}: {problem}" for n, problem in why.items()) or "the cluster has no nodes"
    return f"no node can run the node-proxy and kubelet probes ({reasons})"


def _proxied(cluster: ClusterClient, cfg: Config) -> set[str] | None:
    """The nodes a Running and Ready node-proxy pod runs on (None when the node proxy is disabled)."""
    if not cfg.node_proxy.enabled:
        return None
    selector = labels.selector(labels.node_proxy_pods(cfg))
    return {p["spec"]["nodeName"] for p in cluster.list("v1", "Pod", namespace=cfg.namespace, label_selector=selector)
            if p["spec"].get("nodeName") and _pod_ready(p)}


def _pod_ready(pod: Object) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _platform(node: Object) -> Platform:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return info.get("operatingSystem") or "linux", info.get("architecture") or "amd64"

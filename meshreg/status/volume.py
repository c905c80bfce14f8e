"""A registry volume's usage as the kubelet of the registry pod's node measures it (its stats summary, read through
the API server's node proxy), and, where there is no figure, exactly why: no pod, a pod that does not run, a
summary the API cannot give (with the API's reason), a pod not measured yet, or a volume type the kubelet does not
measure (hostPath: its stats summary has no entry for such volumes; `local` and CSI volumes are measured)."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config, Registry
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.status.report import VolumeUsage

# PersistentVolume source fields, the first one present names the volume's type.
_SOURCES = ("hostPath", "local", "csi", "nfs", "iscsi", "fc", "rbd", "cephfs", "glusterfs", "azureDisk", "azureFile",
            "awsElasticBlockStore", "gcePersistentDisk", "vsphereVolume", "portworxVolume", "flexVolume")


def usage(cluster: ClusterClient, cfg: Config, reg: Registry) -> VolumeUsage:
    claim = f"{reg.name}-data"
    try:
        pods = cluster.list("v1", "Pod", namespace=cfg.namespace,
                            label_selector=labels.selector(labels.registry_pods(cfg, reg)))
    except ClusterError as e:
        return unknown(f"the registry's pods cannot be listed: {e}")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and _node(p)]
    if not running:
        return unknown(_no_running(pods))
    pod, node = running[0]["metadata"]["name"], _node(running[0])
    try:
        summary = cluster.node_summary(node)
    except ClusterError as e:
        return unknown(f"the kubelet's stats of node {node} cannot be read through the API: {e}")
    return _measured(summary, pod=pod, node=node, claim=claim) or unknown(_unmeasured(cluster, cfg, claim, node))


def unknown(reason: str) -> VolumeUsage:
    return VolumeUsage(used_bytes=None, capacity_bytes=None, reason=reason)


def _node(pod: Object) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _no_running(pods: list[Object]) -> str:
    if not pods:
        return "no registry pod, so no kubelet measures the volume"
    pod = pods[0]
    phase = (pod.get("status") or {}).get("phase") or ("Pending" if _node(pod) else "not scheduled to a node")
    return f"pod {pod['metadata']['name']} is {phase}: its kubelet measures the volume only while it runs"


def _measured(summary: Object, *, pod: str, node: str, claim: str) -> VolumeUsage | None:
    """The claim's figures in the summary; None when the summary lists the pod without them; a VolumeUsage with the
    reason when it does not list the pod yet."""
    entry = next((e for e in summary.get("pods") or [] if (e.get("podRef") or {}).get("name") == pod), None)
    if entry is None:
        return unknown(f"the kubelet of node {node} does not list pod {pod} yet (it measures about every minute)")
    for volume in entry.get("volume") or []:
        if (volume.get("pvcRef") or {}).get("name") == claim:
            return VolumeUsage(used_bytes=volume.get("usedBytes"), capacity_bytes=volume.get("capacityBytes"))
    return None


def _unmeasured(cluster: ClusterClient, cfg: Config, claim: str, node: str) -> str:
    """Why the kubelet lists the pod but not its volume: the volume's type, found through the claim's volume."""
    try:
        pvc = cluster.get("v1", "PersistentVolumeClaim", claim, namespace=cfg.namespace) or {}
        name = (pvc.get("spec") or {}).get("volumeName")
        pv = cluster.get("v1", "PersistentVolume", name) if name else None
    except ClusterError as e:
        return f"the kubelet of node {node} reports no figure for claim {claim}, and its volume cannot be read: {e}"
    if pv is None:
        return f"the kubelet of node {node} reports no figure for claim {claim} (no PersistentVolume found for it)"
    kind = next((k for k in _SOURCES if k in (pv.get("spec") or {})), "unknown")
    if kind == "hostPath":
        return f"PersistentVolume {name} is a hostPath volume, which the kubelet does not measure"
    return f"the kubelet of node {node} reports no figure for PersistentVolume {name} (type {kind})"

"""What `status` (and doctor's `deployed` check) concludes from what it read: drift, meshed pods, health."""

from __future__ import annotations

from typing import Any

from meshreg.cluster.api import Object
from meshreg.cluster.storage import quantity
from meshreg.status.report import (
    DRIFTED,
    MISSING,
    PRESENT,
    NodeProxyState,
    ObjectState,
    PushProxyState,
    RegistryEntry,
    RuntimeConfigState,
    VolumeUsage,
    WaypointState,
)

SHOWN_FIELDS = 5  # drifted paths named per object
# Of a volume's capacity: from FULL on, pushes fail for want of space (distribution answers 500 UNKNOWN with errno 28
# in the detail; a failing upload writes until nothing is left); from NEARLY_FULL on, say so before they do.
FULL, NEARLY_FULL = 0.98, 0.90
FULL_VOLUME = "full"
NEARLY_FULL_VOLUME = "nearly full"
FREE_SPACE = "free space with meshreg gc (retention and deleteUntagged), or grow the volume"


def drifted(rendered: Any, live: Any) -> list[str]:
    """Dotted paths where the live object differs from what meshreg renders (rendered fields as a subset)."""
    if rendered in ({}, []) and live is None:  # an empty map or list the server did not keep
        return []
    if isinstance(rendered, dict):
        return _drifted_map(rendered, live)
    if isinstance(rendered, list):
        return _drifted_list(rendered, live)
    return [] if _same_scalar(rendered, live) else [""]


def _drifted_map(rendered: dict[str, Any], live: Any) -> list[str]:
    if not isinstance(live, dict):
        return [""]
    return [f".{k}{sub}" for k, v in rendered.items() for sub in drifted(v, live.get(k))]


def _drifted_list(rendered: list[Any], live: Any) -> list[str]:
    if not isinstance(live, list) or len(live) != len(rendered):
        return [""]
    return [f"[{i}]{sub}" for i, (r, v) in enumerate(zip(rendered, live, strict=True)) for sub in drifted(r, v)]


def _same_scalar(rendered: Any, live: Any) -> bool:
    if rendered == live or str(rendered) == str(live):
        return True
    # The server stores quantities in canonical form ("0.5" becomes "500m", "1024Mi" becomes "1Gi").
    try:
        return isinstance(rendered, str) and isinstance(live, str) and quantity(rendered) == quantity(live)
    except ValueError:
        return False


def object_state(rendered: Object, live: Object | None) -> ObjectState:
    """A rendered object as the cluster has it: missing, drifted (naming the first few fields), or present."""
    fields = drifted(rendered, live) if live is not None else []
    state = MISSING if live is None else (DRIFTED if fields else PRESENT)
    meta = rendered["metadata"]
    return ObjectState(kind=rendered["kind"], namespace=meta.get("namespace"), name=meta["name"], state=state,
                       fields=tuple(fields[:SHOWN_FIELDS]))


def meshed(entry: RegistryEntry) -> tuple[int, str]:
    """How many of a registry's pods are in the mesh, and how: with the sidecar, or in ambient mode captured by
    ztunnel."""
    if entry.in_ambient is not None:
        return entry.in_ambient, "captured by ztunnel"
    return entry.with_sidecar, "with the istio-proxy sidecar"


def registry_running(entry: RegistryEntry) -> bool:
    """Ready, with pods, every one of them in the mesh, and not left read-only by a gc Job."""
    return entry.ready and entry.pods > 0 and meshed(entry)[0] == entry.pods and \
        not (entry.gc is not None and entry.gc.left_read_only)


def registry_healthy(entry: RegistryEntry) -> bool:
    """Running, and room on its volume for pushes."""
    return registry_running(entry) and volume_fill(entry.volume) != FULL_VOLUME


def volume_fill(volume: VolumeUsage | None) -> str | None:
    """FULL_VOLUME, NEARLY_FULL_VOLUME, or None (room enough, or no figures)."""
    share = used_share(volume)
    if share is None or share < NEARLY_FULL:
        return None
    return FULL_VOLUME if share >= FULL else NEARLY_FULL_VOLUME


def used_share(volume: VolumeUsage | None) -> float | None:
    """Used bytes as a share of the capacity, where the kubelet gave both."""
    if volume is None or volume.used_bytes is None or not volume.capacity_bytes:
        return None
    return volume.used_bytes / volume.capacity_bytes


def healthy(*, objects: tuple[ObjectState, ...], registries: tuple[RegistryEntry, ...], node_proxy: NodeProxyState,
            runtime_config: RuntimeConfigState, push_proxies: tuple[PushProxyState, ...],
            waypoint: WaypointState | None) -> bool:
    """Every object present and as rendered, registry pods ready with a sidecar (in ambient mode: captured by
    ztunnel, and the waypoint programmed and ready), node proxy, runtime config and push proxies ready."""
    return (all(o.state == PRESENT for o in objects)
            and all(registry_healthy(r) for r in registries)
            and node_proxy_healthy(node_proxy)
            and runtime_config_healthy(runtime_config)
            and waypoint_healthy(waypoint)
            and all(p.ready for p in push_proxies))


def node_proxy_healthy(node_proxy: NodeProxyState) -> bool:
    """Ready on every node, or disabled."""
    return not node_proxy.enabled or node_proxy.ready


def runtime_config_healthy(runtime_config: RuntimeConfigState) -> bool:
    """Rolled out, or disabled."""
    return not runtime_config.enabled or bool(runtime_config.ready)


def waypoint_healthy(waypoint: WaypointState | None) -> bool:
    """Programmed by istiod and ready, or none (sidecar mode)."""
    return waypoint is None or (waypoint.programmed and waypoint.ready)

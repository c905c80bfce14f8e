"""`meshreg status`'s report as people read it, and as -o json and -o yaml print it (docs/output.md)."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.status import judge, nodeproxy
from meshreg.status.report import (
    GcState,
    Mtls,
    NodeProxyState,
    NodeRuntime,
    ObjectState,
    PushProxyState,
    RegistryEntry,
    RuntimeConfigState,
    StatusReport,
    VolumeUsage,
    WaypointState,
)

RUNTIME_CONFIG_SETTING = "spec.nodeProxy.runtimeConfig"
HIDDEN_ADDRESS_KEYS = ("help", "role", "default")  # published beside the addresses, not addresses themselves


def data(report: StatusReport) -> dict[str, Any]:
    """The `kind: StatusReport` document (docs/output.md); "registry" is the default registry's entry, for scripts
    that only ever have one."""
    return document("StatusReport", {
        "server": report.server, "healthy": report.healthy, "objects": [_object(o) for o in report.objects],
        "registries": [_registry(r) for r in report.registries], "registry": _registry(report.default_registry),
        "nodeProxy": _node_proxy(report.node_proxy), "runtimeConfig": _runtime_config(report.runtime_config),
        "pushProxies": [_push_proxy(p) for p in report.push_proxies],
        "waypoint": None if report.waypoint is None else _waypoint(report.waypoint)})


def _object(o: ObjectState) -> dict[str, Any]:
    return {"kind": o.kind, "namespace": o.namespace, "name": o.name, "state": o.state, "fields": list(o.fields)}


def _registry(r: RegistryEntry) -> dict[str, Any]:
    return {"name": r.name, "role": r.role, "default": r.default, "ready": r.ready, "replicas": r.replicas,
            "pods": r.pods, "withSidecar": r.with_sidecar, "inAmbient": r.in_ambient, "mtls": _mtls(r.mtls),
            "writers": list(r.writers), "endpoints": None if r.endpoints == -1 else r.endpoints,
            "addresses": r.addresses, "problems": list(r.problems), "storage": r.storage,
            "gc": None if r.gc is None else _gc(r.gc),
            "volume": _volume(r.volume) if r.storage == "volume" else None}


def _mtls(m: Mtls) -> dict[str, Any]:
    return {"effective": m.effective, "workload": m.workload, "namespace": m.namespace, "mesh": m.mesh}


def _gc(gc: GcState) -> dict[str, Any]:
    job = gc.last_job
    return {"deployed": gc.deployed, "schedule": gc.schedule, "lastSchedule": gc.last_schedule,
            "lastSuccess": gc.last_success, "lastJob": None if job is None else {
                "name": job.name, "state": job.state, "started": job.started, "completed": job.completed},
            **({"readOnly": gc.read_only} if gc.read_only else {})}


def _volume(v: VolumeUsage | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"usedBytes": v.used_bytes, "capacityBytes": v.capacity_bytes, "reason": v.reason}


def _node_proxy(p: NodeProxyState) -> dict[str, Any]:
    return {"enabled": p.enabled, "ready": p.ready, "nodes": p.nodes, "pods": [
        {"node": n.node, "pod": n.pod, "ready": n.ready, "since": n.since, "created": n.created,
         "restarts": n.restarts, "why": n.why} for n in p.pods]}


def node_proxy_lines(p: NodeProxyState) -> list[str]:
    """The node proxy's line, then one per pod worth saying something about (nodeproxy.notable)."""
    lines = ["node proxy: " + _node_proxy_text(p)]
    for pod in nodeproxy.notable(p.pods):
        state = f"ready since {pod.since}" if pod.ready else f"NOT ready since {pod.since or '(unknown)'}: {pod.why}"
        lines.append(f"  {pod.node}: {state} (pod {pod.pod} created {pod.created}, {pod.restarts} restarts)")
    return lines


def _runtime_config(rc: RuntimeConfigState) -> dict[str, Any]:
    return {"enabled": rc.enabled, "directories": dict(rc.directories), "ready": rc.ready, "nodes": rc.nodes,
            "runtimes": [_node_runtime(n) for n in rc.runtimes],
            "runtimesUnread": rc.unread}


def _node_runtime(n: NodeRuntime) -> dict[str, Any]:
    return {"node": n.node, "containerRuntimeVersion": n.container_runtime_version, "needed": n.needed,
            "setting": n.setting, "setUp": n.set_up, "k3s": n.k3s, "reason": n.reason}


def _push_proxy(p: PushProxyState) -> dict[str, Any]:
    return {"registry": p.registry, "namespace": p.namespace, "ready": p.ready, "replicas": p.replicas,
            "repositories": list(p.repositories), "port": p.port}


def _waypoint(w: WaypointState) -> dict[str, Any]:
    return {"name": w.name, "programmed": w.programmed, "message": w.message, "ready": w.ready,
            "replicas": w.replicas}


def _ready(ready: bool | None) -> str:
    return "ready" if ready else "NOT ready"


def text(report: StatusReport) -> str:
    """The human-readable form: each object, each registry, the node proxy, the waypoint, the runtime config, the
    push proxies, and the verdict."""
    lines = [f"cluster: {report.server}", *(_object_line(o) for o in report.objects)]
    for r in report.registries:
        lines += registry_lines(r, several=len(report.registries) > 1)
    lines += node_proxy_lines(report.node_proxy)
    if report.waypoint is not None:
        w = report.waypoint
        lines.append(f"waypoint {w.name}: {'programmed' if w.programmed else 'NOT programmed'} ({w.message}), "
                     f"{_ready(w.ready)} ({w.replicas})")
    lines += runtime_config_lines(report.runtime_config)
    lines += [_push_proxy_line(p) for p in report.push_proxies]
    lines.append("healthy" if report.healthy else "NOT healthy")
    return "\n".join(lines)


def _object_line(o: ObjectState) -> str:
    where = f"{o.namespace}/" if o.namespace else ""
    extra = f" ({', '.join(o.fields)})" if o.fields else ""
    return f"  {o.state:<8} {o.kind} {where}{o.name}{extra}"


def _node_proxy_text(p: NodeProxyState) -> str:
    return "disabled" if not p.enabled else f"{_ready(p.ready)} ({p.nodes})"


def _push_proxy_line(p: PushProxyState) -> str:
    return (f"push proxy ({p.registry}): {_ready(p.ready)} ({p.replicas}) in namespace {p.namespace}, writes "
            f"{', '.join(p.repositories)}; push with meshreg connect (local port {p.port} unless --port says "
            "otherwise)")


def registry_lines(r: RegistryEntry, *, several: bool) -> list[str]:
    """A registry's lines: its state and its pods in the mesh first, the rest indented when there are several."""
    pad = "  " if several else ""
    mtls = r.mtls
    return [
        f"{_registry_name(r, several=several)}: {_ready(r.ready)} ({r.replicas}), {_meshed(r)}",
        f"{pad}mTLS: {mtls.effective} (registry: {mtls.workload or 'none'}, namespace: "
        f"{mtls.namespace or 'none'}, mesh-wide: {mtls.mesh or 'none'})",
        f"{pad}in-cluster path: Service endpoints {_endpoints(r.endpoints)}",
        *(f"{pad}problem: {p}" for p in r.problems),
        f"{pad}writers: " + (", ".join(r.writers) or _nobody(r.role)),
        *_gc_lines(r, pad),
        f"{pad}published: " + _published(r.addresses),
    ]


def _registry_name(r: RegistryEntry, *, several: bool) -> str:
    return f"registry {r.name} ({r.role}{', default' if r.default else ''})" if several else "registry"


def _meshed(r: RegistryEntry) -> str:
    if r.in_ambient is not None:
        return f"{r.in_ambient} of {r.pods} pods captured by ztunnel"
    return f"{r.with_sidecar} of {r.pods} pods with the istio-proxy sidecar"


def _endpoints(n: int) -> str:
    return "unknown (cannot list EndpointSlices)" if n == -1 else f"{n} ready"


def _nobody(role: str) -> str:
    return "none (nobody can push" + ("; run meshreg policy grant NS/SA)" if role == "images" else ")")


def _published(addresses: dict[str, Any] | None) -> str:
    if not addresses:
        return "missing"
    return ", ".join(f"{k}={v}" for k, v in addresses.items() if k not in HIDDEN_ADDRESS_KEYS)


def _size(n: int) -> str:
    """Bytes in the largest binary unit that keeps the figure at 1 or more (up to TiB)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _gc_lines(r: RegistryEntry, pad: str) -> list[str]:
    lines = []
    if r.gc is not None:
        lines.append(f"{pad}gc: " + (f"{r.gc.schedule}; {_last_run(r.gc)}" if r.gc.deployed else "CronJob missing"))
        if r.gc.read_only:
            lines.append(f"{pad}READ-ONLY: {r.gc.read_only}" if r.gc.left_read_only else
                         f"{pad}read-only {r.gc.read_only}")
    if r.storage == "volume":
        lines.append(f"{pad}volume: " + _volume_text(r.volume))
    return lines


def _last_run(gc: GcState) -> str:
    job = gc.last_job
    if job is None:
        return "never run"
    return f"last Job {job.name} {job.state}" + (f" ({job.completed})" if job.completed else "")


def _volume_text(v: VolumeUsage | None) -> str:
    if v is None or v.used_bytes is None or v.capacity_bytes is None:
        return f"usage unknown: {v.reason if v and v.reason else 'the kubelet gave no figure'}"
    return f"{_size(v.used_bytes)} used of {_size(v.capacity_bytes)}" + _fill_text(v)


def _fill_text(v: VolumeUsage) -> str:
    """What a full or nearly full volume means, after its figures."""
    fill, share = judge.volume_fill(v), judge.used_share(v) or 0.0
    if fill == judge.FULL_VOLUME:
        return (f" ({share:.0%}): FULL: pushes fail (the registry answers HTTP 500, `no space left on device` in its "
                f"log); what is stored still pulls; {judge.FREE_SPACE}")
    if fill == judge.NEARLY_FULL_VOLUME:
        return f" ({share:.0%}): nearly full: pushes fail once it is full; {judge.FREE_SPACE}"
    return ""


def runtime_config_lines(rc: RuntimeConfigState) -> list[str]:
    """The DaemonSet, then each node that needs the runtime config and does not have it."""
    where = ", ".join(f"{runtime} {directory}" for runtime, directory in rc.directories.items())
    head = (f"runtime config: {_ready(rc.ready)} ({rc.nodes}), writing {where}" if rc.enabled
            else "runtime config: disabled")
    if rc.unread is not None:
        return [head, f"  node runtimes: unknown ({rc.unread})"]
    return [head, *(line for n in rc.runtimes if (line := _node_runtime_line(n)))]


def _node_runtime_line(n: NodeRuntime) -> str | None:
    if n.needed is None:
        return f"  node {n.node}: {n.container_runtime_version or 'no runtime reported'}: {n.reason}"
    if n.needed and not n.set_up:
        fix = "registries.yaml (k3s/RKE2)" if n.k3s else f"{RUNTIME_CONFIG_SETTING}.{n.setting}"
        return f"  node {n.node}: {n.container_runtime_version} needs it ({fix}): {n.reason}"
    return None

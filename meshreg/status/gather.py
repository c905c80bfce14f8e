"""What `status` reads from the cluster, part by part, each as its report dataclass (meshreg.status.report)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from meshreg import runtimes
from meshreg.cluster import gc as gcs
from meshreg.cluster import selectors
from meshreg.cluster.ambient import GATEWAY_API, waypoints
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.enforcement import captured, has_sidecar
from meshreg.cluster.runtimeconfig import WORKLOAD as RUNTIME_CONFIG
from meshreg.cluster.wait import crash_causes, pod_causes, rollout
from meshreg.config import Config, PushProxy, Registry
from meshreg.errors import ClusterError
from meshreg.render import gc as gc_objects
from meshreg.render import hosting, labels
from meshreg.status import nodeproxy
from meshreg.status import volume as volumes
from meshreg.status.report import (
    GcJob,
    GcState,
    Mtls,
    NodeProxyState,
    NodeRuntime,
    PushProxyState,
    RegistryEntry,
    RuntimeConfigState,
    WaypointState,
)

HOSTING = (hosting.NAMESPACE, "local-registry-hosting")


def _at(obj: Any, *keys: str) -> Any:
    """obj[key][key]..., None where a step is missing or null."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def registry(cluster: ClusterClient, cfg: Config, reg: Registry, *, addresses: dict[str, Any] | None) -> RegistryEntry:
    """A registry's rollout, its pods in the mesh (and why it is not ready), mTLS, writers, endpoints, storage and gc;
    `addresses`: what is published for it."""
    deployment = cluster.get("apps/v1", "Deployment", reg.name, namespace=cfg.namespace)
    done, replicas = rollout(deployment)
    pods = _pods(cluster, cfg.namespace, deployment)
    # Why it is not ready, from the pods (and the last log lines of crashing containers): read only when needed.
    problems = () if done else _problems(cluster, pods)
    return RegistryEntry(
        name=reg.name, role=reg.role, default=reg.default, ready=done, replicas=replicas, pods=len(pods),
        with_sidecar=sum(1 for p in pods if has_sidecar(p)), in_ambient=_in_ambient(cfg, pods),
        mtls=mtls(cluster, cfg, reg.name), writers=tuple(w.service_account for w in cfg.writers_of(reg)),
        endpoints=ready_endpoints(cluster, cfg, reg.name), addresses=addresses, problems=problems,
        storage="s3" if reg.storage.s3 else "volume", gc=gc(cluster, cfg, reg, deployment) if reg.gc else None,
        volume=None if reg.storage.s3 else volumes.usage(cluster, cfg, reg))


def _pods(cluster: ClusterClient, namespace: str, workload: Object | None) -> list[Object]:
    selector = selectors.of(workload)
    return cluster.list("v1", "Pod", namespace=namespace, label_selector=selector) if selector else []


def _problems(cluster: ClusterClient, pods: list[Object]) -> tuple[str, ...]:
    """What the pods say is wrong, each cause once."""
    return tuple(dict.fromkeys(c for p in pods for c in pod_causes(p) + crash_causes(cluster, p)))


def _in_ambient(cfg: Config, pods: list[Object]) -> int | None:
    """How many pods ztunnel captures, in ambient mode (None in sidecar mode)."""
    return sum(1 for p in pods if captured(p)) if cfg.mesh == "ambient" else None


def gc(cluster: ClusterClient, cfg: Config, reg: Registry, deployment: Object | None = None) -> GcState:
    """The gc CronJob's last run, and whether a gc Job has the registry read-only (or left it so)."""
    selector = labels.selector({labels.REGISTRY: reg.name, labels.COMPONENT: "gc"})
    found = gcs.last_run(cluster=cluster, namespace=cfg.namespace, cron_name=gc_objects.gc_name(reg),
                         selector=selector)
    job = found.get("lastJob")
    read_only, left = None, False
    if gcs.read_only(deployment):
        busy = gcs.running(cluster=cluster, namespace=cfg.namespace, cron_name=gc_objects.gc_name(reg),
                           selector=selector)
        left = not busy
        read_only = (f"while gc Job {busy[0]} collects garbage" if busy else
                     "left so by a gc Job stopped before it could undo it: writes are refused; meshreg gc makes it "
                     "writable again first")
    return GcState(deployed=found["deployed"], schedule=found.get("schedule"),
                   last_schedule=found.get("lastSchedule"), last_success=found.get("lastSuccess"),
                   last_job=GcJob(name=job["name"], state=job["state"], started=job["started"],
                                  completed=job["completed"]) if job else None,
                   read_only=read_only, left_read_only=left)


def ready_endpoints(cluster: ClusterClient, cfg: Config, service: str) -> int:
    """Ready endpoints behind a registry's Service: the hostFromClusterNetwork path, as far as the API shows it
    (-1: EndpointSlices cannot be listed)."""
    try:
        slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", namespace=cfg.namespace,
                              label_selector=f"kubernetes.io/service-name={service}")
    except ClusterError:
        return -1
    return sum(1 for s in slices for e in (s.get("endpoints") or []) if (e.get("conditions") or {}).get("ready", True))


def mtls(cluster: ClusterClient, cfg: Config, name: str) -> Mtls:
    """The registry's PeerAuthentication mode, and the namespace- and mesh-wide ones (Istio's default: PERMISSIVE)."""
    workload = cluster.get("security.istio.io/v1", "PeerAuthentication", name, namespace=cfg.namespace)
    namespace, mesh = _wide_mode(cluster, cfg.namespace), _wide_mode(cluster, "istio-system")
    chain = [_mode(workload) if workload else None, namespace, mesh]
    effective = next((m for m in chain if m and m != "UNSET"), "PERMISSIVE")
    return Mtls(effective=effective, workload=chain[0], namespace=namespace, mesh=mesh)


def _mode(peer_authentication: Object | None) -> str:
    return _at(peer_authentication, "spec", "mtls", "mode") or "UNSET"


def _wide_mode(cluster: ClusterClient, namespace: str) -> str | None:
    """The mode of the PeerAuthentication without a selector in `namespace` (None: there is none)."""
    try:
        found = [p for p in cluster.list("security.istio.io/v1", "PeerAuthentication", namespace=namespace)
                 if not _at(p, "spec", "selector")]
    except ClusterError:  # e.g. no read access to istio-system: say so rather than fail the whole status
        return "unknown"
    return _mode(found[0]) if found else None


def node_proxy(cluster: ClusterClient, cfg: Config) -> NodeProxyState:
    if not cfg.node_proxy.enabled:
        return NodeProxyState(enabled=False, ready=True, nodes="disabled")
    daemonset = cluster.get("apps/v1", "DaemonSet", "node-proxy", namespace=cfg.namespace)
    done, text = rollout(daemonset)
    pods = sorted((nodeproxy.pod_state(p) for p in _pods(cluster, cfg.namespace, daemonset)),
                  key=lambda p: (p.node, p.created or ""))
    return NodeProxyState(enabled=True, ready=done, nodes=text, pods=tuple(pods))


def push_proxy(cluster: ClusterClient, registry: str, proxy: PushProxy) -> PushProxyState:
    """The rollout of a registry's push proxy."""
    done, text = rollout(cluster.get("apps/v1", "Deployment", "push-proxy", namespace=proxy.namespace))
    return PushProxyState(registry=registry, namespace=proxy.namespace, ready=done, replicas=text,
                          repositories=tuple(proxy.repositories), port=proxy.port)


def published(cluster: ClusterClient, cfg: Config) -> dict[str, dict[str, Any] | None]:
    """Registry name -> its live published addresses: the KEP-1755 map for the default, the index for all."""
    out: dict[str, dict[str, Any] | None] = {}
    publish = cfg.local_registry_hosting.publish  # False: local-registry-hosting is another instance's
    if len(cfg.registries) > 1 or not publish:
        index = cluster.get("v1", "ConfigMap", hosting.index_name(cfg), namespace=HOSTING[0])
        for name, text in (_at(index, "data") or {}).items():
            out[name] = _parse(text, f"{name} in {HOSTING[0]}/{hosting.index_name(cfg)}")
    if publish:
        text = _at(cluster.get("v1", "ConfigMap", HOSTING[1], namespace=HOSTING[0]), "data", "localRegistryHosting.v1")
        out[cfg.registry.name] = _parse(text, "localRegistryHosting.v1") if text else None
    return out


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"error": f"{what} is not valid YAML"}
    return data if isinstance(data, dict) else {"error": f"{what} is not a mapping"}


def runtime_config(cluster: ClusterClient, cfg: Config) -> RuntimeConfigState:
    """Whether the runtime config is enabled and rolled out, and each node's runtime with meshreg's judgement of it."""
    rc = cfg.node_proxy.runtime_config
    ready, nodes = rollout(cluster.get(*RUNTIME_CONFIG, namespace=cfg.namespace)) if rc.enabled else (None, None)
    state = RuntimeConfigState(enabled=rc.enabled, directories=dict(rc.directories), ready=ready, nodes=nodes,
                               runtimes=())
    try:
        found = cluster.list("v1", "Node")
    except ClusterError as e:  # nodes are cluster-scoped: a namespaced user may not list them
        return replace(state, unread=str(e))
    covered = set(state.directories)
    return replace(state, runtimes=tuple(_node_runtime(n, covered=covered) for n in found))


def _node_runtime(node: Object, *, covered: set[str]) -> NodeRuntime:
    reported = _at(node, "status", "nodeInfo", "containerRuntimeVersion") or ""
    verdict = runtimes.judge(reported)
    return NodeRuntime(node=node["metadata"]["name"], container_runtime_version=reported, needed=verdict.needed,
                       setting=verdict.setting, set_up=verdict.setting in covered, k3s=verdict.k3s,
                       reason=verdict.reason)


def waypoint(cluster: ClusterClient, *, namespace: str, manifests: list[Object]) -> WaypointState | None:
    """The waypoint's state (None for a sidecar render): programmed by istiod, and rolled out."""
    found = waypoints(manifests)
    if not found:
        return None
    name = found[0]["metadata"]["name"]
    live = cluster.get(GATEWAY_API, "Gateway", name, namespace=namespace)
    conditions = {c.get("type"): c for c in _at(live, "status", "conditions") or []}
    programmed = conditions.get("Programmed") or {}
    done, text = rollout(cluster.get("apps/v1", "Deployment", name, namespace=namespace))
    return WaypointState(name=name, programmed=programmed.get("status") == "True",
                         message=programmed.get("message") or programmed.get("reason") or "not reported yet",
                         ready=done, replicas=text)

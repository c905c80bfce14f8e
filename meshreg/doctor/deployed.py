"""Check 10, after `up`: every object present and as rendered (the `status` report), pods ready with their
sidecar, and the node proxy's Gateway has a server on each registry port, reached through its Service."""

from __future__ import annotations

from typing import Any

from meshreg import status as statuses
from meshreg.cluster import live as lives
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.wait import diagnose
from meshreg.config import Config
from meshreg.doctor import Result, fail, ok, some, warn
from meshreg.doctor.facts import Facts
from meshreg.render import labels
from meshreg.status import judge
from meshreg.status.report import MISSING, PRESENT, NodeProxyState, ObjectState, RegistryEntry

CHECK = "deployed"
FIX_GATEWAY = "meshreg up re-applies the Gateway and Service"


def check(facts: Facts) -> list[Result]:
    cfg = facts.cfg
    report = statuses.report(facts.cluster, cfg, manifests=facts.manifests, live=facts.live())
    objects = report.objects
    # kube-public is shared with other instances: only the instance's own namespace says whether it is deployed
    if all(o.state == MISSING for o in objects if o.namespace == cfg.namespace):
        return [warn(CHECK, f"meshreg ({cfg.name}) is not deployed on {facts.cluster.server}",
                     "meshreg up, then meshreg doctor and meshreg verify")]
    out = [_objects(objects)]
    for reg in report.registries:
        out.append(_registry(facts, reg))
        out += _volume(reg)
    if cfg.node_proxy.enabled:
        out += _node_proxy(facts, report.node_proxy)
    return out


def _name(o: ObjectState) -> str:
    return f"{o.kind} {o.namespace + '/' if o.namespace else ''}{o.name}"


def _objects(objects: tuple[ObjectState, ...]) -> Result:
    bad = [o for o in objects if o.state != PRESENT]
    if not bad:
        return ok(CHECK, f"all {len(objects)} objects present and as rendered")
    text = some(f"{_name(o)} {o.state}" + (f" ({', '.join(o.fields)})" if o.fields else "") for o in bad)
    return fail(CHECK, text, "meshreg up puts them back as rendered (meshreg status lists the fields)")


def _registry(facts: Facts, reg: RegistryEntry) -> Result:
    name, (inside, how) = f"registry {reg.name}", judge.meshed(reg)
    if judge.registry_running(reg):
        return ok(CHECK, f"{name} ready ({reg.replicas}), every pod {how}")
    causes = diagnose(cluster=facts.cluster, namespace=facts.cfg.namespace,
                      workloads=[("apps/v1", "Deployment", reg.name)])
    short = how.replace("the istio-proxy sidecar", "the sidecar")
    return fail(CHECK, f"{name} not ready ({reg.replicas}, {inside} of {reg.pods} pods {short})"
                       + (f": {'; '.join(causes)}" if causes else ""),
                f"kubectl -n {facts.cfg.namespace} describe deployment {reg.name}")


def _volume(reg: RegistryEntry) -> list[Result]:
    """The registry's volume: room for pushes, nearly full, or full (nothing where the kubelet gives no figures)."""
    share, v = judge.used_share(reg.volume), reg.volume
    if share is None or v is None or v.used_bytes is None or v.capacity_bytes is None:
        return []
    text = f"registry {reg.name} volume: {_mib(v.used_bytes)} used of {_mib(v.capacity_bytes)} ({share:.0%})"
    fill = judge.volume_fill(v)
    if fill == judge.FULL_VOLUME:
        return [fail(CHECK, f"{text}: full, pushes fail (HTTP 500 from the registry)", judge.FREE_SPACE)]
    if fill == judge.NEARLY_FULL_VOLUME:
        return [warn(CHECK, f"{text}: nearly full", judge.FREE_SPACE)]
    return [ok(CHECK, text)]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.1f} GiB"


def _node_proxy(facts: Facts, proxy: NodeProxyState) -> list[Result]:
    cluster = lives.Snapshot(facts.cluster, facts.live())
    return [_node_proxy_rollout(cluster, facts.cfg, proxy), _gateway(cluster, facts.cfg)]


def _node_proxy_rollout(cluster: ClusterClient, cfg: Config, proxy: NodeProxyState) -> Result:
    if proxy.ready:
        return ok(CHECK, f"node proxy ready ({proxy.nodes})")
    causes = diagnose(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "DaemonSet", "node-proxy")])
    return fail(CHECK, f"node proxy not ready ({proxy.nodes})" + (f": {'; '.join(causes)}" if causes else ""),
                f"kubectl -n {cfg.namespace} describe daemonset node-proxy")


def _gateway(cluster: ClusterClient, cfg: Config) -> Result:
    """The node proxy's Gateway has a server on each registry port, reached through its Service, and pods."""
    gateway = cluster.get("networking.istio.io/v1", "Gateway", "node-proxy", namespace=cfg.namespace)
    service = cluster.get("v1", "Service", "node-proxy", namespace=cfg.namespace)
    served = {(s.get("port") or {}).get("number") for s in _spec_list(gateway, "servers")}
    targets = {p.get("port"): p.get("targetPort") for p in _spec_list(service, "ports")}
    selector = labels.selector(labels.node_proxy_pods(cfg))
    pods = cluster.list("v1", "Pod", namespace=cfg.namespace, label_selector=selector)
    wrong = [r.port for r in cfg.registries if r.port not in served or targets.get(r.port) != r.port]
    if wrong:
        return fail(CHECK, f"Gateway node-proxy has no server reached through Service node-proxy on port(s) "
                           f"{', '.join(map(str, wrong))}", FIX_GATEWAY)
    if not pods:
        return fail(CHECK, "Gateway node-proxy selects no pod", FIX_GATEWAY)
    return ok(CHECK, f"Gateway node-proxy serves port(s) {', '.join(str(r.port) for r in cfg.registries)} "
                     f"on {len(pods)} node-proxy pod(s)")


def _spec_list(obj: Object | None, key: str) -> list[dict[str, Any]]:
    """obj.spec[key], [] where the object, its spec or the list is missing."""
    return ((obj or {}).get("spec") or {}).get(key) or []

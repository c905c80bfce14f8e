"""`meshreg status`: what is deployed, whether it matches the config and is ready: read (gather), judged (judge)."""

from __future__ import annotations

from meshreg.cluster import live as lives
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.apply import ordered
from meshreg.config import Config
from meshreg.status import gather, judge
from meshreg.status.report import StatusReport

__all__ = ["StatusReport", "report"]


def report(cluster: ClusterClient, cfg: Config, *, manifests: list[Object],
           live: lives.Live | None = None) -> StatusReport:
    """Everything `status` shows. `live`: what lives.read found, if read already; every object is read once,
    whichever part of the report looks at it."""
    objs = ordered(manifests)
    live = live or lives.read(manifests=objs, cluster=cluster)
    snapshot = lives.Snapshot(cluster, live)
    objects = tuple(judge.object_state(o, live.of(o)) for o in objs)
    published = gather.published(snapshot, cfg)
    registries = tuple(gather.registry(snapshot, cfg, reg, addresses=published.get(reg.name))
                       for reg in cfg.registries)
    node_proxy = gather.node_proxy(snapshot, cfg)
    runtime_config = gather.runtime_config(snapshot, cfg)
    push_proxies = tuple(gather.push_proxy(snapshot, reg.name, reg.push_proxy) for reg in cfg.registries
                         if reg.push_proxy)
    waypoint = gather.waypoint(snapshot, namespace=cfg.namespace, manifests=manifests)
    return StatusReport(server=snapshot.server, objects=objects, registries=registries, node_proxy=node_proxy,
                        runtime_config=runtime_config, push_proxies=push_proxies, waypoint=waypoint,
                        healthy=judge.healthy(objects=objects, registries=registries, node_proxy=node_proxy,
                                              runtime_config=runtime_config, push_proxies=push_proxies,
                                              waypoint=waypoint))

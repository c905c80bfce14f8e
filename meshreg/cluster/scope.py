"""Where `up` prunes, and for what: {namespace: [(apiVersion, kind)]}.

The registry's namespace and every push-proxy namespace (rendered, or labelled for this instance: a push proxy that
was disabled or moved left its objects there) for every kind meshreg may have rendered; kube-public for the
published addresses only; the ingress gateway's namespace (the configured one, and the one the previous `up`
recorded, so removing spec.ingress prunes it too) for the ingress kinds only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meshreg.cluster import apply as applying
from meshreg.cluster import ingress, parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.live import Scope
from meshreg.config import Config
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.render.hosting import NAMESPACE as HOSTING_NAMESPACE


def rendered(cfg: Config, objects: list[Object], kinds: Iterable[tuple[str, str]] = applying.PRUNABLE, *,
             also: Iterable[str] = ()) -> Scope:
    """The scope the render implies, with `also` (more namespaces for every kind)."""
    namespaces = applying.namespaces_of(objects) | set(also)
    scope = {ns: list(kinds) for ns in [cfg.namespace, *sorted(namespaces - {cfg.namespace})]}
    scope[HOSTING_NAMESPACE] = list(applying.PUBLISHED)
    return scope


def with_gateways(scope: Scope, namespaces: Iterable[str]) -> Scope:
    """`scope` with the ingress kinds added in each gateway namespace."""
    for ns in sorted(set(namespaces)):
        scope[ns] = list(dict.fromkeys(scope.get(ns, []) + ingress.KINDS))
    return scope


def offline(cfg: Config, objects: list[Object], kinds: Iterable[tuple[str, str]] = applying.PRUNABLE) -> Scope:
    """The scope as far as the config tells, for `kinds` (doctor's permission check)."""
    return with_gateways(rendered(cfg, objects, kinds), [cfg.ingress.gateway.namespace] if cfg.ingress else [])


def live(cluster: ClusterClient, cfg: Config, objects: list[Object]) -> Scope:
    """The scope `up` prunes: the config's, the push-proxy namespaces labelled for this instance and the gateway
    namespace the previous `up` recorded. Optional kinds the server does not serve are left out."""
    selector = f"{labels.instance_selector(cfg)},{labels.COMPONENT}=push-proxy"

    def labelled() -> list[str]:
        try:
            return [n["metadata"]["name"] for n in cluster.list("v1", "Namespace", label_selector=selector)]
        except ClusterError:  # no cluster-wide read of namespaces: the rendered ones are all we can prune
            return []

    reads: list[Callable[[], Any]] = [
        labelled, lambda: applying.served(cluster, applying.PRUNABLE),
        lambda: ingress.recorded_namespace(cluster, cfg.namespace)]
    also, kinds, gateways = parallel.values(lambda read: read(), reads)
    scope = rendered(cfg, objects, kinds, also=also)
    return with_gateways(scope, gateways + ([cfg.ingress.gateway.namespace] if cfg.ingress else []))

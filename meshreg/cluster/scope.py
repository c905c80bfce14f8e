"""Where `up` prunes, and for what: {namespace: [(apiVersion, kind)]}.

The registry's namespace and every push-proxy namespace (rendered, or labelled for this instance: a push proxy that
was disabled or moved left its objects there) for every kind meshreg may have rendered; kube-public for the
published addresses only; the ingress gateway's namespace (the configured one, and the one the previous `up`
recorded, so removing spec.ingress prunes it too) for the ingress kinds only; and every namespace and kind the
instance's ApplySet parent records (where the previous `up` left members). Only what carries this instance's
identity is ever pruned there (cluster/ownership.py): the scope says where to look, never whose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meshreg.cluster import apply as applying
from meshreg.cluster import ingress, parallel
from meshreg.cluster import live as lives
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.live import Live, Scope
from meshreg.config import Config
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.render.applyset import group_kind
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


def _known_kinds() -> dict[str, tuple[str, str]]:
    """Group-kind (as the parent records it) -> (apiVersion, kind), for every kind prune may look at."""
    kinds = [*applying.PRUNABLE, *applying.PUBLISHED, *ingress.KINDS]
    return {group_kind({"apiVersion": av, "kind": kind}): (av, kind) for av, kind in kinds}


def recorded(parent: Object | None, *, served: list[tuple[str, str]]) -> Scope:
    """Where the live ApplySet parent says members are: its own namespace and the additional ones, each for the
    recorded kinds prune handles and the server serves (a kind it does not serve holds nothing)."""
    if parent is None:
        return {}
    annotations = parent["metadata"].get("annotations") or {}
    known = _known_kinds()
    kinds = [known[gk] for gk in _listed(annotations, labels.APPLYSET_KINDS) if gk in known and known[gk] in served]
    spaces = [parent["metadata"]["namespace"], *_listed(annotations, labels.APPLYSET_NAMESPACES)]
    # The parent records kinds for all its namespaces at once; in the hosting namespace meshreg only ever applies
    # the published ConfigMaps, so every other kind there would be a LIST on each `up` that can find nothing.
    out = {ns: _kinds_in(ns, kinds) for ns in spaces}
    return {ns: found for ns, found in out.items() if found}


def _kinds_in(namespace: str, kinds: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The recorded kinds that can be in `namespace`: in the hosting namespace only the published ConfigMaps."""
    return [k for k in kinds if namespace != HOSTING_NAMESPACE or k in applying.PUBLISHED]


def _listed(annotations: dict[str, str], key: str) -> list[str]:
    """A comma-separated annotation of the parent (group-kinds, namespaces) as a list, empty when absent."""
    return [x for x in (annotations.get(key) or "").split(",") if x]


def live_and_scope(cluster: ClusterClient, cfg: Config, objects: list[Object]) -> tuple[Scope, Live]:
    """The prune scope and what exists in it: one read of everything the config implies, then, only when the live
    ApplySet parent records members elsewhere (the config changed since the last `up`), a read of those places."""
    scope = live(cluster, cfg, objects)
    found = lives.read(manifests=objects, cluster=cluster, scope=scope)
    extra = _unread(scope, found, cfg=cfg, objects=objects)
    if extra:
        more = lives.read(manifests=[], cluster=cluster, scope=extra)
        found.objects.update(more.objects)
        found.listed |= more.listed
        for ns, kinds in extra.items():
            scope[ns] = scope.get(ns, []) + kinds
    return scope, found


def _unread(scope: Scope, found: Live, *, cfg: Config, objects: list[Object]) -> Scope:
    """What the live parent records that `scope` does not cover yet."""
    rendered = next((o for o in objects if labels.is_parent(o)), None)
    parent = found.of(rendered) if rendered else None
    served = [*scope.get(cfg.namespace, []), *applying.PUBLISHED, *ingress.KINDS]  # what discovery said is served
    extra = {ns: [k for k in kinds if k not in scope.get(ns, [])]
             for ns, kinds in recorded(parent, served=served).items()}
    return {ns: kinds for ns, kinds in extra.items() if kinds}

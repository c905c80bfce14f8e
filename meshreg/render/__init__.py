"""Renders every object meshreg deploys from a validated Config: pure, no I/O, deterministic.

A feature's module (ambient, gc, ingress, mirror, push proxy, runtime config, object storage) is imported only when
the config uses that feature, so a render pays only for what it renders (tests/test_imports.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Callable

from meshreg.config import Config, Registry
from meshreg.objects import Object
from meshreg.render import applyset, audit, hosting, nodeproxy, policies, registry
from meshreg.render.labels import is_ambient

__all__ = ["notices", "render"]


def render(cfg: Config) -> list[Object]:
    """Every manifest, in the order they can be applied (reverse it to delete); last, the instance's ApplySet
    parent, which names every other object as a member (`up` writes it before them: cluster/apply.py)."""
    regs = sorted(cfg.registries, key=lambda r: (not r.default, r.name))  # the default first, then by name
    members = [*_foundations(cfg, regs), *_workloads(cfg, regs), *_policies(cfg, regs), *_routes(cfg, regs),
               *_extras(cfg, regs), *_published(cfg)]
    return [*members, applyset.parent(cfg, members)]


def _each(make: Callable[[Config, Registry], Object], cfg: Config, regs: list[Registry]) -> list[Object]:
    return [make(cfg, reg) for reg in regs]


def _foundations(cfg: Config, regs: list[Registry]) -> list[Object]:
    """The namespace, the ServiceAccounts, each registry's config and volume."""
    np = cfg.node_proxy.enabled
    return [
        registry.namespace(cfg),
        *[registry.service_account(cfg, reg.name) for reg in regs],
        *([registry.service_account(cfg, nodeproxy.NAME)] if np else []),
        *_each(registry.config_map, cfg, regs),
        *[registry.persistent_volume_claim(cfg, reg) for reg in regs if not reg.storage.s3],
    ]


def _workloads(cfg: Config, regs: list[Registry]) -> list[Object]:
    """The Services, then the pods behind them: registries, node proxy, runtime config."""
    np = cfg.node_proxy.enabled
    return [
        *_each(registry.service, cfg, regs),
        *_mirror_services(cfg, regs),
        *([nodeproxy.service(cfg)] if np else []),
        *_each(registry.deployment, cfg, regs),
        *([nodeproxy.daemon_set(cfg)] if np else []),
        *_runtime_config(cfg),
    ]


def _mirror_services(cfg: Config, regs: list[Registry]) -> list[Object]:
    mirrors = [reg for reg in regs if reg.mirror]
    if not mirrors:
        return []
    from meshreg.render import mirror

    return [mirror.service(cfg, reg) for reg in mirrors]


def _runtime_config(cfg: Config) -> list[Object]:
    if not cfg.node_proxy.runtime_config.enabled:
        return []
    from meshreg.render import runtimeconfig

    return runtimeconfig.objects(cfg)


def _policies(cfg: Config, regs: list[Registry]) -> list[Object]:
    """mTLS and the registries' authorization policies, then the node proxy's policy, Gateway and route."""
    return [
        *_each(registry.peer_authentication, cfg, regs),
        *[p for reg in regs for p in policies.registry_policies(cfg, reg)],
        *_waypoint_policies(cfg, regs),
        *([nodeproxy.allow_reads(cfg), nodeproxy.gateway(cfg), nodeproxy.virtual_service(cfg)]
          if cfg.node_proxy.enabled else []),
    ]


def _waypoint_policies(cfg: Config, regs: list[Registry]) -> list[Object]:
    if not is_ambient(cfg):
        return []
    from meshreg.render import ambient

    return _each(ambient.allow_waypoint, cfg, regs)


def _routes(cfg: Config, regs: list[Registry]) -> list[Object]:
    """Each mirror's way to its upstream, the ambient waypoint, the push proxies, the ingress, the audit logs."""
    return [*_mirror_routes(cfg, regs), *_waypoint(cfg), *_push_proxies(cfg, regs), *_ingress(cfg),
            *audit.objects(cfg)]


def _mirror_routes(cfg: Config, regs: list[Registry]) -> list[Object]:
    mirrors = [reg for reg in regs if reg.mirror]
    if not mirrors:
        return []
    from meshreg.render import mirror

    return [o for reg in mirrors for o in mirror.objects(cfg, reg)]


def _waypoint(cfg: Config) -> list[Object]:
    if not is_ambient(cfg):
        return []
    from meshreg.render import ambient

    return [ambient.waypoint(cfg)]


def _push_proxies(cfg: Config, regs: list[Registry]) -> list[Object]:
    proxied = [reg for reg in regs if reg.push_proxy]
    if not proxied:
        return []
    from meshreg.render import pushproxy

    return [o for reg in proxied for o in pushproxy.objects(cfg, reg)]


def _ingress(cfg: Config) -> list[Object]:
    if not cfg.ingress:
        return []
    from meshreg.render import ingress

    return ingress.objects(cfg)


def _extras(cfg: Config, regs: list[Registry]) -> list[Object]:
    """Disruption budgets for several replicas, ServiceEntries for object storage outside the cluster, gc."""
    return [
        *[registry.disruption_budget(cfg, reg) for reg in regs if reg.replicas > 1],
        *[registry.storage_entry(cfg, reg) for reg in regs if reg.storage.s3 and not reg.storage.s3.in_cluster],
        *_gc(cfg, regs),
    ]


def _gc(cfg: Config, regs: list[Registry]) -> list[Object]:
    collected = [reg for reg in regs if reg.gc]
    if not collected:
        return []
    from meshreg.render import gc

    return [o for reg in collected for o in gc.objects(cfg, reg)]


def _published(cfg: Config) -> list[Object]:
    """Where the registries are published: the cluster's local-registry-hosting, and this instance's index."""
    publish = cfg.local_registry_hosting.publish  # False: another instance publishes the cluster's one
    several = len(cfg.registries) > 1
    return [
        *([hosting.config_map(cfg)] if publish else []),
        *([hosting.index_config_map(cfg)] if several or not publish else []),
    ]


def notices(cfg: Config, *, writers: bool = True) -> list[str]:
    """Hints for a person reading the render on a terminal (never part of the manifests); `writers=False`
    leaves out the "no writers" hint for commands that already print the writers."""
    out = _runtime_config_notices(cfg)
    for reg in cfg.registries:
        label = "" if len(cfg.registries) == 1 else f"registry {reg.name}: "
        if writers and reg.role == "images" and not reg.writers:
            out.append(f"{label}no writers: nobody can push. Grant one with `meshreg policy grant NS/SA` "
                       "(e.g. meshreg policy grant builds/kaniko), then render again.")
        if cfg.node_proxy.enabled and "*" not in reg.readers:
            out.append(f"{label}readers are restricted, but the node proxy serves reads to anything on a node "
                       "(and to pods that can reach its pod IP): keep confidential images in a separate registry.")
    return out + _ambient_notices(cfg) + _ingress_notices(cfg) + audit.notices(cfg)


def _runtime_config_notices(cfg: Config) -> list[str]:
    if not cfg.node_proxy.runtime_config.enabled:
        return []
    from meshreg.render import runtimeconfig

    return runtimeconfig.notices(cfg)


def _ambient_notices(cfg: Config) -> list[str]:
    if not is_ambient(cfg):
        return []
    from meshreg.render import ambient

    return ambient.notices(cfg)


def _ingress_notices(cfg: Config) -> list[str]:
    if not cfg.ingress:
        return []
    from meshreg.render import ingress

    return ingress.notices(cfg)

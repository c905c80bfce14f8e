"""Renders every object meshreg deploys from a validated Config: pure, no I/O, deterministic."""

from __future__ import annotations

from meshreg.config import Config
from meshreg.render import (ambient, audit, hosting, ingress, gc, mirror, nodeproxy, policies, pushproxy, registry,
                            runtimeconfig)


def render(cfg: Config) -> list[dict]:
    """Every manifest, in the order they can be applied (reverse it to delete)."""
    regs = sorted(cfg.registries, key=lambda r: (not r.default, r.name))  # the default first, then by name
    np = cfg.node_proxy.enabled
    several = len(regs) > 1
    mesh = ambient.is_ambient(cfg)
    publish = cfg.local_registry_hosting.publish  # False: another instance publishes the cluster's one

    def each(make) -> list[dict]:
        return [make(cfg, reg) for reg in regs]

    return [
        registry.namespace(cfg),
        *[registry.service_account(cfg, reg.name) for reg in regs],
        *([registry.service_account(cfg, nodeproxy.NAME)] if np else []),
        *each(registry.config_map),
        *[registry.persistent_volume_claim(cfg, reg) for reg in regs if not reg.storage.s3],
        *each(registry.service),
        *[mirror.service(cfg, reg) for reg in regs if reg.mirror],
        *([nodeproxy.service(cfg)] if np else []),
        *each(registry.deployment),
        *([nodeproxy.daemon_set(cfg)] if np else []),
        *runtimeconfig.objects(cfg),
        *each(registry.peer_authentication),
        *[p for reg in regs for p in policies.registry_policies(cfg, reg)],
        *(each(ambient.allow_waypoint) if mesh else []),
        *([nodeproxy.allow_reads(cfg), nodeproxy.gateway(cfg), nodeproxy.virtual_service(cfg)] if np else []),
        *[o for reg in regs if reg.mirror for o in mirror.objects(cfg, reg)],
        *([ambient.waypoint(cfg)] if mesh else []),
        *[o for reg in regs if reg.push_proxy for o in pushproxy.objects(cfg, reg)],
        *ingress.objects(cfg),
        *audit.objects(cfg),
        *[registry.disruption_budget(cfg, reg) for reg in regs if reg.replicas > 1],
        *[registry.storage_entry(cfg, reg) for reg in regs if reg.storage.s3 and not reg.storage.s3.in_cluster],
        *[o for reg in regs if reg.gc for o in gc.objects(cfg, reg)],
        *([hosting.config_map(cfg)] if publish else []),
        *([hosting.index_config_map(cfg)] if several or not publish else []),
    ]


def notices(cfg: Config, *, writers: bool = True) -> list[str]:
    """Hints for a person reading the render on a terminal (never part of the manifests); `writers=False`
    leaves out the "no writers" hint for commands that already print the writers."""
    out = runtimeconfig.notices(cfg)
    for reg in cfg.registries:
        label = "" if len(cfg.registries) == 1 else f"registry {reg.name}: "
        if writers and reg.role == "images" and not reg.writers:
            out.append(f"{label}no writers: nobody can push. Grant one with `meshreg policy grant NS/SA` "
                       "(e.g. meshreg policy grant builds/kaniko), then render again.")
        if cfg.node_proxy.enabled and "*" not in reg.readers:
            out.append(f"{label}readers are restricted, but the node proxy serves reads to anything on a node "
                       "(and to pods that can reach its pod IP): keep confidential images in a separate registry.")
    return out + ambient.notices(cfg) + ingress.notices(cfg) + audit.notices(cfg)

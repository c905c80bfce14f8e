"""Renders every object meshreg deploys from a validated Config: pure, no I/O, deterministic."""

from __future__ import annotations

from meshreg.config import Config
from meshreg.render import hosting, nodeproxy, policies, registry


def render(cfg: Config) -> list[dict]:
    """Every manifest, in the order they can be applied (reverse it to delete)."""
    regs = sorted(cfg.registries, key=lambda r: (not r.default, r.name))  # the default first, then by name
    np = cfg.node_proxy.enabled
    several = len(regs) > 1
    publish = cfg.local_registry_hosting.publish  # False: another instance publishes the cluster's one

    def each(make) -> list[dict]:
        return [make(cfg, reg) for reg in regs]

    return [
        registry.namespace(cfg),
        *[registry.service_account(cfg, reg.name) for reg in regs],
        *([registry.service_account(cfg, nodeproxy.NAME)] if np else []),
        *each(registry.config_map),
        *each(registry.persistent_volume_claim),
        *each(registry.service),
        *([nodeproxy.service(cfg)] if np else []),
        *each(registry.deployment),
        *([nodeproxy.daemon_set(cfg)] if np else []),
        *each(registry.peer_authentication),
        *[p for reg in regs for p in policies.registry_policies(cfg, reg)],
        *([nodeproxy.allow_reads(cfg), nodeproxy.gateway(cfg), nodeproxy.virtual_service(cfg)] if np else []),
        *[registry.service_entry(cfg, reg) for reg in regs if reg.mirror],
        *([hosting.config_map(cfg)] if publish else []),
        *([hosting.index_config_map(cfg)] if several or not publish else []),
    ]


def notices(cfg: Config, *, writers: bool = True) -> list[str]:
    """Hints for a person reading the render on a terminal (never part of the manifests); `writers=False`
    leaves out the "no writers" hint for commands that already print the writers."""
    out = []
    for reg in cfg.registries:
        label = "" if len(cfg.registries) == 1 else f"registry {reg.name}: "
        if writers and reg.role == "images" and not reg.writers:
            out.append(f"{label}no writers: nobody can push. Grant one with `meshreg policy grant NS/SA` "
                       "(e.g. meshreg policy grant builds/kaniko), then render again.")
        if cfg.node_proxy.enabled and "*" not in reg.readers:
            out.append(f"{label}readers are restricted, but the node proxy serves reads to anything on a node "
                       "(and to pods that can reach its pod IP): keep confidential images in a separate registry.")
    return out

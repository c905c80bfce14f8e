"""Renders every object meshreg deploys from a validated Config: pure, no I/O, deterministic."""

from __future__ import annotations

from meshreg.config import Config
from meshreg.rendering import hosting, nodeproxy, policies, registry


def render(cfg: Config) -> list[dict]:
    """Every manifest, in the order they can be applied (reverse it to delete)."""
    np = cfg.node_proxy.enabled
    objects = [
        registry.namespace(cfg),
        registry.service_account(cfg, "registry"),
        *([registry.service_account(cfg, nodeproxy.NAME)] if np else []),
        registry.config_map(cfg),
        registry.persistent_volume_claim(cfg),
        registry.service(cfg),
        *([nodeproxy.service(cfg)] if np else []),
        registry.deployment(cfg),
        *([nodeproxy.daemon_set(cfg)] if np else []),
        registry.peer_authentication(cfg),
        *policies.registry_policies(cfg),
        *([nodeproxy.allow_reads(cfg), nodeproxy.gateway(cfg), nodeproxy.virtual_service(cfg)] if np else []),
        hosting.config_map(cfg),
    ]
    return objects


def notices(cfg: Config) -> list[str]:
    """Hints for a person reading the render on a terminal (never part of the manifests)."""
    out = []
    if not cfg.writers:
        out.append("no writers: nobody can push. Grant one with `meshreg policy grant NS/SA` "
                   "(e.g. meshreg policy grant builds/kaniko), then render again.")
    if cfg.node_proxy.enabled and "*" not in cfg.readers:
        out.append("readers are restricted, but the node proxy serves reads to anything on a node "
                   "(and to pods that can reach its pod IP): keep confidential images in a separate registry.")
    return out

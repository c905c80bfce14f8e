"""KEP-1755's `local-registry-hosting` ConfigMap: where Tilt, Skaffold and people find the registry."""

from __future__ import annotations

import yaml

from meshreg.config import Config
from meshreg.rendering.labels import metadata


def addresses(cfg: Config) -> dict:
    """The published addresses, in KEP-1755's field names."""
    out = {}
    port = cfg.node_proxy.port
    if cfg.node_proxy.enabled or cfg.local_registry_hosting.host:
        out["host"] = cfg.local_registry_hosting.host or f"localhost:{port}"
    if cfg.node_proxy.enabled:
        out["hostFromContainerRuntime"] = f"localhost:{port}"
    out["hostFromClusterNetwork"] = cfg.registry_service_host
    out["help"] = cfg.local_registry_hosting.help
    return out


def config_map(cfg: Config) -> dict:
    text = yaml.safe_dump(addresses(cfg), sort_keys=False, default_flow_style=False, width=1000)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(cfg, "local-registry-hosting", namespace="kube-public"),
            "data": {"localRegistryHosting.v1": text}}

"""Where each registry is published: KEP-1755's `local-registry-hosting` for the default (Tilt and Skaffold
read it), and a labelled ConfigMap with the same fields for every registry when there are several."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from meshreg.config import Config, LocalRegistryHosting, Registry
from meshreg.objects import Object
from meshreg.render.labels import metadata

INDEX_LABEL = "meshreg.dev/local-registry-hosting"
NAMESPACE = "kube-public"  # where KEP-1755 puts it, and meshreg its per-instance index


def published_path(cfg: Config, reg: Registry) -> str:
    """The repository path published after `host` and `hostFromContainerRuntime` ("" for none): the explicit host's,
    else the push proxy's prefix (the first, alphabetically, when it has several), so that the names Tilt and
    Skaffold derive from `host` (`<host>/<image>`) land where the push proxy may write."""
    explicit = cfg.local_registry_hosting.host if reg.default else None
    if explicit:
        return explicit.partition("/")[2]
    scope = reg.push_proxy.repositories if reg.push_proxy else ("*",)
    return "" if scope == ("*",) else scope[0].rstrip("/")


def addresses(cfg: Config, reg: Registry | None = None) -> dict[str, str]:
    """A registry's published addresses, in KEP-1755's field names.

    `host` is where tools outside the cluster push: with a push proxy, where `meshreg connect` listens by default,
    under the push proxy's prefix; `hostFromContainerRuntime` is the name pod specs pull, under the same path."""
    reg = reg or cfg.registry
    path = published_path(cfg, reg)
    under = f"/{path}" if path else ""
    explicit = cfg.local_registry_hosting.host if reg.default else None
    pushed = f"localhost:{reg.push_proxy.port}{under}" if reg.push_proxy else None
    out = {}
    host = explicit or pushed or _node_local(cfg, reg, under)
    if host:
        out["host"] = host
    if cfg.node_proxy.enabled:
        out["hostFromContainerRuntime"] = f"localhost:{reg.port}{under}"
    out["hostFromClusterNetwork"] = cfg.service_host(reg)
    out["help"] = _help(cfg, pushed=None if explicit else pushed)
    return out


def _node_local(cfg: Config, reg: Registry, under: str) -> str | None:
    """The node proxy's address for `reg`, when there is a node proxy."""
    return f"localhost:{reg.port}{under}" if cfg.node_proxy.enabled else None


def _help(cfg: Config, *, pushed: str | None) -> str:
    """The configured help; the default one also says how to push from outside (`pushed`: through a push proxy)."""
    text = cfg.local_registry_hosting.help
    if pushed and text == LocalRegistryHosting.help:
        return text + f" From outside the cluster, run `meshreg connect` and push to {pushed}."
    return text


def _text(fields: Mapping[str, object]) -> str:
    return yaml.safe_dump(fields, sort_keys=False, default_flow_style=False, width=1000)


def config_map(cfg: Config) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(cfg, "local-registry-hosting", namespace=NAMESPACE),
            "data": {"localRegistryHosting.v1": _text(addresses(cfg))}}


def index_name(cfg: Config) -> str:
    """The ConfigMap (in NAMESPACE) with every registry's addresses."""
    return f"meshreg-{cfg.name}-registries"


def index_config_map(cfg: Config) -> Object:
    """Every registry's addresses, one key per registry, with its role and whether it is the default."""
    data = {reg.name: _text({**addresses(cfg, reg), "role": reg.role, "default": reg.default})
            for reg in cfg.registries}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(cfg, index_name(cfg), namespace=NAMESPACE,
                                 extra={INDEX_LABEL: "v1"}),
            "data": dict(sorted(data.items()))}

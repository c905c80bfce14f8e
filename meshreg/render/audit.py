"""The Telemetry objects that make the proxies enforcing the registry's policies log every write and refusal.

Why Istio's Telemetry API (telemetry.istio.io/v1, GA since Istio 1.22) and not an EnvoyFilter: it is Istio's
supported way to configure access logs ("Use of the Telemetry API is recommended", Istio's access-log task), it
selects sidecars and gateways by label and attaches to waypoints with `targetRefs`, and it takes a CEL filter per
provider (Istio 1.18 and later). EnvoyFilter patches Envoy's generated configuration, which Istio warns can change
between proxy versions, and it is not supported on waypoints at all (Istio's ambient migration guide), so it could
not cover ambient mode. The price: a custom log format can only come from an extension provider in the mesh
config, which belongs to whoever installed istiod; `meshreg doctor` and `up` check for it, and
`meshreg audit --mesh-config` prints it (docs/audit.md).

What is rendered (with `spec.audit.enabled`, the default):
- sidecar mode: `<registry>-audit` per registry, selecting its pods; the audit provider logs the inbound (SERVER)
  side only, where the client's certificate is verified;
- ambient mode: `waypoint-audit`, attached to the waypoint (the registry pods have no proxy of their own);
- with an ingress on a dedicated gateway: `meshreg-<instance>-ingress-audit` selecting the gateway's pods, logging
  only requests for the ingress host. On a shared gateway nothing is rendered: a Telemetry selecting those pods would
  replace their access-log providers for every host, and Istio allows one such Telemetry per workload; there the
  registry's own records name the gateway, not the client.

A Telemetry that selects a workload replaces the access-log providers the mesh gives it, so each one names
`spec.audit.keepProviders` too (default: Istio's built-in `envoy`, the usual access log), unfiltered.
"""

from __future__ import annotations

from typing import Any, Final

from meshreg.config import Config, Registry
from meshreg.objects import Object
from meshreg.render.labels import COMPONENT, REGISTRY, is_ambient, metadata, registry_pods

API_VERSION = "telemetry.istio.io/v1"
COMPONENT_NAME = "audit"

# Which requests the audit provider logs (the Telemetry's filter): every write (anything but GET and HEAD), whatever
# its answer, and every refused read: 403 from a policy, 401 from a token check (not the 401 of the ingress's token
# challenge, a direct response to every anonymous ping). HBONE's CONNECT (a waypoint's tunnel) is left out.
WRITES_AND_REFUSALS: Final = ('request.method in ["GET", "HEAD"] ? response.code == 403 || (response.code == 401 && '
                              'response.code_details != "direct_response") : request.method != "CONNECT"')


def host_filter(host: str) -> str:
    """The filter for a gateway that may serve other hosts too: only requests for `host` (with any port)."""
    return f'(request.host == "{host}" || request.host.startsWith("{host}:")) && ({WRITES_AND_REFUSALS})'


def _spec(cfg: Config, expression: str, *, server_side: bool) -> dict[str, Any]:
    keep: list[dict[str, Any]] = [{"providers": [{"name": p} for p in cfg.audit.keep_providers]}] \
        if cfg.audit.keep_providers else []
    audit: dict[str, Any] = {"providers": [{"name": cfg.audit.provider}], "filter": {"expression": expression}}
    if server_side:  # the inbound side of a sidecar: where it verified the client
        audit["match"] = {"mode": "SERVER"}
    return {"accessLogging": [*keep, audit]}


def _telemetry(meta: dict[str, Any], attachment: dict[str, Any], spec: dict[str, Any]) -> Object:
    return {"apiVersion": API_VERSION, "kind": "Telemetry", "metadata": meta, "spec": {**attachment, **spec}}


def registry_telemetry(cfg: Config, reg: Registry) -> Object:
    """The registry sidecar's audit log (sidecar mode)."""
    meta = metadata(cfg, f"{reg.name}-audit", extra={COMPONENT: COMPONENT_NAME, REGISTRY: reg.name})
    return _telemetry(meta, {"selector": {"matchLabels": registry_pods(cfg, reg)}},
                      _spec(cfg, WRITES_AND_REFUSALS, server_side=True))


def waypoint_telemetry(cfg: Config) -> Object:
    """The waypoint's audit log (ambient mode): it enforces the L7 policies and sees each client's identity."""
    from meshreg.config.mesh import WAYPOINT  # ambient mode's modules load with ambient mode only
    from meshreg.render import ambient

    meta = metadata(cfg, f"{WAYPOINT}-audit", extra={COMPONENT: COMPONENT_NAME})
    ref = {"group": ambient.GATEWAY_API.partition("/")[0], "kind": "Gateway", "name": WAYPOINT}
    return _telemetry(meta, {"targetRefs": [ref]}, _spec(cfg, WRITES_AND_REFUSALS, server_side=False))


def ingress_telemetry(cfg: Config) -> Object:
    """The ingress gateway's audit log, for the ingress host only: it verified the client's certificate or token."""
    ing = cfg.ingress
    assert ing is not None
    meta = metadata(cfg, f"meshreg-{cfg.name}-ingress-audit", namespace=ing.gateway.namespace,
                    extra={COMPONENT: "ingress"})
    return _telemetry(meta, {"selector": {"matchLabels": dict(sorted(ing.gateway.selector.items()))}},
                      _spec(cfg, host_filter(ing.host), server_side=False))


def records_ingress(cfg: Config) -> bool:
    """Whether the ingress gateway writes audit records (only a dedicated one: see the module's docstring)."""
    return bool(cfg.audit.enabled and cfg.ingress and cfg.ingress.gateway.dedicated)


def objects(cfg: Config) -> list[Object]:
    """Every audit Telemetry, registries sorted as render sorts them (the default first)."""
    if not cfg.audit.enabled:
        return []
    regs = sorted(cfg.registries, key=lambda r: (not r.default, r.name))
    out = [waypoint_telemetry(cfg)] if is_ambient(cfg) else [registry_telemetry(cfg, r) for r in regs]
    return out + ([ingress_telemetry(cfg)] if records_ingress(cfg) else [])


def notices(cfg: Config) -> list[str]:
    """What the manifests cannot say: a shared ingress gateway keeps no audit record of its clients. (The mesh
    config's provider is a fact of the cluster: `meshreg doctor` and `up` check it.)"""
    if cfg.audit.enabled and cfg.ingress and not cfg.ingress.gateway.dedicated:
        return [("audit: the ingress gateway is shared (dedicated: false), so it writes no audit records: the "
                 "registry's records name the gateway, not the client (docs/audit.md)")]
    return []

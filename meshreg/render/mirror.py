"""How a mirror reaches its upstream: through its own sidecar, which answers even when the upstream cannot.

distribution 2.8 in proxy mode pings its upstream while starting and panics on any transport error (connection
refused, reset, EOF, unresolvable name; distribution#4038), but starts on any HTTP answer, even a 503. So the mirror
never dials the upstream itself. Its `remoteurl` is a Service of meshreg's own (`<name>-upstream`, no selector:
cluster DNS always resolves it, airgapped or not), and a VirtualService sends that host to the upstream's
ServiceEntry. For an https upstream the sidecar originates TLS (DestinationRule, SIMPLE), so the mirror speaks
plain HTTP to its own sidecar and an unreachable or unresolvable upstream reads as Envoy's 503, not as a dead
connection. Token realms and blob redirects (extraHosts) stay TLS from the registry itself, passed through by SNI.
"""

from __future__ import annotations

from meshreg.config import Config, Mirror, Registry
from meshreg.objects import Object
from meshreg.render.labels import COMPONENT, REGISTRY, metadata

ALIAS_PORT = 80  # where the mirror sends upstream requests: its sidecar's outbound HTTP port


def alias(reg: Registry) -> str:
    return f"{reg.name}-upstream"


def alias_host(cfg: Config, reg: Registry) -> str:
    return f"{alias(reg)}.{cfg.namespace}.svc.cluster.local"


def remote_url(cfg: Config, reg: Registry) -> str:
    """The `proxy.remoteurl` distribution is given: the alias, never the upstream itself."""
    return f"http://{alias_host(cfg, reg)}"


def _mirror(reg: Registry) -> Mirror:
    """The registry's mirror settings: everything here is for a mirror."""
    assert reg.mirror is not None, f"registry {reg.name} is not a mirror"
    return reg.mirror


def _tls(reg: Registry) -> bool:
    return _mirror(reg).upstream.startswith("https:")


def _authority(reg: Registry) -> str:
    """The upstream's Host header: its name, with the port when it is not the scheme's default."""
    default = 443 if _tls(reg) else 80
    mirror = _mirror(reg)
    return mirror.host if mirror.port == default else f"{mirror.host}:{mirror.port}"


def _meta(cfg: Config, reg: Registry) -> Object:
    return metadata(cfg, alias(reg), extra={COMPONENT: "registry", REGISTRY: reg.name})


def service(cfg: Config, reg: Registry) -> Object:
    """A name for the upstream that cluster DNS always resolves; no selector, no endpoints: only the sidecar's
    route for it (the VirtualService) is ever used."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cfg, reg),
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": ALIAS_PORT, "protocol": "TCP",
                                                      "appProtocol": "http"}]}}


def virtual_service(cfg: Config, reg: Registry) -> Object:
    # No `timeout`: layer pulls from the upstream take as long as they take (the CRD rejects 0s).
    route = {"destination": {"host": _mirror(reg).host, "port": {"number": ALIAS_PORT}}}
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": _meta(cfg, reg),
            "spec": {"hosts": [alias_host(cfg, reg)], "exportTo": ["."],
                     "http": [{"name": "upstream", "rewrite": {"authority": _authority(reg)}, "route": [route]}]}}


def service_entry(cfg: Config, reg: Registry) -> Object:
    """The upstream and the hosts it redirects to, known to the mesh even where it allows only known hosts.

    Port 80 is the sidecar's plain-HTTP side of the upstream (sent on to the upstream's own port); TLS ports carry
    what the registry itself speaks TLS to (token realms, blob redirects, the upstream's own port)."""
    mirror = _mirror(reg)
    ports: list[Object] = [{"number": ALIAS_PORT, "name": "http-upstream", "protocol": "HTTP",
              **({"targetPort": mirror.port} if mirror.port != ALIAS_PORT else {})}]
    for number in sorted({443, mirror.port} - {ALIAS_PORT}):
        ports.append({"number": number, "name": f"tls-{number}", "protocol": "TLS"})
    return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": _meta(cfg, reg),
            "spec": {"hosts": sorted({mirror.host, *mirror.extra_hosts}), "exportTo": ["."],
                     "location": "MESH_EXTERNAL", "resolution": "DNS", "ports": ports}}


def destination_rule(cfg: Config, reg: Registry) -> Object | None:
    """TLS origination to an https upstream. Istio 1.20 and later verify the upstream's certificate against the
    proxy's OS trust store by default (VERIFY_CERTIFICATE_AT_CLIENT); the SNI is set explicitly."""
    if not _tls(reg):
        return None
    host = _mirror(reg).host
    tls = {"mode": "SIMPLE", "sni": host}
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": _meta(cfg, reg),
            "spec": {"host": host, "exportTo": ["."],
                     "trafficPolicy": {"portLevelSettings": [{"port": {"number": ALIAS_PORT}, "tls": tls}]}}}


def objects(cfg: Config, reg: Registry) -> list[Object]:
    """The Istio objects of a mirror's upstream path (the alias Service is rendered with the other Services)."""
    rule = destination_rule(cfg, reg)
    return [service_entry(cfg, reg), *([rule] if rule else []), virtual_service(cfg, reg)]

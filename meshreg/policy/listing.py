"""Who the policies let in, as `policy list` shows it: a registry's writers, readers, node proxy, waypoint, push
proxy and ingress clients, each with the principal (trust domain applied) the rendered policies name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshreg.config import Config, Registry
from meshreg.config.mesh import WAYPOINT
from meshreg.config.model import CONNECT_ROLE as ROLE

if TYPE_CHECKING:  # the ingress's model loads with spec.ingress only
    from meshreg.config.model import Client, Ingress

__all__ = ["ClientEntry", "GatewayEntry", "IngressEntry", "Listing", "NodeProxyEntry", "PushProxyEntry",
           "ReaderEntry", "RegistryEntry", "WaypointEntry", "WriterEntry", "listing"]


@dataclass(frozen=True)
class RegistryEntry:
    """The registry listed: its name, role, whether it is the default, and a readonly registry's publisher."""

    name: str
    role: str
    default: bool
    publisher: str | None


@dataclass(frozen=True)
class WriterEntry:
    """A writer (a readonly registry's publisher is its one writer): its prefixes and grants."""

    service_account: str
    repositories: tuple[str, ...]
    delete: bool
    push: bool  # False: DELETE only (the retention identity)
    principal: str


@dataclass(frozen=True)
class ReaderEntry:
    """A reader as the config names it ('*': every mesh identity), and its principal."""

    reader: str
    principal: str


@dataclass(frozen=True)
class NodeProxyEntry:
    """The node proxy, which reads on behalf of the kubelets: where it listens and as whom."""

    enabled: bool
    port: int
    host_ip: str
    principal: str


@dataclass(frozen=True)
class WaypointEntry:
    """Ambient mode: the waypoint that enforces the policies for in-mesh clients."""

    name: str
    principal: str


@dataclass(frozen=True)
class PushProxyEntry:
    """The push proxy: what it writes and as whom; who may use it is RBAC (the Role, bound as `grant` shows)."""

    namespace: str
    service_account: str
    principal: str
    repositories: tuple[str, ...]
    port: int
    role: str
    grant: str  # the kubectl command that lets someone port-forward to it
    connect: str  # the arguments `meshreg connect` needs for this registry ("" for the default one)


@dataclass(frozen=True)
class GatewayEntry:
    """The ingress gateway the registry lets write its clients' prefixes."""

    namespace: str
    selector: dict[str, str]
    service_account: str
    principal: str
    dedicated: bool


@dataclass(frozen=True)
class ClientEntry:
    """A client of the ingress: a certificate's principal (mtls), or a token's request principal and claims (jwt)."""

    name: str
    method: str
    principal: str | None  # mtls
    request_principal: str | None  # jwt: issuer/subject
    claims: dict[str, list[str]] | None  # jwt: claim name -> accepted values
    repositories: tuple[str, ...]
    read_repositories: tuple[str, ...]
    delete: bool


@dataclass(frozen=True)
class IngressEntry:
    """The ingress: where, through which gateway, and each client's identity and scopes."""

    host: str
    registry: str
    gateway: GatewayEntry
    clients: tuple[ClientEntry, ...]
    mounts_refused: bool  # the gateway refuses cross-repository mounts (some client may read less than everything)


@dataclass(frozen=True)
class Listing:
    """Everything `policy list` shows of one registry, and where it comes from."""

    source: str  # the config file
    trust_domain: str
    namespace: str
    registry: RegistryEntry
    others: tuple[str, ...]  # the config's other registries, in order
    writers: tuple[WriterEntry, ...]
    readers: tuple[ReaderEntry, ...]
    node_proxy: NodeProxyEntry
    waypoint: WaypointEntry | None  # ambient mode only
    push_proxy: PushProxyEntry | None
    ingress: IngressEntry | None  # only when the ingress serves this registry
    scoped: bool  # some writer is limited to prefixes, or the readers are restricted: reads are still per registry


def listing(cfg: Config, reg: Registry) -> Listing:
    """What the policies rendered from `cfg` let in at registry `reg`."""
    return Listing(
        source=cfg.source, trust_domain=cfg.trust_domain, namespace=cfg.namespace,
        registry=RegistryEntry(name=reg.name, role=reg.role, default=reg.default, publisher=reg.publisher),
        others=tuple(r.name for r in cfg.registries if r is not reg),
        # A readonly registry's publisher is listed as its one writer: that is what the policies enforce.
        writers=tuple(WriterEntry(service_account=w.service_account, repositories=tuple(w.repositories),
                                  delete=w.delete, push=w.push, principal=cfg.principal(w.service_account))
                      for w in cfg.writers_of(reg)),
        readers=tuple(ReaderEntry(reader=r, principal="*" if r == "*" else cfg.principal(r)) for r in reg.readers),
        node_proxy=NodeProxyEntry(enabled=cfg.node_proxy.enabled, port=reg.port, host_ip=cfg.node_proxy.host_ip,
                                  principal=cfg.principal(cfg.node_proxy_identity)),
        waypoint=WaypointEntry(name=WAYPOINT, principal=cfg.principal(f"{cfg.namespace}/{WAYPOINT}"))
        if cfg.mesh == "ambient" else None,
        push_proxy=_push_proxy(cfg, reg),
        ingress=_ingress(cfg.ingress, gateway_principal=cfg.principal(cfg.ingress.gateway.identity))
        if cfg.ingress is not None and cfg.ingress.registry == reg.name else None,
        scoped=_scoped(cfg, reg))


def _scoped(cfg: Config, reg: Registry) -> bool:
    """Restricted readers or writers limited to prefixes: then the listing says reads are still per registry."""
    return "*" not in reg.readers or any(w.scoped for w in cfg.writers_of(reg))


def _push_proxy(cfg: Config, reg: Registry) -> PushProxyEntry | None:
    """Who may push through the push proxy is RBAC: the Role in its namespace, bound with the recipe shown."""
    proxy = reg.push_proxy
    if proxy is None:
        return None
    return PushProxyEntry(
        namespace=proxy.namespace, service_account=proxy.identity, principal=cfg.principal(proxy.identity),
        repositories=tuple(proxy.repositories), port=proxy.port, role=ROLE,
        grant=f"kubectl -n {proxy.namespace} create rolebinding NAME --role={ROLE} --user=USER (or --group)",
        connect="" if reg.default else f" --registry {reg.name}")


def _ingress(ingress: Ingress, *, gateway_principal: str) -> IngressEntry:
    gw = ingress.gateway
    return IngressEntry(
        host=ingress.address, registry=ingress.registry,
        gateway=GatewayEntry(namespace=gw.namespace, selector=dict(gw.selector), service_account=gw.service_account,
                             principal=gateway_principal, dedicated=gw.dedicated),
        clients=tuple(_client(ingress, c) for c in ingress.clients),
        mounts_refused=ingress.read_restricted)


def _client(ingress: Ingress, c: Client) -> ClientEntry:
    mtls = c.method == "mtls"
    return ClientEntry(name=c.name, method=c.method, principal=ingress.principal(c) if mtls else None,
                       request_principal=None if mtls else f"{c.issuer}/{c.subject}",
                       claims=None if mtls else {k: list(v) for k, v in c.claims},
                       repositories=tuple(c.repositories), read_repositories=tuple(c.read_repositories),
                       delete=c.delete)

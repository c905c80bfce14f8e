"""Who made a request, from what the proxy verified: the peer certificate (or Istio's peer principal) and the token
the gateway validated; named the way meshreg's config names them (a writer NS/SA, the push proxy, an ingress client).

Nothing the client sends in a header counts: not X-Forwarded-Client-Cert, not the user agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.audit.records import Record
from meshreg.config.model import Config, Registry
from meshreg.policy.strings import istio_match

SPIFFE = "spiffe://"


@dataclass(frozen=True)
class Who:
    """An identity as the audit trail shows it; `aliases` are every spelling `meshreg audit --who` accepts."""

    kind: str  # workload, push-proxy, node-proxy, ingress-gateway, retention, waypoint, client, token, anonymous
    name: str
    principal: str | None = None  # Istio's form, without spiffe://
    issuer: str | None = None
    subject: str | None = None
    aliases: tuple[str, ...] = ()

    def answers_to(self, wanted: str) -> bool:
        return wanted in self.aliases


def principal_of(record: Record) -> str | None:
    """The verified peer: Istio's peer principal where the proxy keeps one (waypoints), else the TLS peer's URI SAN."""
    value = record.peer_principal or record.peer
    return value.removeprefix(SPIFFE) if value else None


def _roles(cfg: Config, registry: Registry) -> dict[str, tuple[str, str]]:
    """principal -> (kind, name) for the identities meshreg itself deploys or names for this registry."""
    roles = {cfg.principal(cfg.node_proxy_identity): ("node-proxy", "node proxy")}
    if registry.push_proxy:
        roles[cfg.principal(registry.push_proxy.identity)] = ("push-proxy", "push proxy")
    if cfg.ingress and cfg.ingress.registry == registry.name:
        roles[cfg.principal(cfg.ingress.gateway.identity)] = ("ingress-gateway", "ingress gateway")
    if registry.retention:
        roles[cfg.principal(cfg.gc_identity(registry))] = ("retention", "retention job")
    if cfg.mesh == "ambient":
        roles[cfg.principal(f"{cfg.namespace}/waypoint")] = ("waypoint", "waypoint")
    return roles


def _workload(cfg: Config, principal: str) -> str | None:
    """NS/SA for a principal of the configured trust domain."""
    td, _, rest = principal.partition("/ns/")
    ns, _, sa = rest.partition("/sa/")
    return f"{ns}/{sa}" if td == cfg.trust_domain and ns and sa and "/" not in sa else None


def _client_certificate(cfg: Config, principal: str) -> str | None:
    """The ingress client a certificate names (`<host>/client/<name>`)."""
    if not cfg.ingress:
        return None
    name = principal.removeprefix(f"{cfg.ingress.host}/client/")
    return name if name != principal and cfg.ingress.client(name) else None


def token_clients(cfg: Config, issuer: str, subject: str) -> list[str]:
    """The jwt clients whose issuer and subject a verified token matches (their claims are not in the record)."""
    if not cfg.ingress:
        return []
    issuers = {i.issuer for i in cfg.ingress.issuers}
    return [c.name for c in cfg.ingress.clients if c.method == "jwt"
            and (c.issuer or next(iter(issuers), None)) == issuer and istio_match(c.subject or "*", subject)]


def _from_peer(cfg: Config, registry: Registry, principal: str) -> Who:
    spiffe = SPIFFE + principal
    role = _roles(cfg, registry).get(principal)
    workload = _workload(cfg, principal)
    short = (workload,) if workload else ()
    if role:
        kind, label = role
        return Who(kind, f"{label} ({workload or principal})", principal, aliases=(principal, spiffe, *short, kind))
    client = _client_certificate(cfg, principal)
    if client:
        return Who("client", f"client {client}", principal, aliases=(principal, spiffe, f"client:{client}", client))
    return Who("workload", workload or principal, principal, aliases=(principal, spiffe, *short))


def _from_token(cfg: Config, issuer: str, subject: str) -> Who:
    clients = token_clients(cfg, issuer, subject)
    token = f"{issuer}/{subject}"
    names = tuple(f"client:{c}" for c in clients)
    shown = f"client {', '.join(clients)} (token {token})" if clients else f"token {token}"
    return Who("client" if clients else "token", shown, issuer=issuer, subject=subject,
               aliases=(token, *names, *clients))


def identify(record: Record, cfg: Config, registry: Registry) -> Who:
    """Who sent the request, as far as the proxy that logged it verified."""
    principal = principal_of(record)
    if record.jwt_issuer and record.jwt_subject:
        who = _from_token(cfg, record.jwt_issuer, record.jwt_subject)
        if principal:  # a client certificate and a token on one request: both were verified
            peer = _from_peer(cfg, registry, principal)
            return Who(who.kind, f"{peer.name} and {who.name}", principal, who.issuer, who.subject,
                       peer.aliases + who.aliases)
        return who
    if principal:
        return _from_peer(cfg, registry, principal)
    return Who("anonymous", "anonymous (no verified identity)", aliases=("anonymous",))

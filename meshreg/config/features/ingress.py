"""spec.ingress: writers outside the cluster, through an Istio ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshreg.config.model import Writer

INGRESS_METHODS = ("mtls", "jwt")


@dataclass(frozen=True)
class IngressGateway:
    """The Istio ingress gateway that serves the ingress: its pods (by labels), their namespace and identity."""

    namespace: str = "istio-system"
    selector: dict[str, str] = field(default_factory=lambda: {"istio": "ingressgateway"})
    service_account: str = "istio-ingressgateway-service-account"
    port: int = 443  # the Gateway server port (a port of the Service in front of the gateway pods)
    dedicated: bool = False  # True: nothing else uses these pods, so an ALLOW policy cannot lock out other hosts

    @property
    def identity(self) -> str:
        return f"{self.namespace}/{self.service_account}"


@dataclass(frozen=True)
class Issuer:
    """A JWT issuer the gateway trusts, with its keys (inline JWKS or a JWKS URI) and the audiences it accepts."""

    issuer: str
    audiences: tuple[str, ...]
    jwks: str | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True)
class Client:
    """A writer outside the cluster: a client certificate (mtls) or tokens of one issuer and subject (jwt)."""

    name: str
    method: str  # "mtls" or "jwt"
    repositories: tuple[str, ...]  # what it may write: ("*",) or normalized prefixes
    read_repositories: tuple[str, ...]  # what it may read; defaults to `repositories`
    delete: bool = False
    issuer: str | None = None  # jwt only
    subject: str | None = None  # jwt only; `*` at either end as Istio matches it
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()  # jwt only: claim name -> accepted values


@dataclass(frozen=True)
class Ingress:
    """Writers outside the cluster reach one registry at `host`, through an Istio ingress gateway."""

    host: str
    registry: str  # the registry it serves
    credential_name: str  # the Secret (in the gateway's namespace) with the server certificate
    client_ca: str  # the CA directory `meshreg certs` manages, resolved against the config file
    gateway: IngressGateway = IngressGateway()
    issuers: tuple[Issuer, ...] = ()
    clients: tuple[Client, ...] = ()
    ca_pem: str | None = None  # the CA certificate and CRL, read from client_ca; None before `meshreg certs init`
    crl_pem: str | None = None

    def principal(self, client: Client) -> str:
        """The peer principal of a client certificate: its URI SAN spiffe://<host>/client/<name>, without spiffe://."""
        return f"{self.host}/client/{client.name}"

    def client(self, name: str) -> Client | None:
        return next((c for c in self.clients if c.name == name), None)

    @property
    def address(self) -> str:
        """Where clients push, as docker names it (and its certs.d directory): host, or host:port off 443."""
        return self.host if self.gateway.port == 443 else f"{self.host}:{self.gateway.port}"

    @property
    def read_restricted(self) -> bool:
        """Whether some client may read less than every repository (then the ingress refuses cross-repository
        mounts, which would read past it)."""
        return any(c.read_repositories != ("*",) for c in self.clients)

    @property
    def writer(self) -> Writer | None:
        """The gateway as the registry sees it: one writer for the union of its clients' prefixes."""
        if not self.clients:
            return None
        prefixes = {p for c in self.clients for p in c.repositories}
        repositories = ("*",) if "*" in prefixes else tuple(sorted(prefixes))
        return Writer(self.gateway.identity, repositories, any(c.delete for c in self.clients))

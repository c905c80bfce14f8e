"""Who a request through the ingress claims to be, for `policy check --as client:NAME` or `--as external`: the
peer principal of a client certificate, or the payload of a valid token of a jwt client (a token that meets the
client's subject and claims, `*` patterns filled in), or nothing at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshreg.errors import UsageError
from meshreg.policy.claims import Claims

if TYPE_CHECKING:  # the ingress's model loads with spec.ingress only
    from meshreg.config.model import Client, Ingress

CLIENT = "client:"
EXTERNAL = "external"


@dataclass(frozen=True)
class Caller:
    """What the gateway sees of a caller: a peer principal (certificate), a JWT payload, or neither."""

    label: str
    principal: str | None = None
    claims: Claims | None = None


def _sample(pattern: str) -> str:
    """A value an Istio pattern (exact, prefix*, *suffix, *) matches."""
    return pattern.strip("*") or "any"


def caller(ingress: Ingress | None, identity: str) -> Caller:
    """The caller `identity` names (`client:NAME` or `external`); UsageError when the config has no such thing."""
    if ingress is None:
        raise UsageError(f"--as {identity}: the config has no spec.ingress")
    if identity == EXTERNAL:
        return Caller("external (no client certificate, no token)")
    name = identity[len(CLIENT):]
    client = ingress.client(name)
    if client is None:
        known = ", ".join(c.name for c in ingress.clients) or "none"
        raise UsageError(f"--as {identity}: no client named {name!r} in spec.ingress.clients (clients: {known})")
    if client.method == "mtls":
        return Caller(f"client {name} (certificate {ingress.principal(client)})", principal=ingress.principal(client))
    claims = _token(ingress, client)
    return Caller(f"client {name} (token {client.issuer}/{claims['sub']})", claims=claims)


def _token(ingress: Ingress, client: Client) -> Claims:
    """The payload of a token that the jwt client's issuer, subject and claims accept."""
    issuer = next(i for i in ingress.issuers if i.issuer == client.issuer)
    assert client.subject is not None  # config.ingress requires one of a jwt client
    return {"iss": client.issuer, "sub": _sample(client.subject), "aud": issuer.audiences[0],
            **{k: _sample(values[0]) for k, values in client.claims}}


def is_ingress_identity(identity: str) -> bool:
    return identity == EXTERNAL or identity.startswith(CLIENT)


"""The ingress for writers outside the cluster, on an existing Istio ingress gateway: a Gateway server, a
VirtualService to the registry, the client CA and CRL Secret, a RequestAuthentication for JWT issuers, and the
gateway's AuthorizationPolicies. Everything goes into the gateway's namespace: Istio applies policies and reads
`credentialName` Secrets only there.

Every rule is scoped to the ingress host, and by default only DENY rules are rendered (with negative matches, as
the registry's own): an ALLOW policy on a gateway denies whatever it does not list, which on a shared gateway
would lock out every other host. With `gateway.dedicated: true` an ALLOW policy (positive matches) is added.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from meshreg.config import REGISTRY_PORT, Config
from meshreg.config.model import Client, Ingress
from meshreg.errors import ConfigError
from meshreg.objects import Object
from meshreg.render import refusals
from meshreg.render.labels import COMPONENT, metadata, selector
from meshreg.render.policies import READ, WRITE, repository_paths

CLAIM = "request.auth.claims[{}]"
# On meshreg's Namespace: where the ingress objects are, so `up` prunes them there after spec.ingress changes.
NAMESPACE_ANNOTATION = "meshreg.dev/ingress-namespace"
CHALLENGE_BODY = '{"errors":[{"code":"UNAUTHORIZED","message":"send a client certificate or a bearer token"}]}'


def name(cfg: Config) -> str:
    """Gateway, VirtualService, RequestAuthentication and policy names: unique per instance in a shared namespace."""
    return f"meshreg-{cfg.name}-ingress"


def _ingress(cfg: Config) -> Ingress:
    """The config's ingress: everything here but objects() and notices() is for a config that has one."""
    assert cfg.ingress is not None, f"{cfg.source} has no spec.ingress"
    return cfg.ingress


def _meta(cfg: Config, suffix: str = "") -> Object:
    return metadata(cfg, name(cfg) + suffix, namespace=_ingress(cfg).gateway.namespace, extra={COMPONENT: "ingress"})


def _clients(ing: Ingress, method: str) -> list[Client]:
    return [c for c in ing.clients if c.method == method]


def tls_mode(ing: Ingress) -> str:
    """MUTUAL when every client has a certificate, SIMPLE when none has, OPTIONAL_MUTUAL when both kinds exist
    (a presented certificate is still verified; clients without one must bring a token)."""
    mtls, jwt = bool(_clients(ing, "mtls")), bool(_clients(ing, "jwt"))
    return "OPTIONAL_MUTUAL" if mtls and jwt else ("MUTUAL" if mtls else "SIMPLE")


def gateway(cfg: Config) -> Object:
    ing = _ingress(cfg)
    tls = {"mode": tls_mode(ing), "credentialName": ing.credential_name, "minProtocolVersion": "TLSV1_2"}
    server = {"port": {"number": ing.gateway.port, "name": f"https-meshreg-{cfg.name}", "protocol": "HTTPS"},
              "hosts": [f"./{ing.host}"], "tls": tls}  # "./": only VirtualServices from this namespace bind
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": _meta(cfg),
            "spec": {"selector": dict(sorted(ing.gateway.selector.items())), "servers": [server]}}


def virtual_service(cfg: Config) -> Object:
    # No `timeout`: Istio then sets none, so long layer uploads are never cut (its CRD rejects 0s).
    ing = _ingress(cfg)
    reg = cfg.get_registry(ing.registry)
    destination: Object = {"destination": {"host": cfg.service_name(reg), "port": {"number": REGISTRY_PORT}}}
    route = {"name": reg.name, "route": [destination]}
    tokens = bool(_clients(ing, "jwt"))
    routes = [*refusals.routes(ing, tokens=tokens, destination=destination), *([challenge(ing)] if tokens else []),
              route]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": _meta(cfg),
            "spec": {"hosts": [ing.host], "gateways": [name(cfg)], "exportTo": ["."], "http": routes}}


def challenge(ing: Ingress) -> Object:
    """The registry's ping (`GET /v2/`) without a client certificate or a valid token answers 401 with a Bearer
    challenge: registry clients (containers/image: skopeo, podman, buildah) send a token they were given only
    after such a challenge. The gateway sets x-forwarded-client-cert only for a verified client certificate, and
    the claims of a verified token count from jwt_authn on (Istio clears the route cache on gateways)."""
    return {"name": "token-challenge",
            "match": [{"uri": {"exact": "/v2/"},
                       "withoutHeaders": {"x-forwarded-client-cert": {}, "@request.auth.claims.iss": {"regex": ".+"}}}],
            "directResponse": {"status": 401, "body": {"string": CHALLENGE_BODY}},
            "headers": {"response": {"set": {
                "www-authenticate": f'Bearer realm="https://{ing.address}/v2/",service="{ing.address}"'}}}}


def ca_secret(cfg: Config) -> Object:
    """`<credentialName>-cacert`: Istio (1.19+) verifies client certificates with its ca.crt and ca.crl, and
    prefers it to a ca.crt in the server certificate's Secret (which cert-manager fills with the server's CA)."""
    ing = _ingress(cfg)
    if ing.ca_pem is None or ing.crl_pem is None:  # config.ingress reads both or neither
        raise ConfigError(f"{cfg.source}: spec.ingress.clientCA: no CA in {ing.client_ca} yet; create it with "
                          "`meshreg certs init`, then render again")
    data = {"ca.crt": ing.ca_pem, "ca.crl": ing.crl_pem}
    meta = metadata(cfg, f"{ing.credential_name}-cacert", namespace=ing.gateway.namespace,
                    extra={COMPONENT: "ingress"})
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def request_authentication(cfg: Config) -> Object:
    """One jwtRule per issuer a client uses (an unused issuer would only refuse tokens for nothing)."""
    ing = _ingress(cfg)
    used = {c.issuer for c in _clients(ing, "jwt")}
    rules = []
    for issuer in (i for i in ing.issuers if i.issuer in used):
        rule: Object = {"issuer": issuer.issuer, "audiences": list(issuer.audiences)}
        rule.update({"jwks": issuer.jwks} if issuer.jwks else {"jwksUri": issuer.jwks_uri})
        rule["fromHeaders"] = refusals.from_headers()  # not Envoy's default `?access_token=` as well
        rules.append(rule)
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication", "metadata": _meta(cfg),
            "spec": {"selector": {"matchLabels": dict(sorted(ing.gateway.selector.items()))},
                     "jwtRules": rules}}


def _subject(client: Client) -> str:
    """A jwt client's subject (config.ingress requires one)."""
    assert client.subject is not None, f"client {client.name} has no subject"
    return client.subject


def identity(ing: Ingress, client: Client) -> tuple[Object, list[Object]]:
    """The source and `when` conditions that name one client.

    A certificate names it by principal. A token by request principal `<iss>/<sub>`, which Istio (1.22 and later)
    splits at its last '/' into issuer and subject: a subject containing '/' (GitHub's `repo:org/app:...`) or
    starting with '*' cannot be written that way, so it is matched as the `sub` claim of a token of `<iss>/*`."""
    if client.method == "mtls":
        return {"principals": [ing.principal(client)]}, []
    subject = _subject(client)
    if "/" in subject or subject.startswith("*"):
        return {"requestPrincipals": [f"{client.issuer}/*"]}, [_when("sub", [subject])]
    return {"requestPrincipals": [f"{client.issuer}/{subject}"]}, []


def _when(claim: str, values: Iterable[str], *, negative: bool = False) -> Object:
    return {"key": CLAIM.format(claim), "notValues" if negative else "values": list(values)}


def _hosts(ing: Ingress) -> list[str]:
    return [ing.host, f"{ing.host}:*"]


def _rule(ing: Ingress, source: Object | None, operation: Object, when: list[Object]) -> Object:
    rule: Object = {"from": [{"source": source}]} if source else {}
    rule["to"] = [{"operation": {"hosts": _hosts(ing), **operation}}]
    return {**rule, "when": when} if when else rule


def _unauthenticated(ing: Ingress) -> list[Object]:
    """Neither a client's certificate nor a client's token: denied (with no clients, everything is), except the
    registry's ping (GET or HEAD exactly /v2/) when token clients need its 401 challenge; the ping reveals nothing."""
    source: Object = {}
    principals = sorted(ing.principal(c) for c in _clients(ing, "mtls"))
    requests = sorted({identity(ing, c)[0]["requestPrincipals"][0] for c in _clients(ing, "jwt")})
    if principals:
        source["notPrincipals"] = principals
    if not requests:
        return [_rule(ing, source or None, {}, [])]
    source["notRequestPrincipals"] = requests
    return [_rule(ing, source, {"notPaths": ["/v2/"]}, []),
            _rule(ing, source, {"paths": ["/v2/"], "notMethods": list(READ)}, [])]


def _unknown_subjects(ing: Ingress) -> list[Object]:
    """A valid token of a listed issuer whose subject is no client's: denied."""
    out = []
    for issuer in ing.issuers:
        subjects = sorted(_subject(c) for c in _clients(ing, "jwt") if c.issuer == issuer.issuer)
        if subjects:
            out.append(_rule(ing, {"requestPrincipals": [f"{issuer.issuer}/*"]}, {},
                             [_when("sub", subjects, negative=True)]))
    return out


def _methods(client: Client) -> list[str]:
    return sorted(WRITE + ["DELETE"]) if client.delete else list(WRITE)


def _denials(ing: Ingress, client: Client) -> list[Object]:
    """What one client may not do: lack a required claim, write outside its prefixes, read outside its read
    prefixes (and /v2/), or use any method but reads, writes and a granted DELETE."""
    source, when = identity(ing, client)
    rules = [_rule(ing, source, {}, when + [_when(k, vs, negative=True)]) for k, vs in client.claims]
    if client.repositories != ("*",):
        rules.append(_rule(ing, source, {"notMethods": list(READ), "notPaths": repository_paths(client.repositories)},
                           when))
    if client.read_repositories != ("*",):
        rules.append(_rule(ing, source, {"methods": list(READ),
                                         "notPaths": ["/v2/", *repository_paths(client.read_repositories)]}, when))
    rules.append(_rule(ing, source, {"notMethods": sorted(READ + _methods(client))}, when))
    return rules


def _allowance(ing: Ingress, client: Client) -> Object:
    source, when = identity(ing, client)
    read: Object = {"methods": list(READ)}
    if client.read_repositories != ("*",):
        read["paths"] = ["/v2/", *repository_paths(client.read_repositories)]
    write: Object = {"methods": _methods(client)}
    if client.repositories != ("*",):
        write["paths"] = repository_paths(client.repositories)
    rule: Object = {"from": [{"source": source}],
                    "to": [{"operation": {"hosts": _hosts(ing), **op}} for op in (read, write)]}
    when = when + [_when(k, vs) for k, vs in client.claims]
    return {**rule, "when": when} if when else rule


def _policy(cfg: Config, suffix: str, action: str, rules: list[Object]) -> Object:
    selector = {"matchLabels": dict(sorted(_ingress(cfg).gateway.selector.items()))}
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": _meta(cfg, suffix),
            "spec": {"selector": selector, "action": action, "rules": rules}}


def deny(cfg: Config) -> Object:
    ing = _ingress(cfg)
    rules = [*_unauthenticated(ing), *_unknown_subjects(ing)]
    for client in ing.clients:
        rules += _denials(ing, client)
    return _policy(cfg, "-deny", "DENY", rules)


def allow(cfg: Config) -> Object:
    ing = _ingress(cfg)
    ping = [_rule(ing, None, {"paths": ["/v2/"], "methods": list(READ)}, [])] if _clients(ing, "jwt") else []
    return _policy(cfg, "-allow", "ALLOW", ping + [_allowance(ing, c) for c in ing.clients])


def objects(cfg: Config) -> list[Object]:
    """Every ingress object, in the order they can be applied: policies before the route that needs them."""
    ing = cfg.ingress
    if ing is None:
        return []
    return [*([ca_secret(cfg)] if _clients(ing, "mtls") else []),
            *([request_authentication(cfg)] if _clients(ing, "jwt") else []),
            deny(cfg), *([allow(cfg)] if ing.gateway.dedicated else []),
            gateway(cfg), virtual_service(cfg)]


def notices(cfg: Config) -> list[str]:
    ing = cfg.ingress
    if ing is None:
        return []
    out = []
    if not ing.clients:
        out.append(f"ingress {ing.host}: no clients, so every request to it is denied; add spec.ingress.clients")
    if "." not in ing.host:
        out.append(f"ingress {ing.host}: a host without a dot never reaches the registry: Istio reads a VirtualService "
                   f"host without one as the short name of a Service in its namespace "
                   f"({ing.host}.{ing.gateway.namespace}.svc.cluster.local), which no Gateway server names; use the "
                   "fully qualified name clients push to")
    if _clients(ing, "jwt") and not ing.gateway.dedicated:
        out.append(f"ingress: the RequestAuthentication applies to every host on the gateway pods "
                   f"({selector(ing.gateway.selector)} in {ing.gateway.namespace}): a request to any of them with a "
                   "bearer token that is not a valid JWT of a listed issuer is refused with 401; see docs/ingress.md")
    return out

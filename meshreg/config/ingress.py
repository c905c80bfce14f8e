"""Reads `spec.ingress`: writers outside the cluster, through an Istio ingress gateway, each a client with a
certificate (mtls) or tokens of one issuer (jwt), and the repositories it may write and read."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from meshreg.config import names
from meshreg.config.model import INGRESS_METHODS, Client, Ingress, IngressGateway, Issuer, Registry
from meshreg.config.reader import REQUIRED, Reader
from meshreg.config.registries import read_labels, read_prefixes
from meshreg.config.source import Path
from meshreg.pki.material import public_material

_GW = IngressGateway()
_KEYS: dict[str, object] = {"host": REQUIRED, "registry": None, "credentialName": REQUIRED, "clientCA": "ingress-ca",
                             "gateway": {}, "issuers": [], "clients": []}
_GATEWAY_KEYS = {"namespace": _GW.namespace, "selector": dict(_GW.selector), "serviceAccount": _GW.service_account,
                 "port": _GW.port, "dedicated": _GW.dedicated}
_CLIENT_KEYS = {"name": REQUIRED, "method": REQUIRED, "repositories": REQUIRED, "readRepositories": None,
                "delete": False, "issuer": None, "subject": None, "claims": None}
_JWT_ONLY = ("issuer", "subject", "claims")
_CLAIM = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_RESERVED_CLAIMS = {"iss": "issuer", "sub": "subject", "aud": "the issuer's audiences"}
_PRIVATE_JWK = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def read_ingress(r: Reader, value: object, path: Path, *, registries: tuple[Registry, ...], namespace: str) -> Ingress:
    m = r.mapping(value, path, _KEYS)
    host = r.attempt(lambda: r.string(m["host"], path + ("host",), _check_host))
    credential = r.attempt(lambda: r.string(m["credentialName"], path + ("credentialName",), names.check_subdomain))
    registry = r.attempt(lambda: _read_registry(r, m["registry"], path + ("registry",), registries))
    gateway = r.attempt(lambda: _read_gateway(r, m["gateway"], path + ("gateway",)))
    with r.guard():
        _check_gateway_identity(r, gateway.value, registry.value, namespace, path + ("gateway", "serviceAccount"))
    issuers = r.attempt(lambda: _read_issuers(r, m["issuers"], path + ("issuers",)))
    clients = r.attempt(lambda: _read_clients(r, m["clients"], path + ("clients",), issuers=issuers.value,
                                              registry=registry.value))
    ca_dir = r.string(m["clientCA"], path + ("clientCA",), lambda v: None if v.strip() else "empty: name a directory")
    resolved = os.path.join(os.path.dirname(r.source.name), ca_dir)
    material = public_material(resolved)
    return Ingress(
        host=host.value, registry=registry.value.name, credential_name=credential.value, client_ca=resolved,
        gateway=gateway.value, issuers=issuers.value, clients=clients.value,
        ca_pem=material[0] if material else None, crl_pem=material[1] if material else None)


def _read_registry(r: Reader, value: object, path: Path, registries: tuple[Registry, ...]) -> Registry:
    """The registry named (default: the default one); never a mirror."""
    name = next(reg.name for reg in registries if reg.default) if not r.given(value) else r.string(value, path)
    reg = next((x for x in registries if x.name == name), None)
    if reg is None:
        r.fail(path, f"no registry named {name!r} (registries: {', '.join(x.name for x in registries)})")
    if reg.role == "mirror":
        r.fail(path, f"{name!r} is a mirror: nobody writes a pull-through cache, from outside either")
    return reg


def _read_gateway(r: Reader, value: object, path: Path) -> IngressGateway:
    m = r.mapping(value, path, _GATEWAY_KEYS)
    selector = r.attempt(lambda: _read_selector(r, m["selector"], path + ("selector",)))
    namespace = r.attempt(lambda: r.string(m["namespace"], path + ("namespace",), names.check_label))
    account = r.attempt(lambda: r.string(m["serviceAccount"], path + ("serviceAccount",), names.check_subdomain))
    port = r.attempt(lambda: _read_gateway_port(r, m["port"], path + ("port",)))
    dedicated = r.attempt(lambda: r.boolean(m["dedicated"], path + ("dedicated",)))
    return IngressGateway(namespace=namespace.value, selector=selector.value, service_account=account.value,
                          port=port.value, dedicated=dedicated.value)


def _read_selector(r: Reader, value: object, path: Path) -> dict[str, str]:
    selector = r.mapping(value, path, _any_keys(value))
    if not selector:
        r.fail(path, "empty: name the labels of the gateway's pods (e.g. istio: ingressgateway)")
    read_labels(r, selector, path, expected_key="e.g. istio or app.kubernetes.io/name",
                expected_value="letters, digits, '-', '_', '.'; at most 63; no wildcards")
    return dict(selector)


def _check_gateway_identity(r: Reader, gateway: IngressGateway, registry: Registry, namespace: str,
                            path: Path) -> None:
    """The gateway writes for its clients only: it must not also be the node proxy, a writer or the publisher."""
    identity = gateway.identity
    if identity == f"{namespace}/node-proxy":
        r.fail(path, f"{identity!r} is the node proxy, which serves unauthenticated reads")
    for j, writer in enumerate(registry.writers):
        if writer.service_account == identity:
            r.fail(path, f"{identity!r} is also writers[{j}] of registry {registry.name!r}; what the gateway may "
                         "write follows from its clients, so remove it there")
    if registry.publisher == identity:
        r.fail(path, f"{identity!r} is also the publisher of registry {registry.name!r}; clients of the ingress "
                     "publish through it, so name another publisher")


def _read_gateway_port(r: Reader, value: object, path: Path) -> int:
    port = r.integer(value, path, low=1, high=65535)
    if port in names.ISTIO_RESERVED_PORTS:
        r.fail(path, f"{port} is a port the Istio proxy keeps for itself")
    return port


def _read_issuers(r: Reader, value: object, path: Path) -> tuple[Issuer, ...]:
    items = r.sequence(value, path, "a list of issuers ({issuer: ..., audiences: [...], jwksUri: https://...})")
    read = r.each(items, path, lambda item, p: _read_issuer(r, item, p))
    with r.checks():
        seen: set[str] = set()
        for i, attempt in enumerate(read):
            issuer = attempt.value.issuer if attempt.ok else None
            if issuer in seen:
                r.record(path + (i, "issuer"), f"{issuer!r} is listed twice")
            elif issuer is not None:
                seen.add(issuer)
    return tuple(a.value for a in read)


def _read_issuer(r: Reader, value: object, p: Path) -> Issuer:
    m = r.mapping(value, p, {"issuer": REQUIRED, "audiences": REQUIRED, "jwks": None, "jwksUri": None})
    issuer = r.attempt(lambda: r.string(m["issuer"], p + ("issuer",), _check_token_text))
    audiences = r.attempt(lambda: _read_audiences(r, m["audiences"], p + ("audiences",)))
    jwks = r.attempt(lambda: r.string(m["jwks"], p + ("jwks",), check_jwks, nullable=True))
    jwks_uri = r.attempt(lambda: r.string(m["jwksUri"], p + ("jwksUri",), _check_jwks_uri, nullable=True))
    if (m["jwks"] is None) == (m["jwksUri"] is None):
        r.fail(p, "set exactly one of jwks (the key set, inline) or jwksUri (where istiod fetches it)")
    return Issuer(issuer=issuer.value, audiences=audiences.value, jwks=jwks.value, jwks_uri=jwks_uri.value)


def _read_audiences(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    audiences = r.strings(value, path, _check_token_text)
    if not audiences:
        r.fail(path, "empty: name the audience tokens for this registry carry (a token minted for another service "
                     "must not push here)")
    return tuple(audiences)


def _read_clients(r: Reader, value: object, path: Path, *, issuers: tuple[Issuer, ...],
                  registry: Registry) -> tuple[Client, ...]:
    items = r.sequence(value, path, "a list of clients ({name: ..., method: mtls|jwt, repositories: [...]})")
    read = r.each(items, path, lambda item, p: _read_client(r, item, p, issuers=issuers, registry=registry))
    with r.checks():
        for i, attempt in enumerate(read):
            if attempt.ok:
                _check_unique_client(r, attempt.value, [(j, a.value) for j, a in enumerate(read[:i]) if a.ok],
                                     path + (i,))
    return tuple(a.value for a in read)


def _check_unique_client(r: Reader, client: Client, others: list[tuple[int, Client]], path: Path) -> None:
    """A client's name names one client, and a token (issuer and subject) one client."""
    for j, other in others:
        if other.name == client.name:
            r.record(path + ("name",), f"{client.name!r} is already the name of clients[{j}]")
        elif client.method == "jwt" and (other.issuer, other.subject) == (client.issuer, client.subject):
            r.record(path + ("subject",), f"clients[{j}] already has issuer {client.issuer!r} and subject "
                                          f"{client.subject!r}: a token must name one client")


def _read_client(r: Reader, value: object, p: Path, *, issuers: tuple[Issuer, ...], registry: Registry) -> Client:
    m = r.mapping(value, p, _CLIENT_KEYS)
    name = r.attempt(lambda: r.string(m["name"], p + ("name",), names.check_label))
    method = r.attempt(lambda: r.string(m["method"], p + ("method",), _check_method))
    repositories = r.attempt(lambda: read_prefixes(r, m["repositories"], p + ("repositories",)))
    read = r.attempt(lambda: repositories.value if m["readRepositories"] is None else
                     read_prefixes(r, m["readRepositories"], p + ("readRepositories",)))
    delete = r.attempt(lambda: r.boolean(m["delete"], p + ("delete",)))
    if delete.get() and not registry.delete_enabled:
        r.record(p + ("delete",),
                 f"grants DELETE but registry {registry.name!r} has deleteEnabled false; enable it first")
    if method.value == "mtls":
        with r.checks():
            for key in _JWT_ONLY:
                if m[key] is not None:
                    r.record(p + (key,), f"only a jwt client has {key} (this one presents a client certificate)")
    jwt = r.attempt(lambda: None if method.value == "mtls" else _read_jwt(r, m, p, issuers))
    client = Client(name=name.value, method=method.value, repositories=repositories.value,
                    read_repositories=read.value, delete=delete.value)
    return client if jwt.value is None else replace(client, issuer=jwt.value[0], subject=jwt.value[1],
                                                    claims=jwt.value[2])


def _check_method(value: str) -> str | None:
    if value in INGRESS_METHODS:
        return None
    return f"{value!r} is not an authentication method (expected one of: {', '.join(INGRESS_METHODS)})"


Claims = tuple[tuple[str, tuple[str, ...]], ...]


def _read_jwt(r: Reader, m: dict[str, Any], p: Path, issuers: tuple[Issuer, ...]) -> tuple[str, str, Claims]:
    """A jwt client's issuer, subject and claims."""
    issuer = r.attempt(lambda: _read_client_issuer(r, m["issuer"], p, issuers))
    subject = r.attempt(lambda: r.string(m["subject"], p + ("subject",), _check_pattern) if m["subject"] is not None
                        else r.fail(p, "missing required key 'subject' (the `sub` claim of this client's tokens)"))
    claims = r.attempt(lambda: _read_claims(r, m["claims"], p + ("claims",)))
    return issuer.value, subject.value, claims.value


def _read_client_issuer(r: Reader, value: object, p: Path, issuers: tuple[Issuer, ...]) -> str:
    """A jwt client's issuer: one of spec.ingress.issuers, which may go unsaid when there is only one."""
    if not issuers:
        r.fail(p + ("method",), "a jwt client needs an issuer: list it under spec.ingress.issuers")
    known = [i.issuer for i in issuers]
    issuer = r.string(value, p + ("issuer",), nullable=True)
    if issuer is None and len(known) > 1:
        r.fail(p, f"missing required key 'issuer' (several issuers: {', '.join(known)})")
    if issuer is not None and issuer not in known:
        r.fail(p + ("issuer",), f"{issuer!r} is not in spec.ingress.issuers ({', '.join(known)})")
    return issuer or known[0]


def _read_claims(r: Reader, value: object, path: Path) -> Claims:
    """`claims: {NAME: value or [values]}`, sorted by name."""
    claims = r.mapping(value, path, _any_keys(value))
    read = [r.attempt(partial(_read_claim, r, key, values, path + (key,))) for key, values in claims.items()]
    return tuple(sorted(a.value for a in read))


def _read_claim(r: Reader, key: str, values: object, path: Path) -> tuple[str, tuple[str, ...]]:
    r.string(key, path, _check_claim_name)
    listed = r.strings([values] if isinstance(values, str) else values, path, _check_pattern)
    if not listed:
        r.fail(path, "empty: list the values this claim may take")
    return key, tuple(listed)


def _any_keys(value: object) -> dict[str, object]:
    """Accept whatever keys a user-named mapping has (each is checked after)."""
    return {k: None for k in value} if isinstance(value, dict) else {}


def _check_host(value: str) -> str | None:
    if not names.is_subdomain(value) or ":" in value:
        return f"{value!r} is not a DNS name (lowercase, e.g. registry.example.com; no scheme, port or wildcard)"
    return None


def _check_token_text(value: str) -> str | None:
    if not value or any(c.isspace() for c in value):
        return f"{value!r} must be non-empty and without spaces"
    return None


def _check_pattern(value: str) -> str | None:
    """A subject or claim value as Istio matches it: exact, `prefix*`, `*suffix`, or `*` (any non-empty value)."""
    problem = _check_token_text(value)
    if problem or value == "*" or ("*" not in value[1:-1] and value.count("*") <= 1):
        return problem
    return f"{value!r}: '*' may only stand alone or at one end (exact, prefix*, *suffix), as Istio matches it"


def _check_claim_name(value: str) -> str | None:
    if value in _RESERVED_CLAIMS:
        return f"{value!r} is matched by the client's {_RESERVED_CLAIMS[value]}, not under claims"
    if not _CLAIM.fullmatch(value):
        return f"{value!r} is not a claim name meshreg matches (letters, digits, '_', '.', ':', '-'; no nesting)"
    return None


def _check_jwks_uri(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        return f"{value!r} is not an https:// URL (keys fetched over plain HTTP could be swapped on the way)"
    return None


def check_jwks(text: str) -> str | None:
    """None if `text` is a JWKS of public asymmetric keys that parse, else what is wrong."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        data = json.loads(text)
    except ValueError as e:
        return f"is not JSON ({e})"
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        return 'is not a JWKS (expected {"keys": [...]} with at least one key)'
    for i, key in enumerate(data["keys"]):
        if not isinstance(key, dict):
            return f"keys[{i}] is not a JWK (a JSON object)"
        if key.get("kty") == "oct":
            return (f"keys[{i}] is a symmetric (oct) key: whoever reads the RequestAuthentication could sign "
                    "tokens; use the issuer's public RSA, EC or OKP key")
        private = sorted(_PRIVATE_JWK & set(key))
        if private:
            return f"keys[{i}] holds private key parameters ({', '.join(private)}): publish only the public key"
        try:
            KeySet.import_key_set({"keys": [key]})
        except (JoseError, ValueError, TypeError) as e:
            return f"keys[{i}] does not parse as a JWK ({e})"
    return None

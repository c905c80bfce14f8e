"""The routes of the ingress VirtualService that answer a request themselves (a direct response, or an abort fault on
every request), as the gateway's Envoy matches them after its policies: `policy check` follows a request through
the ingress only if no such route refuses it.

Routes are tried in order. One whose match depends on the caller's credentials (the token challenge: no client
certificate, no verified token) is where this stops: what follows it is not decided for every caller alike, and the
challenge is an answer to a ping, not a refusal. Matching is Envoy's: `uri` on the normalized path without its
query, a `:path` header on the normalized path with the query as sent, `queryParams` by name as written (Envoy does
not decode `%XX` in names), and `method`. A request from `policy check` has no body and so no `Content-Type`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from meshreg.objects import Object
from meshreg.policy.rules import Decision

if TYPE_CHECKING:
    from meshreg.config.model import Ingress  # a config with an ingress has loaded it already

_CREDENTIALS = ("x-forwarded-client-cert", "@request.auth.claims.")


def _string_match(spec: dict[str, Any], value: str | None) -> bool:
    """Istio's StringMatch (exact, prefix, regex as a full match) against a value that may be absent."""
    if value is None:
        return False
    if "exact" in spec:
        return value == str(spec["exact"])
    if "prefix" in spec:
        return value.startswith(str(spec["prefix"]))
    if "regex" in spec:
        return re.fullmatch(str(spec["regex"]), value) is not None
    return True  # {}: present


def _query(raw: str) -> dict[str, str]:
    """Query parameters as Envoy's route matcher sees them: split at `&`, names not decoded, first value wins."""
    out: dict[str, str] = {}
    for pair in raw.split("?", 1)[1].split("&") if "?" in raw else []:
        name, _, value = pair.partition("=")
        out.setdefault(name, value)
    return out


def _depends_on_caller(match: Object) -> bool:
    names = [*match.get("headers", {}), *match.get("withoutHeaders", {})]
    return any(n.startswith(_CREDENTIALS) for n in names)


def _matches(match: Object, *, method: str, path: str, raw: str) -> bool:
    """Whether one HTTPMatchRequest matches; `path` is normalized, `raw` the path with its query as sent."""
    query = _query(raw)
    full = path + ("?" + raw.split("?", 1)[1] if "?" in raw else "")
    headers = {":path": full, ":method": method}
    checks = [_string_match(match["uri"], path)] if "uri" in match else []
    checks += [_string_match(match["method"], method)] if "method" in match else []
    checks += [_string_match(spec, headers.get(name)) for name, spec in match.get("headers", {}).items()]
    checks += [_string_match(spec, query.get(name)) for name, spec in match.get("queryParams", {}).items()]
    return all(checks)


def _virtual_service(objects: list[Object], ingress: Ingress) -> Object | None:
    for obj in objects:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        if obj.get("kind") == "VirtualService" and meta.get("namespace") == ingress.gateway.namespace \
                and ingress.host in spec.get("hosts", []):
            return obj
    return None


def refusal(objects: list[Object], ingress: Ingress, *, method: str, path: str, raw: str) -> Decision | None:
    """The DENY of the first route that answers this request itself, or None when it goes on to the registry."""
    vs = _virtual_service(objects, ingress)
    if vs is None:
        return None
    for route in vs.get("spec", {}).get("http", []):
        matches = route.get("match") or [{}]
        if any(_depends_on_caller(m) for m in matches):
            return None
        if not any(_matches(m, method=method, path=path, raw=raw) for m in matches):
            continue
        status = _answer(route)
        if status is None:
            return None
        return Decision("DENY", f"VirtualService/{vs['metadata']['name']}", None,
                        f"the route {route.get('name', '?')} answers {status} itself")
    return None


def _answer(route: Object) -> int | None:
    """The status a route answers every request it matches with itself, or None when it passes requests on."""
    if "directResponse" in route:
        return int(route["directResponse"]["status"])
    abort = (route.get("fault") or {}).get("abort") or {}
    if "httpStatus" in abort and float((abort.get("percentage") or {}).get("value", 100)) >= 100:
        return int(abort["httpStatus"])
    return None

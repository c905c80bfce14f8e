"""The ingress routes that answer a request themselves instead of passing it to the registry: a cross-repository
blob mount, and a token in the query string.

Both are decided by what AuthorizationPolicies cannot see: the query string and the body. So they are routes of
the ingress VirtualService, matched by Envoy after the gateway's policies allowed the request.

A mount (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`) links a blob of another repository into
one the client may write, and so lets it read that blob: it closes a client's read prefixes only if it is refused.
distribution reads `mount` and `from` with Go's `Request.FormValue`, which decodes `%XX` in names (`?m%6Funt=`), and
reads them from a form body too (`application/x-www-form-urlencoded` or `multipart/form-data`, any letter case).
Envoy's query-parameter matcher does not decode names, so the route matches the raw `:path` with a regex that
allows every spelling of `mount`, and the `Content-Type` of a POST. It answers 401 without a challenge: containerd
uploads the blob instead after a 401 to a mount (and fails on anything else), docker and containers/image (skopeo,
podman, buildah) after any error.

A token in `?access_token=` is what Envoy's JWT filter reads by default; the RequestAuthentication names only the
Authorization header (`fromHeaders`), so such a token is never validated, and this route refuses the request with
400, so it is not forwarded to the registry (and its logs) either.

Each refusal is an abort fault on every request the route matches (the route's destination, the registry, is never
reached): Envoy answers the status with the body `fault filter abort`. A `directResponse` could carry a message, but
Istio only has it from 1.15, and an istiod that does not know it drops the whole VirtualService, the ingress with it.
"""

from __future__ import annotations

import copy

from meshreg.config.model import Ingress
from meshreg.objects import Object

# `mount` as a query-string key, in any of the spellings Go's url.ParseQuery decodes to `mount` (`%XX` for any letter,
# either case), after `?` or `&` (or `;`, which Go before 1.17 also split on), with a value.
MOUNT_KEY = "(m|%6[dD])(o|%6[fF])(u|%75)(n|%6[eE])(t|%74)"
MOUNT_PATH = f".*[?&;]{MOUNT_KEY}=.+"
FORM_BODY = "(?i).*(x-www-form-urlencoded|multipart/form-data).*"
MOUNT_STATUS, TOKEN_STATUS = 401, 400


def _refusal(name: str, matches: list[Object], status: int, destination: Object) -> Object:
    return {"name": name, "match": matches, "route": [copy.deepcopy(destination)],
            "fault": {"abort": {"httpStatus": status, "percentage": {"value": 100}}}}


def mount(destination: Object) -> Object:
    """Refuse a cross-repository mount, in the query string or in a form body."""
    return _refusal("refuse-mount", [{"headers": {":path": {"regex": MOUNT_PATH}}},
                                     {"method": {"exact": "POST"}, "headers": {"content-type": {"regex": FORM_BODY}}}],
                    MOUNT_STATUS, destination)


def query_token(destination: Object) -> Object:
    """Refuse a request carrying `access_token` in its query string."""
    return _refusal("refuse-query-token", [{"queryParams": {"access_token": {"regex": ".*"}}}], TOKEN_STATUS,
                    destination)


def routes(ing: Ingress, *, tokens: bool, destination: Object) -> list[Object]:
    """The refusals this ingress needs, in the order they go before any other route (`destination`: the registry's,
    as the route after them has it; never reached)."""
    return [*([mount(destination)] if ing.read_restricted else []),
            *([query_token(destination)] if tokens else [])]


def from_headers() -> list[Object]:
    """Where a RequestAuthentication's jwtRule takes the token from: the Authorization header only."""
    return [{"name": "Authorization", "prefix": "Bearer "}]

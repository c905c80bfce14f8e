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
400 and says where the token goes, so it is not forwarded to the registry (and its logs) either.
"""

from __future__ import annotations

from meshreg.config.model import Ingress
from meshreg.objects import Object

# `mount` as a query-string key, in any of the spellings Go's url.ParseQuery decodes to `mount` (`%XX` for any letter,
# either case), after `?` or `&` (or `;`, which Go before 1.17 also split on), with a value.
MOUNT_KEY = "(m|%6[dD])(o|%6[fF])(u|%75)(n|%6[eE])(t|%74)"
MOUNT_PATH = f".*[?&;]{MOUNT_KEY}=.+"
FORM_BODY = "(?i).*(x-www-form-urlencoded|multipart/form-data).*"
MOUNT_BODY = ('{"errors":[{"code":"DENIED","message":"cross-repository blob mounts are refused here: '
              'upload the blob instead"}]}')
TOKEN_BODY = ('{"errors":[{"code":"DENIED","message":"send the token in the Authorization header '
              '(Bearer); a token in the query string is refused"}]}')


def read_restricted(ing: Ingress) -> bool:
    """Whether some client may read less than every repository: then a mount could read past its prefixes."""
    return any(c.read_repositories != ("*",) for c in ing.clients)


def mount() -> Object:
    """Refuse a cross-repository mount, in the query string or in a form body."""
    return {"name": "refuse-mount",
            "match": [{"headers": {":path": {"regex": MOUNT_PATH}}},
                      {"method": {"exact": "POST"}, "headers": {"content-type": {"regex": FORM_BODY}}}],
            "directResponse": {"status": 401, "body": {"string": MOUNT_BODY}}}


def query_token() -> Object:
    """Refuse a request carrying `access_token` in its query string."""
    return {"name": "refuse-query-token",
            "match": [{"queryParams": {"access_token": {"regex": ".*"}}}],
            "directResponse": {"status": 400, "body": {"string": TOKEN_BODY}}}


def routes(ing: Ingress, *, tokens: bool) -> list[Object]:
    """The refusals this ingress needs, in the order they go before any other route."""
    return [*([mount()] if read_restricted(ing) else []), *([query_token()] if tokens else [])]


def from_headers() -> list[Object]:
    """Where a RequestAuthentication's jwtRule takes the token from: the Authorization header only."""
    return [{"name": "Authorization", "prefix": "Bearer "}]

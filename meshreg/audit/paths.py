"""What the registry does with a path the proxy forwarded: the repository and reference it acts on.

Envoy's normalization (Istio's default) resolves `..` and decodes `%2e` before the proxy forwards a request, but it
keeps `%2F` encoded. distribution (Go's net/http and gorilla/mux) then decodes the whole path, `%2F` included, and
routes on that; a decoded path that is not clean (`/a/../b`, `//`) is not served but answered with a 301 redirect to
the cleaned path. So `POST /v2/builds%2Fapp/blobs/uploads/` opens an upload in `builds/app`, and
`POST /v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/` is redirected without any upload: both facts were seen with a real
Envoy and distribution 2.8 (docs/security.md).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qs, unquote

# distribution's repository name grammar (reference.NameRegexp): lowercase components separated by "/".
_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME: Final = rf"(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)"
_ROUTES: Final = (
    ("manifest", re.compile(rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)")),
    ("upload", re.compile(rf"/v2/{_NAME}/blobs/uploads/(?P<ref>[^/]*)")),
    ("blob", re.compile(rf"/v2/{_NAME}/blobs/(?P<ref>[^/]+)")),
    ("tags", re.compile(rf"/v2/{_NAME}/tags/list")),
    ("catalog", re.compile(r"/v2/_catalog")),
    ("base", re.compile(r"/v2/?")),
)
_DIGEST: Final = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


@dataclass(frozen=True)
class Target:
    """The registry's view of one request path."""

    route: str  # manifest, upload, blob, tags, catalog, base, redirect (the registry cleans and redirects), other
    path: str  # the decoded path the registry routes on (for a redirect: where it redirects to)
    repository: str | None = None
    reference: str | None = None  # a tag or digest (manifests), a digest (blobs), an upload's id
    query: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The first value of a query parameter (`digest`, `mount`, `from`)."""
        return next((v for k, v in self.query if k == name), None)

    @property
    def tag(self) -> str | None:
        """The reference when it is a tag, not a digest."""
        return self.reference if self.route == "manifest" and self.reference and not is_digest(self.reference) \
            else None


def is_digest(value: str) -> bool:
    return _DIGEST.fullmatch(value) is not None


def _clean(path: str) -> str:
    """gorilla/mux's cleanPath: path.Clean, keeping a trailing slash."""
    cleaned = "/" + posixpath.normpath("/" + path).lstrip("/")  # POSIX keeps a leading "//", Go does not
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def target(path: str) -> Target:
    """Where the registry acts for a request with this (already normalized) path and query."""
    raw, _, query = path.partition("?")
    decoded = unquote(raw, errors="surrogateescape")
    params = tuple((k, v) for k, values in parse_qs(query, keep_blank_values=True).items() for v in values)
    cleaned = _clean(decoded)
    if cleaned != decoded:  # not served: redirected to the clean path (repository: where it redirects to)
        inner = _route(cleaned)
        return Target("redirect", cleaned, inner.repository, inner.reference, params)
    return replace(_route(decoded), query=params)


def _route(decoded: str) -> Target:
    """The registry API route of a decoded, clean path."""
    for route, pattern in _ROUTES:
        match = pattern.fullmatch(decoded)
        if match:
            groups = match.groupdict()
            return Target(route, decoded, groups.get("name"), groups.get("ref"))
    return Target("other", decoded)

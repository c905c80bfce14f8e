"""spec.registries[].mirror: a registry that is a pull-through cache of an upstream."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Mirror:
    """A pull-through cache of `upstream` (distribution's proxy mode)."""

    upstream: str
    credentials_secret: str | None = None  # a Secret with keys `username` and `password`
    extra_hosts: tuple[str, ...] = ()  # hosts the upstream redirects blob downloads to

    @property
    def host(self) -> str:
        return urlsplit(self.upstream).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.upstream)
        return parts.port or (443 if parts.scheme == "https" else 80)

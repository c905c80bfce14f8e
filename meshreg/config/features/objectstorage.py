"""spec.registries[].storage.s3: a registry's data in object storage rather than on a claim."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class S3:
    """Object storage through distribution's S3 driver; credentials come from `credentials_secret`, never the file."""

    bucket: str
    region: str
    credentials_secret: str  # a Secret with keys accessKey, secretKey and httpSecret
    endpoint: str | None = None  # None: AWS itself
    root_directory: str | None = None
    redirect: bool = False  # let clients download blobs from presigned S3 URLs instead of through the registry

    @property
    def host(self) -> str:
        if not self.endpoint:
            return f"{self.bucket}.s3.{self.region}.amazonaws.com"
        return urlsplit(self.endpoint).hostname or ""  # an endpoint always has one (config.storage checks it)

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint or "https://x")
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def by_address(self) -> bool:
        """The endpoint names an IP address rather than a host."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def in_cluster(self) -> bool:
        """An endpoint that is a Service of this cluster (no ServiceEntry needed)."""
        labels = self.host.split(".")
        return "svc" in labels[1:]  # name.namespace.svc[.cluster.local]

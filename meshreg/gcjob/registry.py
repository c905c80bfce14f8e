"""The registry API as the gc Job uses it (standard library HTTP): repositories, tags, manifests, deletes.

In the cluster the Job speaks plain HTTP to the registry's Service and its sidecar carries the request over mTLS
as the retention identity, so every delete passes the registry's AuthorizationPolicies like any other write.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

MANIFESTS = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])
_NEXT = re.compile(r'<([^>]+)>;\s*rel="?next"?')


class RegistryError(Exception):
    """The registry answered with an error, or could not be reached."""


@dataclass(frozen=True)
class Manifest:
    """A manifest as read: its digest, its size in bytes, and its JSON."""

    digest: str
    size: int
    body: dict[str, Any]

    @property
    def children(self) -> list[dict[str, Any]]:
        """The manifests an index lists (empty for an image manifest)."""
        return list(self.body.get("manifests") or [])

    @property
    def blobs(self) -> list[dict[str, Any]]:
        """The config and layer descriptors of an image manifest."""
        config = self.body.get("config")
        return ([config] if config else []) + list(self.body.get("layers") or [])


TRANSIENT = (502, 503, 504)  # a registry pod restarting (a rollout, another gc's switch), its sidecar not ready yet


class Client:
    """A registry's API at `base_url` (plain HTTP in the Job: the sidecar carries it over mTLS). A request the
    registry cannot answer now (it restarts: 503, or no connection) is sent again for up to `patience` seconds."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, patience: float = 120.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout, self.patience = timeout, patience

    def _send(self, method: str, path: str,
              headers: dict[str, str] | None = None) -> http.client.HTTPResponse | urllib.error.HTTPError:
        """The response, an error status included; RegistryError when the registry cannot be reached."""
        deadline, wait = time.monotonic() + self.patience, 0.5
        while True:
            try:
                response = self._once(method, path, headers)
            except RegistryError:
                if time.monotonic() > deadline:
                    raise
            else:
                if response.status not in TRANSIENT or time.monotonic() > deadline:
                    return response
                response.close()
            time.sleep(wait)
            wait = min(wait * 2, 5.0)

    def _once(self, method: str, path: str,
              headers: dict[str, str] | None) -> http.client.HTTPResponse | urllib.error.HTTPError:
        request = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            return e
        except (urllib.error.URLError, OSError) as e:
            raise RegistryError(f"{method} {self.base}{path}: {getattr(e, 'reason', e)}") from e

    def _json(self, path: str) -> tuple[dict[str, Any], str | None]:
        with self._send("GET", path) as response:
            if response.status != 200:
                raise RegistryError(f"GET {path}: HTTP {response.status}: {response.read(300)!r}")
            link = _NEXT.search(response.headers.get("Link") or "")
            return json.loads(response.read()), (link.group(1) if link else None)

    def _pages(self, path: str, key: str) -> list[str]:
        out: list[str] = []
        page: str | None = path
        while page:
            body, page = self._json(page)
            out += body.get(key) or []
        return out

    def repositories(self) -> list[str]:
        return sorted(set(self._pages("/v2/_catalog?n=1000", "repositories")))

    def tags(self, repository: str) -> list[str]:
        """The tags of `repository` (none when it has none left)."""
        try:
            return sorted(set(self._pages(f"/v2/{repository}/tags/list?n=1000", "tags")))
        except RegistryError as e:
            if "HTTP 404" in str(e):
                return []
            raise

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        with self._send("GET", f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFESTS}) as response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise RegistryError(f"GET manifest {repository}:{reference}: HTTP {response.status}")
            data = response.read()
            return Manifest(digest=response.headers["Docker-Content-Digest"], size=len(data), body=json.loads(data))

    def blob_json(self, repository: str, digest: str) -> dict[str, Any] | None:
        with self._send("GET", f"/v2/{repository}/blobs/{digest}") as response:
            if response.status != 200:
                return None
            try:
                return json.loads(response.read(4 * 1024 * 1024))
            except ValueError:
                return None

    def blob_size(self, repository: str, digest: str) -> int | None:
        """The size of a blob (layers and configs), or of a manifest (also stored as a blob), in a repository."""
        for kind, headers in (("blobs", {}), ("manifests", {"Accept": MANIFESTS})):
            with self._send("HEAD", f"/v2/{repository}/{kind}/{digest}", headers) as response:
                if response.status == 200:
                    return int(response.headers.get("Content-Length") or 0)
        return None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """DELETE a manifest by digest (distribution also removes every tag pointing at it); False if gone."""
        with self._send("DELETE", f"/v2/{repository}/manifests/{digest}") as response:
            if response.status in (200, 202):
                return True
            if response.status == 404:
                return False
            raise RegistryError(f"DELETE {repository}@{digest}: HTTP {response.status}: {response.read(300)!r}")

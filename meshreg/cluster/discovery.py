"""Discovery answers kept on disk between commands, where and as kubectl keeps them, for as long (6 hours).

A group version's resource list (GET /apis/GROUP/VERSION) is what `up` and doctor ask to learn which of Istio's
and the Gateway API's kinds the server serves. kubectl caches the same answers in
$KUBECACHEDIR (default ~/.kube/cache)/discovery/HOST_PORT/GROUP/VERSION/serverresources.json and trusts a file for
6 hours; meshreg reads and writes those files, so each tool benefits from the other's. Only a served group version
is kept: one the server does not serve is asked again every time (it may be installed in the meantime).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

TTL = 6 * 3600  # seconds: kubectl's default for its discovery cache
_UNSAFE = re.compile(r"[^(\w/.)]")  # kubectl's overlyCautiousIllegalFileCharacters


def directory(server: str, *, environ: dict[str, str] | None = None) -> Path:
    """The cache directory of one API server, as kubectl names it (scheme dropped, `:` and the like as `_`)."""
    env = os.environ if environ is None else environ
    parent = Path(env.get("KUBECACHEDIR") or Path.home() / ".kube" / "cache")
    host = re.sub(r"^https?://", "", server, count=1)
    return parent / "discovery" / _UNSAFE.sub("_", host)


class Cache:
    """The resource lists of one server's group versions; reading never fails (a bad file is a miss), nor does
    writing (a read-only home just means no cache)."""

    def __init__(self, root: Path, *, ttl: float = TTL) -> None:
        self.root, self.ttl = root, ttl

    def _file(self, api_version: str) -> Path:
        """GROUP/VERSION/serverresources.json; the core group's is v1/serverresources.json."""
        return self.root.joinpath(*api_version.split("/"), "serverresources.json")

    def load(self, api_version: str) -> dict[str, Any] | None:
        """The cached resource list of `api_version`, or None when absent, older than the TTL, or unreadable."""
        path = self._file(api_version)
        try:
            if time.time() - path.stat().st_mtime > self.ttl:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("groupVersion") == api_version else None

    def store(self, api_version: str, resources: dict[str, Any]) -> None:
        """Keep a resource list (atomically: a reader never sees half a file)."""
        path = self._file(api_version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8",
                                             prefix=".serverresources-") as f:
                json.dump(resources, f)
            os.chmod(f.name, 0o660)
            os.replace(f.name, path)
        except OSError:
            return

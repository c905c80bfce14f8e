"""OCI images built on the spot (random content, gzipped layers) in an OCI layout for skopeo's `oci:` transport."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# This machine's architecture in OCI terms: a container runtime unpacks only images for its platform.
ARCHITECTURE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class Image:
    layout: Path
    manifest: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @property
    def size(self) -> int:
        """Bytes moved by a copy: manifest, config and layers."""
        m = json.loads(self.manifest)
        return len(self.manifest) + m["config"]["size"] + sum(layer["size"] for layer in m["layers"])

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:latest"


def _blob(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer(size: int) -> tuple[bytes, str]:
    """A gzipped tar holding one file of `size` random bytes, and its diff_id."""
    content = os.urandom(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    # Random bytes do not compress: level 0 (stored deflate blocks) is quick and still a real tar+gzip.
    return gzip.compress(tar_bytes, compresslevel=0, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def build(layout: Path, *, layer_sizes: tuple[int, ...] = (4096,), created: str | None = None) -> Image:
    """Write an OCI layout at `layout` with one image tagged `latest`; content differs on every call.
    `created`: the config's build time (RFC 3339), which retention reads."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    layers, diff_ids = [], []
    for size in layer_sizes:
        gz, diff_id = _layer(size)
        layers.append(_blob(layout, gz, LAYER))
        diff_ids.append(diff_id)
    config = {"architecture": ARCHITECTURE, "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, **({"created": created} if created else {})}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": _blob(layout, json.dumps(config).encode(), CONFIG),
                           "layers": layers}, indent=2).encode()
    desc = _blob(layout, manifest, MANIFEST)
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return Image(layout=layout, manifest=manifest)

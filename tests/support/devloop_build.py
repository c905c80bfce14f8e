"""A container build without a docker daemon, for Tilt's custom_build and Skaffold's custom builder in the tests:
`python3 devloop_build.py CONTEXT REF` adds CONTEXT/hello.txt as /hello.txt on top of the base image in the OCI
layout $DEVLOOP_BASE (a busybox image), sets the command to print it and sleep, and pushes REF with skopeo.

Standard library and skopeo only: Tilt and Skaffold run it as a plain command, as they would a user's build script.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
COMMAND = ["sh", "-c", "cat /hello.txt && exec sleep 3600"]


def blob(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def read(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def layer(content: bytes) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode = len(content), 0o644
        tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    return gzip.compress(data, mtime=0), "sha256:" + hashlib.sha256(data).hexdigest()


def build(context: Path, base: Path, out: Path) -> None:
    shutil.copytree(base, out)
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads(read(out, index["manifests"][0]["digest"]))
    config = json.loads(read(out, manifest["config"]["digest"]))
    gz, diff_id = layer((context / "hello.txt").read_bytes())
    manifest["layers"].append(blob(out, gz, LAYER))
    config["rootfs"]["diff_ids"].append(diff_id)
    config.setdefault("config", {})["Cmd"] = COMMAND
    manifest["config"] = blob(out, json.dumps(config).encode(), manifest["config"].get("mediaType", CONFIG))
    desc = blob(out, json.dumps(manifest).encode(), manifest.get("mediaType", MANIFEST))
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))


def main(context: str, ref: str) -> int:
    base = Path(os.environ["DEVLOOP_BASE"])
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(context), base, Path(tmp) / "image")
        push = ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--retry-times", "3",
                f"oci:{tmp}/image:latest", f"docker://{ref}"]
        print("+", " ".join(push), flush=True)
        return subprocess.run(push, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

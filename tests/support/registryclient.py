"""A registry client for the fault and load tests, standard library only: it runs on this host and, shipped in a
ConfigMap, in writer pods (with the lab's Python image) behind their sidecars.

It pushes as docker does: per layer a HEAD (already there?), a POST opening an upload, the bytes in PATCH chunks, a
PUT with the digest; several layers at once; then the manifest. A layer that fails is retried from the start, like
docker (5 attempts, waiting 1, 2, 4, 8 s). Layers are seeded random bytes, so anyone can recompute their digests.
Every request is recorded (what, status or error, seconds, bytes) for the figures.

    python registryclient.py push --base URL --repo R --writer W --seconds 120 [--shared 2] [--layers 3] ...
    python registryclient.py pull --base URL --repo R --tag T        # and checks every digest
prints one JSON line: `REGISTRY-CLIENT {...}`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = f"{MANIFEST}, {INDEX}, application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
CHUNK = 1 << 20  # PATCH size, as docker sends a layer in several writes
OUT = "REGISTRY-CLIENT "


def blob(seed: str, size: int) -> bytes:
    """`size` random bytes from `seed`: the same seed, the same bytes, anywhere."""
    return random.Random(seed).randbytes(size)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Record:
    """One request: what, how it ended (an HTTP status, or the error), how long, how many bytes."""

    what: str
    status: int | str
    seconds: float
    size: int = 0
    at: float = 0.0


@dataclass
class Stats:
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)


class Failed(Exception):
    """A request failed (an error status or no answer)."""


class Client:
    """One registry at `base` (http://host:port); a connection per thread."""

    def __init__(self, base: str, stats: Stats | None = None, *, timeout: float = 120.0) -> None:
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.stats, self.timeout = stats or Stats(), timeout
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, what: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        """One request, recorded; Failed unless its status is in `ok` (the body is read: the response is done)."""
        started = time.monotonic()
        try:
            conn = self._conn()
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.data = response.read()  # type: ignore[attr-defined]
        except (OSError, http.client.HTTPException) as e:
            self.local.conn = None
            self.stats.add(Record(what, type(e).__name__, time.monotonic() - started, 0, time.time()))
            raise Failed(f"{method} {path}: {type(e).__name__}: {e}") from e
        size = len(body or b"") + len(response.data)  # type: ignore[attr-defined]
        self.stats.add(Record(what, response.status, time.monotonic() - started, size, time.time()))
        if response.getheader("Connection", "").lower() == "close":
            self.local.conn = None
        if response.status not in ok:
            raise Failed(f"{method} {path}: HTTP {response.status}: {response.data[:200]!r}")  # type: ignore
        return response

    # --- pushing

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        head = self.request("blob-head", "HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        if head.status == 200:
            return digest
        location = self.request("upload-start", "POST", f"/v2/{repo}/blobs/uploads/", ok=(202,)) \
            .getheader("Location", "")
        for start in range(0, len(data), CHUNK):
            part = data[start:start + CHUNK]
            location = self.request("upload-patch", "PATCH", _path(location), part, {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(part) - 1}"}, ok=(202,)).getheader("Location", "")
        sep = "&" if "?" in location else "?"
        self.request("upload-put", "PUT", f"{_path(location)}{sep}digest={digest}", b"", ok=(201,))
        return digest

    def push_image(self, repo: str, tag: str, layers: list[bytes], *, parallel: int = 4, retries: int = 5,
                   created: str | None = None) -> tuple[str, int]:
        """Push an image of `layers` (`parallel` at once, each retried like docker); (manifest digest, bytes)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
            digest_of(layer) for layer in layers]}, **({"created": created} if created else {})}).encode()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            digests = list(pool.map(lambda data: _retried(lambda: self.push_blob(repo, data), retries), layers))
        config_digest = _retried(lambda: self.push_blob(repo, config), retries)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
                               "layers": [{"mediaType": LAYER, "digest": d, "size": len(layer)}
                                          for d, layer in zip(digests, layers, strict=True)]}).encode()
        _retried(lambda: self.request("manifest-put", "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                      {"Content-Type": MANIFEST}, ok=(201,)), retries)
        return digest_of(manifest), sum(len(layer) for layer in layers) + len(config) + len(manifest)

    # --- pulling

    def manifest(self, repo: str, ref: str) -> tuple[str, dict]:
        response = self.request("manifest-get", "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
        data = response.data  # type: ignore[attr-defined]
        return digest_of(data), json.loads(data)

    def pull(self, repo: str, ref: str) -> tuple[str, int]:
        """Pull an image and check every digest; (manifest digest, bytes). Failed on any mismatch."""
        digest, manifest = self.manifest(repo, ref)
        if ref.startswith("sha256:") and digest != ref:
            raise Failed(f"{repo}@{ref}: the manifest's bytes hash to {digest}")
        size = 0
        for desc in [manifest["config"], *manifest["layers"]]:
            data = self.request("blob-get", "GET", f"/v2/{repo}/blobs/{desc['digest']}").data  # type: ignore
            if digest_of(data) != desc["digest"] or len(data) != desc["size"]:
                raise Failed(f"{repo}: blob {desc['digest']} came back as {digest_of(data)} ({len(data)} bytes)")
            size += len(data)
        return digest, size

    def catalog(self) -> list[str]:
        return list(json.loads(self.request("catalog", "GET", "/v2/_catalog?n=1000").data)  # type: ignore
                    .get("repositories") or [])

    def tags(self, repo: str) -> list[str]:
        return list(json.loads(self.request("tags", "GET", f"/v2/{repo}/tags/list").data).get("tags")  # type: ignore
                    or [])


def _path(location: str) -> str:
    """The path and query of an upload's Location (absolute or not)."""
    url = urllib.parse.urlsplit(location)
    return url.path + (f"?{url.query}" if url.query else "")


def _retried(step, retries: int):  # type: ignore[no-untyped-def]
    """`step()`, tried up to `retries` times, waiting 1, 2, 4, ... s between tries (docker's schedule)."""
    for attempt in range(retries):
        try:
            return step()
        except Failed:
            if attempt == retries - 1:
                raise
            time.sleep(min(2 ** attempt, 8))
    return None


def writer_layers(writer: str, n: int, *, layers: int, shared: int, size: int) -> list[bytes]:
    """Image `n` of `writer`: `shared` layers every writer has (the same base), then its own."""
    base = [blob(f"shared-{i}", size) for i in range(shared)]
    return base + [blob(f"{writer}-{n}-{i}", size) for i in range(layers - shared)]


def run_pushes(args: argparse.Namespace) -> dict:
    stats = Stats()
    client = Client(args.base, stats)
    pushed, failed, n = [], [], 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and (args.images == 0 or n < args.images):
        layers = writer_layers(args.writer, n, layers=args.layers, shared=args.shared, size=args.size)
        started = time.monotonic()
        try:
            digest, size = client.push_image(args.repo, f"{args.writer}-{n}", layers, parallel=args.parallel,
                                             retries=args.retries)
            pushed.append({"tag": f"{args.writer}-{n}", "digest": digest, "bytes": size,
                           "seconds": round(time.monotonic() - started, 3), "at": time.time()})
        except Failed as e:
            failed.append({"tag": f"{args.writer}-{n}", "error": str(e)[:300], "at": time.time()})
        n += 1
    return {"writer": args.writer, "repo": args.repo, "pushed": pushed, "failed": failed,
            "requests": [asdict(r) for r in stats.records]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="registryclient")
    parser.add_argument("mode", choices=["push", "pull"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--writer", default="w")
    parser.add_argument("--tag", default="")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--images", type=int, default=0, help="stop after this many (0: only the time limit)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--shared", type=int, default=1)
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--quit-sidecar", action="store_true", help="then let Istio's sidecar exit (pod completes)")
    args = parser.parse_args(argv)
    if args.mode == "push":
        out = run_pushes(args)
    else:
        digest, size = Client(args.base).pull(args.repo, args.tag)
        out = {"digest": digest, "bytes": size}
    print(OUT + json.dumps(out), flush=True)
    if args.quit_sidecar:
        quit_sidecar()
    return 0


def quit_sidecar() -> None:
    """Ask pilot-agent to stop the sidecar, so that the pod completes (best effort)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 15020, timeout=5)
        conn.request("POST", "/quitquitquit")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A registry client for the fault and load tests, standard library only: it runs on this host and, shipped in a
ConfigMap, in writer pods (with the lab's Python image) behind their sidecars.

It pushes as docker does: per layer a HEAD (already there?), a POST opening an upload, the bytes in PATCH chunks, a
PUT with the digest; several layers at once; then the manifest. A layer that fails is retried from the start, like
docker (5 tries, waiting 1, 2, 4, 8 s; `--delays 5,10,15,20` is docker's own push schedule). Layers are seeded
random bytes, so anyone can recompute their digests. Every request is recorded (what, status or error, seconds,
bytes) for the figures.

    python registryclient.py push --base URL --repo R --writer W --seconds 120 [--shared 2] [--layers 3] ...
    python registryclient.py push ... --writer a,b,c --repo r1,r2,r3   # several writers in one process
    python registryclient.py pull --base URL --repo R --tag T        # and checks every digest
prints one JSON line per writer: `REGISTRY-CLIENT {...}`.

For a fault at a known point of an upload, `--pause-at POINT --go-file F` stops the first upload that reaches POINT
(after-post; mid-patch: inside one streamed PATCH with half the layer sent; before-put; before-manifest), prints
`REGISTRY-CLIENT-PAUSED POINT` and goes on once F exists. `--start-at EPOCH` waits until then before pushing (pods
started one after another push together).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TypeVar

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = f"{MANIFEST}, {INDEX}, application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
CHUNK = 1 << 20  # PATCH size, as docker sends a layer in several writes
OUT = "REGISTRY-CLIENT "
T = TypeVar("T")
PAUSED = "REGISTRY-CLIENT-PAUSED "
POINTS = ("after-post", "mid-patch", "before-put", "before-manifest")


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


class Pause:
    """Stops the first upload that reaches `point` until the file `go` exists (a test breaks something meanwhile)."""

    def __init__(self, point: str = "", go: str = "") -> None:
        self.point, self.go, self.done = point, go, threading.Event()
        self.lock = threading.Lock()

    def pending(self, point: str) -> bool:
        return self.point == point and not self.done.is_set()

    def __call__(self, point: str) -> None:
        if not self.pending(point):
            return
        with self.lock:
            if self.done.is_set():
                return
            print(PAUSED + point, flush=True)
            while not os.path.exists(self.go):
                time.sleep(0.2)
            self.done.set()


class Client:
    """One registry at `base` (http://host:port); a connection per thread."""

    def __init__(self, base: str, stats: Stats | None = None, *, timeout: float = 120.0, pause: Pause | None = None,
                 delays: tuple[float, ...] = (1, 2, 4, 8)) -> None:
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.stats, self.timeout = stats or Stats(), timeout
        self.pause = pause or Pause()
        self.delays = delays  # before each further try of a failed layer or manifest: len(delays) + 1 tries
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, what: str, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        """One request, recorded; Failed unless its status is in `ok` (the body is read: the response is done).
        A body given in pieces is sent as they come (Transfer-Encoding: chunked, as docker streams a layer)."""
        started = time.monotonic()
        streamed = body is not None and not isinstance(body, bytes)
        sent = [0]
        if streamed:
            body = _counted(body, sent)  # type: ignore[arg-type]
        try:
            conn = self._conn()
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=streamed)
            response = conn.getresponse()
            response.data = response.read()  # type: ignore[attr-defined]
        except (OSError, http.client.HTTPException) as e:
            self.local.conn = None
            self.stats.add(Record(what, type(e).__name__, time.monotonic() - started, sent[0], time.time()))
            raise Failed(f"{method} {path}: {type(e).__name__}: {e}") from e
        size = (sent[0] if streamed else len(body or b"")) + len(response.data)  # type: ignore
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
        self.pause("after-post")
        location = self._stream(location, data) if self.pause.pending("mid-patch") else self._chunks(location, data)
        self.pause("before-put")
        sep = "&" if "?" in location else "?"
        self.request("upload-put", "PUT", f"{_path(location)}{sep}digest={digest}", b"", ok=(201,))
        return digest

    def _chunks(self, location: str, data: bytes) -> str:
        """The layer in CHUNK-sized PATCHes, each with its Content-Range; the last Location."""
        for start in range(0, len(data), CHUNK):
            part = data[start:start + CHUNK]
            location = self.request("upload-patch", "PATCH", _path(location), part, {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(part) - 1}"}, ok=(202,)).getheader("Location", "")
        return location

    def _stream(self, location: str, data: bytes) -> str:
        """The layer in one streamed PATCH, which pauses at mid-patch with half of it sent."""
        def pieces() -> Iterator[bytes]:
            half = len(data) // 2
            yield from (data[i:min(i + CHUNK, half)] for i in range(0, half, CHUNK))
            self.pause("mid-patch")
            yield from (data[i:i + CHUNK] for i in range(half, len(data), CHUNK))
        return self.request("upload-patch", "PATCH", _path(location), pieces(),
                            {"Content-Type": "application/octet-stream"}, ok=(202,)).getheader("Location", "")

    def push_image(self, repo: str, tag: str, layers: list[bytes], *, parallel: int = 4,
                   created: str | None = None) -> tuple[str, int]:
        """Push an image of `layers` (`parallel` at once, each retried like docker); (manifest digest, bytes)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
            digest_of(layer) for layer in layers]}, **({"created": created} if created else {})}).encode()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            digests = list(pool.map(lambda data: self.retried(lambda: self.push_blob(repo, data)), layers))
        config_digest = self.retried(lambda: self.push_blob(repo, config))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
                               "layers": [{"mediaType": LAYER, "digest": d, "size": len(layer)}
                                          for d, layer in zip(digests, layers, strict=True)]}).encode()
        self.pause("before-manifest")
        self.retried(lambda: self.request("manifest-put", "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                          {"Content-Type": MANIFEST}, ok=(201,)))
        return digest_of(manifest), sum(len(layer) for layer in layers) + len(config) + len(manifest)

    def retried(self, step: Callable[[], T]) -> T:
        """`step()`, tried again after each of `delays` seconds while it fails; its last failure is raised."""
        for delay in self.delays:
            try:
                return step()
            except Failed:
                time.sleep(delay)
        return step()

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


def _counted(pieces: Iterable[bytes], sent: list[int]) -> Iterator[bytes]:
    """`pieces`, counting their bytes into sent[0]."""
    for piece in pieces:
        sent[0] += len(piece)
        yield piece


def writer_layers(writer: str, n: int, *, layers: int, shared: int, size: int) -> list[bytes]:
    """Image `n` of `writer`: `shared` layers every writer has (the same base), then its own."""
    base = [blob(f"shared-{i}", size) for i in range(shared)]
    return base + [blob(f"{writer}-{n}-{i}", size) for i in range(layers - shared)]


def run_pushes(args: argparse.Namespace, writer: str, repo: str) -> dict:
    """`writer` pushes images to `repo` until args.seconds have passed (or args.images are pushed)."""
    stats = Stats()
    client = Client(args.base, stats, pause=Pause(args.pause_at, args.go_file),
                    delays=tuple(float(d) for d in args.delays.split(",")))
    pushed, failed, n = [], [], 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and (args.images == 0 or n < args.images):
        layers = writer_layers(writer, n, layers=args.layers, shared=args.shared, size=args.size)
        started = time.monotonic()
        try:
            digest, size = client.push_image(repo, f"{writer}-{n}", layers, parallel=args.parallel)
            pushed.append({"tag": f"{writer}-{n}", "digest": digest, "bytes": size,
                           "seconds": round(time.monotonic() - started, 3), "at": time.time()})
        except Failed as e:
            failed.append({"tag": f"{writer}-{n}", "error": str(e)[:300], "at": time.time()})
        n += 1
    return {"writer": writer, "repo": repo, "pushed": pushed, "failed": failed,
            "requests": [asdict(r) for r in stats.records]}


def push_all(args: argparse.Namespace) -> list[dict]:
    """Every writer of `--writer a,b,...` pushing at once, each to its `--repo` (one for all, or one each)."""
    writers = args.writer.split(",")
    repos = args.repo.split(",")
    repos = repos * len(writers) if len(repos) == 1 else repos
    if len(repos) != len(writers):
        raise SystemExit(f"{len(writers)} writers but {len(repos)} repositories")
    if args.start_at:  # together with the others: from start-at for --seconds, however late this one started
        time.sleep(max(0.0, args.start_at - time.time()))
        args.seconds = max(0.0, args.start_at + args.seconds - time.time())
    with concurrent.futures.ThreadPoolExecutor(len(writers)) as pool:
        return list(pool.map(lambda pair: run_pushes(args, *pair), zip(writers, repos, strict=True)))


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
    parser.add_argument("--delays", default="1,2,4,8", help="seconds before each further try of a layer")
    parser.add_argument("--start-at", type=float, default=0.0, help="wait until this time (seconds since the epoch)")
    parser.add_argument("--pause-at", default="", choices=["", *POINTS])
    parser.add_argument("--go-file", default="/tmp/go")
    parser.add_argument("--quit-sidecar", action="store_true", help="then let Istio's sidecar exit (pod completes)")
    args = parser.parse_args(argv)
    if args.mode == "push":
        outs = push_all(args)
    else:
        digest, size = Client(args.base).pull(args.repo, args.tag)
        outs = [{"digest": digest, "bytes": size}]
    for out in outs:
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

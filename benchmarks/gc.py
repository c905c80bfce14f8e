"""Registry throughput on S3 (moto) against the filesystem, and retention + garbage-collect time for 1,000 tags.

Run: python benchmarks/gc.py   (needs docker-registry, skopeo and moto[server]; about 3 minutes)

Throughput: skopeo pushes and pulls one image with a 64 MiB layer straight to distribution 2.8 (no Envoy: the
storage is what differs), median of 3. GC: 1,000 tags in one repository (each its own manifest and config, one
shared 1 MiB layer); retention keeps the newest 100 through the registry API with meshreg's gc Job code, then
distribution's garbage-collect sweeps. moto keeps objects in memory on this machine, so the S3 row measures the
driver's request pattern rather than a real network.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from meshreg import config as configs
from meshreg.gcjob.inventory import Reader
from meshreg.gcjob.registry import Client
from meshreg.gcjob.retention import select
from meshreg.render import render
from meshreg.retention import Retention, Rule
from support.lab import images
from support.lab.clients import skopeo_copy
from support.lab.objectstore import S3
from support.lab.processes import NO_AWS, Server, free_port

RUNS = 3
LAYER = 64 * 1024 * 1024
TAGS = 1000


def registry(root: Path, storage: str, env: dict) -> tuple[Server, str]:
    text = ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: bench}\nspec:\n"
            f"  registry: {{deleteEnabled: true, storage: {storage}}}\n")
    cfg = configs.from_text(text, name="bench.yaml")
    conf = root / "config.yml"
    conf.write_text(next(o for o in render(cfg) if o["metadata"]["name"] == "registry-config")["data"]["config.yml"])
    port = free_port()
    server = Server(["docker-registry", "serve", str(conf)], log=root / "registry.log",
                    env={**NO_AWS, **env, "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"})
    server.wait_http(f"http://127.0.0.1:{port}/v2/")
    return server, f"127.0.0.1:{port}"


def throughput(address: str, root: Path) -> tuple[float, float]:
    pushes, pulls = [], []
    for i in range(RUNS):
        image = images.build(root / f"img-{i}", layer_sizes=(LAYER,))
        start = time.perf_counter()
        assert skopeo_copy(image.ref, f"docker://{address}/bench/app:{i}", timeout=600).returncode == 0
        pushes.append(image.size / (time.perf_counter() - start) / 1e6)
        start = time.perf_counter()
        assert skopeo_copy(f"docker://{address}/bench/app:{i}", f"oci:{root / f'pull-{i}'}:x",
                           timeout=600).returncode == 0
        pulls.append(image.size / (time.perf_counter() - start) / 1e6)
    return statistics.median(pushes), statistics.median(pulls)


def put_tags(address: str, n: int) -> None:
    """n tags in bench/many, each its own manifest and config, all sharing one layer; built on successive days."""
    base = f"http://{address}/v2/bench/many"
    with httpx.Client(timeout=60) as http:
        def blob(data: bytes) -> dict:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            location = http.post(f"{base}/blobs/uploads/").headers["location"]
            assert http.put(f"http://{address}{location}&digest={digest}", content=data).status_code == 201
            return {"digest": digest, "size": len(data)}
        layer = {**blob(os.urandom(1 << 20)), "mediaType": images.LAYER}
        for i in range(n):
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1.7e9 + i * 86400))
            config = {**blob(json.dumps({"created": created, "architecture": "amd64", "os": "linux",
                                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()),
                      "mediaType": images.CONFIG}
            body = json.dumps({"schemaVersion": 2, "mediaType": images.MANIFEST, "config": config,
                               "layers": [layer]}).encode()
            assert http.put(f"{base}/manifests/t{i}", content=body,
                            headers={"Content-Type": images.MANIFEST}).status_code == 201


def gc_time(root: Path) -> tuple[float, float, int]:
    """(retention seconds, garbage-collect seconds, blobs swept) for TAGS tags on the filesystem."""
    server, address = registry(root, "{size: 1Gi}", {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root / "data")})
    try:
        put_tags(address, TAGS)
        client = Client(f"http://{address}")
        start = time.perf_counter()
        inventory = Reader(client).read()
        repo = inventory.repositories["bench/many"]
        plan = select(Retention(rules=(Rule(keep_newest=100),)), "bench/many", repo.tags, children=repo.children,
                      now=time.time())
        for digest in plan.delete_manifests:
            client.delete_manifest("bench/many", digest)
        retention = time.perf_counter() - start
    finally:
        server.stop()
    env = {**os.environ, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root / "data")}
    start = time.perf_counter()
    out = subprocess.run(["docker-registry", "garbage-collect", str(root / "config.yml")], env=env,
                         capture_output=True, text=True, check=True).stdout
    return retention, time.perf_counter() - start, out.count("blob eligible for deletion")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "fs").mkdir()
        (root / "s3").mkdir()
        (root / "gc").mkdir()
        print(f"{'storage':<12}{'push MB/s':>12}{'pull MB/s':>12}   (64 MiB layer, median of {RUNS})")
        fs, address = registry(root / "fs", "{size: 1Gi}",
                               {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root / "fs" / "data")})
        try:
            push, pull = throughput(address, root / "fs")
            print(f"{'filesystem':<12}{push:>12.1f}{pull:>12.1f}")
        finally:
            fs.stop()
        s3 = S3(root / "s3", "bench")
        storage = f"{{s3: {{bucket: bench, region: us-east-1, credentialsSecret: s, endpoint: '{s3.url}'}}}}"
        keys = {"REGISTRY_STORAGE_S3_ACCESSKEY": "a", "REGISTRY_STORAGE_S3_SECRETKEY": "b"}
        server, address = registry(root / "s3", storage, keys)
        try:
            push, pull = throughput(address, root / "s3")
            print(f"{'s3 (moto)':<12}{push:>12.1f}{pull:>12.1f}")
        finally:
            server.stop()
            s3.server.stop()
        retention, sweep, blobs = gc_time(root / "gc")
        print(f"{TAGS} tags: retention (keep newest 100) {retention:.1f} s, garbage-collect {sweep:.1f} s "
              f"({blobs} blobs swept)")


if __name__ == "__main__":
    main()

"""A full volume on real pods: the registry's claim is bound to a `local` PersistentVolume on a 64 MiB tmpfs (the
kubelet measures it with statfs, and it really fills up). A writer behind its sidecar pushes until a push fails; what
the client sees is recorded; `meshreg status` and `meshreg doctor` show the usage and say the volume is full; every
image stored before still pulls back identical; `meshreg gc` (retention, then garbage-collect) frees space and pushes
work again; filled again, a larger tmpfs (what growing a disk does) makes pushes work again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from support import faults
from support.registryclient import Client

PORT = 5248
REGISTRY = f"http://127.0.0.1:{PORT}"  # the node proxy's hostPort on this host (the node)
NAMESPACE, WRITERS = "fl-full", "fl-fullw"
CONFIG = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAMESPACE}}}
spec:
  namespace: {NAMESPACE}
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry:
    deleteEnabled: true
    storage: {{size: 64Mi}}
    gc: {{schedule: "0 3 * * 0", deleteUntagged: true, image: "{faults.PYTHON_IMAGE}", timeout: 20m}}
    retention: {{rules: [{{repositories: [fill/], keepNewest: 1}}]}}
  writers: [{{serviceAccount: {WRITERS}/pusher}}]
"""
LAYER = 4 << 20
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


def figure(name: str, **values: object) -> None:
    line = json.dumps({"figure": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **values})
    print("FIGURE", line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


@pytest.fixture(scope="module")
def registry(stack, tmp_path_factory):
    faults.sweep(stack, NAMESPACE, WRITERS)
    faults.python_image(stack)
    with faults.deployed(stack, tmp_path_factory.mktemp(NAMESPACE), CONFIG, accounts=(f"{WRITERS}/pusher",),
                         volume="local") as it:
        faults.client_config_map(stack, WRITERS)
        yield it


def push(stack, name: str, repo: str, images: int) -> dict:
    """A writer pod pushing `images` images of 2 layers of 4 MiB to `repo` (few retries: a full disk stays full)."""
    stack.apply(faults.writer_pod(WRITERS, name, "pusher", [
        "push", "--base", f"http://registry.{NAMESPACE}.svc.cluster.local:5000", "--repo", repo, "--writer", name,
        "--images", str(images), "--layers", "2", "--shared", "0", "--size", str(LAYER), "--parallel", "4",
        "--delays", "1"], node=stack.node))
    return faults.client_result(stack, WRITERS, name)


def usage(instance: faults.Instance) -> tuple[int, int]:
    """The volume's (used, capacity) bytes as `meshreg status -o json` shows them (0, 0 while unknown)."""
    found = instance.json("status", check=False)
    volume = found["registries"][0].get("volume") or {}
    return int(volume.get("usedBytes") or 0), int(volume.get("capacityBytes") or 0)


def until_usage(instance: faults.Instance, condition, *, timeout: float = 240) -> tuple[int, int]:
    """Wait until the kubelet's figures (it measures volumes about once a minute) satisfy `condition`."""
    deadline = time.monotonic() + timeout
    while True:
        used, capacity = usage(instance)
        if capacity and condition(used, capacity):
            return used, capacity
        assert time.monotonic() < deadline, f"volume usage stayed at {used} of {capacity} bytes"
        time.sleep(5)


def full(used: int, capacity: int) -> bool:
    return used >= capacity * 0.98


def fill(stack, name: str) -> dict:
    """Push to fill/app until pushes fail; the writer's result."""
    result = push(stack, name, "fill/app", 12)  # 96 MiB of layers for a 64 MiB volume
    assert result["pushed"] and result["failed"], result["failed"] or "nothing failed"
    return result


def cut_links(instance: faults.Instance) -> list[str]:
    """`REPO/blobs/DIGEST` of each layer link distribution left empty: it writes a link in place, so ENOSPC cuts it
    to nothing, and a HEAD of that layer in that repository then answers 500."""
    repositories = instance.volumes[0].directory / "docker/registry/v2/repositories"
    return sorted(f"{link.parent.parent.parent.parent.relative_to(repositories)}/blobs/sha256:{link.parent.name}"
                  for link in repositories.glob("**/_layers/sha256/*/link") if link.stat().st_size == 0)


def intact(client: Client, pushed: list[tuple[str, str]]) -> None:
    """Every image in `pushed` (repository, digest) pulls back with every digest checked."""
    for repo, digest in pushed:
        assert client.pull(repo, digest)[0] == digest


def test_a_full_volume_is_reported_refuses_pushes_clearly_loses_nothing_and_recovers(stack, registry):
    client = Client(REGISTRY)
    kept = push(stack, "keep", "keep/base", 1)
    assert len(kept["pushed"]) == 1, kept["failed"]
    filled = fill(stack, "fill-1")
    errors = [f["error"] for f in filled["failed"]]
    log = stack.kubectl("-n", NAMESPACE, "logs", "deploy/registry", "-c", "registry", check=False).stdout
    cut = cut_links(registry)
    figure("full-volume-push", errors=errors, cut_links=cut, no_space_in_log=log.count("no space left on device"),
           requests=sorted({f"{r['what']} {r['status']}" for r in filled["requests"]}))
    # through the sidecar the client sees the registry's own answer: 500, UNKNOWN with the failed write in the detail
    assert all(": HTTP 500: " in e for e in errors), errors
    assert any('"code":"UNKNOWN"' in e and "_uploads" in e for e in errors), errors
    assert "no space left on device" in log
    used, capacity = until_usage(registry, full)
    status = registry.meshreg("status", check=False)
    doctor = registry.meshreg("doctor", check=False)
    figure("full-volume", client_error=errors[0], used=used, capacity=capacity,
           status=[line.strip() for line in status.stdout.splitlines() if "volume" in line],
           doctor=[line.strip() for line in doctor.stdout.splitlines() if "volume" in line.lower()],
           pushed_before_full=len(filled["pushed"]), failed=len(filled["failed"]))
    assert status.returncode == 1 and "FULL" in status.stdout, status.stdout
    assert doctor.returncode != 0 and "volume" in doctor.stdout and "full" in doctor.stdout, doctor.stdout
    stored = [("keep/base", kept["pushed"][0]["digest"])] + [("fill/app", p["digest"]) for p in filled["pushed"]]
    intact(client, stored)

    gc = registry.meshreg("gc", timeout=900)  # retention keeps fill/app's newest; garbage-collect frees the rest
    after_gc = push(stack, "after-gc", "keep/after-gc", 1)
    assert len(after_gc["pushed"]) == 1, after_gc["failed"]
    freed = until_usage(registry, lambda u, c: not full(u, c))
    status = registry.meshreg("status", check=False)
    intact(client, [stored[0], stored[-1], ("keep/after-gc", after_gc["pushed"][0]["digest"])])
    assert "FULL" not in status.stdout, status.stdout

    refilled = fill(stack, "fill-2")
    registry.volumes[0].resize("128Mi")  # what growing the disk under the volume does
    after_resize = push(stack, "after-resize", "keep/after-resize", 1)
    grown = until_usage(registry, lambda u, c: c > capacity)
    figure("full-volume-recovered", gc=gc.stdout.strip().splitlines()[-3:], after_gc=freed, after_resize=grown,
           refilled_pushed=len(refilled["pushed"]), status=[line.strip() for line in registry.meshreg(
               "status", check=False).stdout.splitlines() if "volume" in line],
           cut_links=cut_links(registry), head_of_cut_links={
               link: client.request("blob-head", "HEAD", f"/v2/{link}", ok=(200, 404, 500)).status
               for link in cut_links(registry)})
    assert len(after_resize["pushed"]) == 1, after_resize["failed"]
    intact(client, [stored[0], ("keep/after-gc", after_gc["pushed"][0]["digest"]),
                    ("keep/after-resize", after_resize["pushed"][0]["digest"])]
           + [("fill/app", p["digest"]) for p in refilled["pushed"]])

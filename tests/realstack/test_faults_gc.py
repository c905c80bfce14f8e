"""gc on real pods: the Job runs its garbage-collect as the registry image's own binary (no shell: the lab's registry
image has none), pushes in its read-only window are refused cleanly and retried, reads pause only while the registry
restarts, no blob a manifest references is ever deleted (every manifest pulled back after gc with concurrent writers),
and the registry is writable again whenever the Job is stopped: deleted, its pod killed, its deadline reached."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from support import faults
from support.registryclient import Client, Failed

PORT = 5290
REGISTRY = f"http://127.0.0.1:{PORT}"  # the node proxy's hostPort on this host (the node)
WRITERS = "fl-gcw"
CONFIG = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: fl-gc}}
spec:
  namespace: fl-gc
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry:
    deleteEnabled: true
    storage: {{size: 1Gi}}
    gc: {{schedule: "0 3 * * 0", deleteUntagged: true, image: "{faults.PYTHON_IMAGE}", timeout: 20m}}
    retention: {{rules: [{{repositories: [keep/], keepNewest: 2}}]}}
  writers: [{{serviceAccount: {WRITERS}/pusher}}]
"""
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


def figure(name: str, **values) -> None:
    """A figure of this run: printed, and kept in FIGURES for the closing note."""
    line = json.dumps({"figure": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **values})
    print("FIGURE", line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


@pytest.fixture(scope="module")
def registry(stack, tmp_path_factory):
    faults.python_image(stack)
    with faults.deployed(stack, tmp_path_factory.mktemp("fl-gc"), CONFIG, accounts=(f"{WRITERS}/pusher",)) as it:
        faults.client_config_map(stack, WRITERS)
        yield it


def push(stack, name: str, *args: str, seconds: float = 0, images: int = 0) -> dict:
    """Start a writer pod pushing (for `seconds` or `images`); returns the pod's name."""
    base = "http://registry.fl-gc.svc.cluster.local:5000"
    faults.apply(stack, faults.writer_pod(WRITERS, name, "pusher", [
        "push", "--base", base, "--writer", name, "--seconds", str(seconds or 3600), "--images", str(images), *args],
        node=stack.node))
    return {"name": name}


class Poller(threading.Thread):
    """Reads a manifest through the node proxy every 0.2 s, recording when reads fail."""

    def __init__(self, repo: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.repo, self.tag, self.stop = repo, tag, threading.Event()
        self.seen: list[tuple[float, str]] = []

    def run(self) -> None:
        client = Client(REGISTRY, timeout=5)
        while not self.stop.is_set():
            try:
                client.manifest(self.repo, self.tag)
                self.seen.append((time.time(), "ok"))
            except Failed as e:
                self.seen.append((time.time(), str(e).split(": ", 1)[-1][:60]))
            time.sleep(0.2)

    def outages(self) -> list[dict]:
        """Each stretch of failed reads: from, seconds, and how they failed."""
        out: list[dict] = []
        for at, what in self.seen:
            if what == "ok":
                if out and "seconds" not in out[-1]:
                    out[-1]["seconds"] = round(at - out[-1]["from"], 1)
                continue
            if not out or "seconds" in out[-1]:
                out.append({"from": at, "errors": {}})
            out[-1]["errors"][what] = out[-1]["errors"].get(what, 0) + 1
        return out


def verify_everything(client: Client) -> tuple[int, int]:
    """Pull every tag of every repository and check every digest; (manifests, bytes)."""
    manifests = size = 0
    for repo in client.catalog():
        for tag in client.tags(repo):
            size += client.pull(repo, tag)[1]
            manifests += 1
    return manifests, size


def test_gc_during_pushes_refuses_them_cleanly_and_deletes_no_blob_a_manifest_references(stack, registry):
    seed = push(stack, "seed", "--repo", "keep/app", "--layers", "2", "--shared", "0", "--size", "200000",
                images=4)
    assert len(faults.client_result(stack, WRITERS, seed["name"])["pushed"]) == 4
    poller = Poller("keep/app", "seed-3")
    poller.start()
    writers = [push(stack, f"racer-{i}", "--repo", f"race/w{i}", "--layers", "3", "--shared", "1", "--size", "524288",
                    seconds=100) for i in range(3)]
    time.sleep(20)
    gc = registry.meshreg("gc", timeout=900)
    results = [faults.client_result(stack, WRITERS, w["name"], timeout=400) for w in writers]
    time.sleep(3)
    poller.stop.set()
    poller.join()
    client = Client(REGISTRY)
    for result in results:  # every push that succeeded pulls back byte for byte
        for image in result["pushed"]:
            assert client.pull(result["repo"], image["digest"])[0] == image["digest"]
    manifests, size = verify_everything(client)
    window = next(line for line in gc.stdout.splitlines() if "read-only for" in line)
    refused = _refusals(results)
    figure("gc-during-pushes", gc=gc.stdout.strip().splitlines(), window=window,
           pushed=sum(len(r["pushed"]) for r in results), failed=sum(len(r["failed"]) for r in results),
           failures=[f["error"][:160] for r in results for f in r["failed"]], refused_requests=refused,
           pull_outages=poller.outages(), verified_manifests=manifests, verified_bytes=size)
    assert sum(len(r["pushed"]) for r in results) > 0
    assert set(refused) <= {"405", "503", "RemoteDisconnected", "ConnectionResetError", "ConnectionRefusedError",
                            "BrokenPipeError", "IncompleteRead", "TimeoutError"}, refused
    assert sorted(client.tags("keep/app")) == ["seed-2", "seed-3"]  # retention kept the newest two


def _refusals(results: list[dict]) -> dict[str, int]:
    """How the writers' requests that did not succeed ended, counted."""
    out: dict[str, int] = {}
    for result in results:
        for r in result["requests"]:
            status = str(r["status"])
            if status not in ("200", "201", "202", "404"):
                out[status] = out.get(status, 0) + 1
    return out

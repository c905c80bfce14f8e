"""The registry killed in the middle of a push, on real pods: at each point of an upload (after the POST that opens it,
inside a PATCH with half the layer sent, before the PUT that closes it, before the manifest), by SIGKILL of the registry
(its container restarts in place) and by deleting its pod (the Deployment replaces it). A writer behind its sidecar
pushes as docker does (4 layer uploads at once, each layer retried from the start 5 times, 5, 10, 15 and 20 s apart);
its push finishes once the registry is back. Afterwards everything the registry lists pulls back through the node
proxy with every digest checked, every blob on the volume hashes to its name, and the same layers push again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import faults
from support.registryclient import OUT, PAUSED, POINTS, Client

PORT = 5247
REGISTRY = f"http://127.0.0.1:{PORT}"  # the node proxy's hostPort on this host (the node)
NAMESPACE, WRITERS = "fl-kill", "fl-killw"
CONFIG = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAMESPACE}}}
spec:
  namespace: {NAMESPACE}
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry:
    storage: {{size: 1Gi}}
  writers: [{{serviceAccount: {WRITERS}/pusher}}]
"""
WRITER = "writer"  # the pod the pushes run in, one after another (kubectl exec), behind its sidecar
DOCKER = "5,10,15,20"  # docker's push retry schedule (moby distribution/xfer: 5 tries, 5 s more each time)
LAYER = 8 << 20  # big enough that half a PATCH is a real stream
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
    with faults.deployed(stack, tmp_path_factory.mktemp(NAMESPACE), CONFIG, accounts=(f"{WRITERS}/pusher",)) as it:
        faults.client_config_map(stack, WRITERS)
        pod = faults.writer_pod(WRITERS, WRITER, "pusher", [], node=stack.node, memory="512Mi")
        pod["spec"]["containers"][0]["command"] = ["python", "-c", "import time; time.sleep(7200)"]
        stack.apply(pod)
        stack.kubectl("-n", WRITERS, "wait", "--for=condition=Ready", f"pod/{WRITER}", "--timeout=180s")
        yield it


def ready_registry(stack, instance: faults.Instance, *, fresh: bool, timeout: float = 180) -> dict:
    """The registry pod once Ready (with `fresh`: one that never restarted, so the kubelet's crash back-off does not
    grow from case to case)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = instance.registry_pods()
        if fresh and len(pods) == 1 and restarts(pods[0]) > 0:
            faults.delete(stack, "pod", pods[0]["metadata"]["name"], namespace=NAMESPACE)
            continue
        ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p["status"].get("conditions", []))]
        if len(pods) == 1 and ready:
            return ready[0]
        time.sleep(1)
    raise AssertionError("the registry did not become ready")


def restarts(pod: dict) -> int:
    return int(next((c["restartCount"] for c in pod["status"].get("containerStatuses") or []
                     if c["name"] == "registry"), 0))


def kill(stack, pod: dict, how: str, *, timeout: float = 60) -> None:
    """Kill the registry, and return once its process is gone."""
    pid = faults.container_pid(stack, faults.container_id(pod, "registry"))
    if how == "sigkill":  # a crash: the kubelet restarts the container in the same pod
        os.kill(pid, signal.SIGKILL)
    else:  # the pod is gone at once (a lost node, an eviction without grace): the Deployment makes another
        stack.kubectl("-n", NAMESPACE, "delete", "pod", pod["metadata"]["name"], "--grace-period=0", "--force",
                      "--wait=false")
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"the registry (pid {pid}) still runs {timeout:.0f} s after the kill"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def push(stack, repo: str, tag_writer: str, *extra: str) -> subprocess.Popen:
    """The registry client in the writer pod: one image of 3 layers (one shared with every case), 4 uploads at once."""
    args = ["python", "/opt/client/registryclient.py", "push", "--base",
            f"http://registry.{NAMESPACE}.svc.cluster.local:5000", "--repo", repo, "--writer", tag_writer,
            "--images", "1", "--layers", "3", "--shared", "1", "--size", str(LAYER), "--parallel", "4",
            "--delays", DOCKER, *extra]
    return subprocess.Popen(["kubectl", "-n", WRITERS, "exec", WRITER, "-c", "writer", "--", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=stack.env())


def result(process: subprocess.Popen, *, timeout: float = 300) -> dict:
    out, _ = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith(OUT)]
    assert lines, out[-2000:]
    return dict(json.loads(lines[-1][len(OUT):]))


def wait_paused(process: subprocess.Popen, point: str, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the client ended before reaching {point}")
        if line.startswith(PAUSED):
            assert line.strip() == PAUSED + point
            return
    raise AssertionError(f"the client never paused at {point}")


def verify_everything(client: Client) -> tuple[int, int]:
    """Pull every tag of every repository the registry lists and check every digest; (manifests, bytes)."""
    manifests = size = 0
    for repo in client.catalog():
        for tag in client.tags(repo):
            size += client.pull(repo, tag)[1]
            manifests += 1
    return manifests, size


def verify_volume(directory: Path) -> int:
    """Every blob the registry stored on its volume hashes to its name; how many."""
    blobs = sorted((directory / "docker/registry/v2/blobs/sha256").glob("*/*/data"))
    for data in blobs:
        digest = hashlib.sha256()
        with data.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        assert digest.hexdigest() == data.parent.name, f"{data} holds other bytes"
    return len(blobs)


def outcomes(pushed: dict) -> dict[str, int]:
    """How the client's requests ended, counted (`upload-patch 202`, `upload-start 503`, ...)."""
    out: dict[str, int] = {}
    for r in pushed["requests"]:
        key = f"{r['what']} {r['status']}"
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("how", ["sigkill", "delete-pod"])
@pytest.mark.parametrize("point", POINTS)
def test_a_push_killed_at_any_point_of_an_upload_finishes_and_nothing_stored_is_corrupt(stack, registry, point,
                                                                                          how):
    pod = ready_registry(stack, registry, fresh=True)
    case = f"{point}-{how}"
    go = f"/tmp/go-{case}"
    process = push(stack, f"kill/{case}", case, "--pause-at", point, "--go-file", go)
    wait_paused(process, point)
    killed = time.time()
    kill(stack, pod, how)
    stack.kubectl("-n", WRITERS, "exec", WRITER, "-c", "writer", "--", "python", "-c", f"open('{go}', 'w')")
    pushed = result(process)
    finished = time.time()
    ready_registry(stack, registry, fresh=False)
    client = Client(REGISTRY)
    manifests, size = verify_everything(client)
    blobs = verify_volume(registry.volumes[0].directory)
    again = result(push(stack, f"kill/{case}-again", case))  # the same layers, uploaded again from scratch
    figure("registry-killed-mid-push", point=point, how=how, pushed=len(pushed["pushed"]),
           failed=[f["error"] for f in pushed["failed"]], seconds_after_kill=round(finished - killed, 1),
           requests=outcomes(pushed), verified_manifests=manifests, verified_bytes=size, verified_blobs=blobs,
           again=len(again["pushed"]), again_requests=outcomes(again),
           unfinished_uploads=len(list(registry.volumes[0].directory.glob("docker/registry/v2/repositories/*/*/"
                                                                          "_uploads/*"))))
    assert [p["tag"] for p in pushed["pushed"]] == [f"{case}-0"], pushed["failed"]
    assert client.pull(f"kill/{case}", pushed["pushed"][0]["digest"])[0] == pushed["pushed"][0]["digest"]
    assert [p["digest"] for p in again["pushed"]] == [pushed["pushed"][0]["digest"]], again["failed"]
    assert outcomes(again).get("upload-start 202", 0) == 4  # the three layers and the config, uploaded anew

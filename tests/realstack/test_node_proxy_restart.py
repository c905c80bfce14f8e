"""The node proxy restarted while the real kubelet pulls a multi-layer image from localhost:PORT: its pod deleted
(gracefully, and forced) once containerd has layers in flight. The pull recovers with no manual action (the kubelet
retries), `meshreg status` says which node's proxy was not serving and since when it serves again, and the pod's
start is measured against an undisturbed pull of an image of the same size."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import subprocess
import tarfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from meshreg.render.labels import node_proxy_pods, selector
from support import faults
from support.registryclient import MANIFEST, Client

NAME, RUN = "fi-np", "fi-np-run"
PORT, FORWARD = 5253, 5254  # the node proxy's hostPort; a port-forward to the registry pod
LAYERS, LAYER_BYTES = 6, 48 << 20  # a multi-layer image: 6 layers of 48 MiB (incompressible) and busybox
TEXT = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAME}}}
spec:
  namespace: {NAME}
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry: {{storage: {{size: 2Gi}}}}
"""
BUSYBOX = Path("/usr/bin/busybox")
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


def _tar(files: dict[str, bytes | Path]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(client: Client, repo: str, tag: str, seed: str) -> int:
    """A runnable image (this host's busybox and its libraries, then LAYERS layers of seeded random bytes) pushed
    with real gzip layers and diff_ids, as containerd checks them when it unpacks. Its size in bytes."""
    libs = {str(lib.resolve()).lstrip("/"): lib.resolve() for lib in faults._libraries([BUSYBOX])}
    loader = {f"lib64/{lib.name}": lib for lib in libs.values() if lib.name.startswith("ld-linux")}
    base = _tar({"bin/busybox": BUSYBOX, **libs, **loader})
    tars = [base] + [_tar({f"data/{seed}-{i}": random.Random(f"{seed}{i}").randbytes(LAYER_BYTES)})
                     for i in range(LAYERS)]
    layers = [gzip.compress(t, compresslevel=0, mtime=0) for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["sleep", "3600"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(t) for t in tars]}}).encode()
    descriptors = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": client.push_blob(repo, g),
                    "size": len(g)} for g in layers]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": client.push_blob(repo, config),
        "size": len(config)}, "layers": descriptors}).encode()
    client.request("manifest-put", "PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST},
                   ok=(201,))
    return sum(len(g) for g in layers)


def puller(name: str, image: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": RUN},
            "spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}], "restartPolicy": "Never",
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}}


def _ctr(stack, *args: str) -> str:
    sock = stack.lab_node / "run" / "containerd.sock"
    return subprocess.run(["ctr", "-a", str(sock), "-n", "k8s.io", *args], capture_output=True, text=True,
                          check=False).stdout


def forget_images(stack) -> None:
    """Remove the node's references to the test's images (by tag and by digest), so containerd frees them."""
    for ref in _ctr(stack, "images", "ls", "-q").split():
        if ref.startswith(f"localhost:{PORT}/fi/multi"):
            _ctr(stack, "images", "rm", ref)


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def started_after(stack, pod: str, *, timeout: float = 300) -> float:
    """Seconds from the pod's creation to its container running (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = faults.get(stack, "pod", pod, namespace=RUN)
        for status in found["status"].get("containerStatuses") or []:
            running = (status.get("state") or {}).get("running")
            if running:
                return _stamp(running["startedAt"]) - _stamp(found["metadata"]["creationTimestamp"])
        time.sleep(0.5)
    raise AssertionError(f"pod {RUN}/{pod} did not start in {timeout:.0f}s")


def events(stack, pod: str) -> list[str]:
    found = faults.get(stack, "events", namespace=RUN)
    return [f"{e.get('reason')}: {e.get('message')}" for e in sorted(
        (e for e in found if e["involvedObject"].get("name") == pod), key=lambda e: e["metadata"]["creationTimestamp"])]


def replacement(instance, proxies: str, old: dict, *, timeout: float = 300) -> dict:
    """The node proxy pod that replaced `old`, once it is ready (the DaemonSet creates it when `old` is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in instance.pods(proxies):
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
            if pod["metadata"]["uid"] != old["metadata"]["uid"] and ready:
                return pod
        time.sleep(1)
    raise AssertionError(f"no node proxy pod replaced {old['metadata']['name']} in {timeout:.0f}s")


def in_flight(stack, *, timeout: float = 60) -> bool:
    """Wait until containerd is downloading layers (an active content ingest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_ctr(stack, "content", "active").strip().splitlines()) > 1:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def registry(stack, tmp_path_factory):
    faults.delete(stack, "namespace", NAME, RUN)
    faults.gone(stack, [NAME, RUN])
    directory = tmp_path_factory.mktemp(NAME)
    (directory / "meshreg.yaml").write_text(TEXT)
    from meshreg import config

    cfg = config.load(str(directory / "meshreg.yaml"))
    volume = faults.Volume(f"{NAME}-registry-data", NAME, "registry-data", size="2Gi")
    instance = faults.Instance(stack, directory, cfg, [volume])
    volume.create(stack)
    try:
        instance.meshreg("up", "--timeout", "240", timeout=400)
        stack.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RUN}})
        pod = instance.registry_pods()[0]["metadata"]["name"]
        forward = subprocess.Popen(["kubectl", "-n", NAME, "port-forward", f"pod/{pod}", f"{FORWARD}:5000"],
                                   env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert "Forwarding from" in (forward.stdout.readline() if forward.stdout else "")
            client = Client(f"http://127.0.0.1:{FORWARD}", timeout=600)
            run = str(time.time_ns())  # content of this run only: containerd may still hold an earlier run's layers
            sizes = {tag: push_image(client, "fi/multi", tag, f"{tag}-{run}") for tag in ("quiet", "graceful",
                                                                                      "forced")}
        finally:
            forward.terminate()
            forward.wait()
        yield instance, sizes
    finally:
        faults.delete(stack, "namespace", RUN)
        instance.meshreg("down", "--purge", "--yes", check=False, timeout=400)
        forget_images(stack)
        faults.gone(stack, [NAME, RUN])
        volume.remove(stack)


def _figure(**values) -> None:
    line = json.dumps({"figure": "node-proxy-restart", **values})
    print("FIGURE", line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


@pytest.mark.apiserver
@pytest.mark.parametrize("how", ["graceful", "forced"])
def test_a_pull_recovers_when_the_node_proxy_restarts_and_status_says_when(stack, registry, how):
    instance, sizes = registry
    quiet = f"quiet-{how}"
    stack.apply(puller(quiet, f"localhost:{PORT}/fi/multi:quiet", stack.node))
    undisturbed = started_after(stack, quiet)
    faults.delete(stack, "pod", quiet, namespace=RUN, wait=True)
    forget_images(stack)

    proxies = selector(node_proxy_pods(instance.cfg))
    [old] = instance.pods(proxies)
    stack.apply(puller(how, f"localhost:{PORT}/fi/multi:{how}", stack.node))
    assert in_flight(stack), "containerd never started downloading"
    cut = time.time()
    force = ["--grace-period=0", "--force"] if how == "forced" else []
    stack.kubectl("-n", NAME, "delete", "pod", old["metadata"]["name"], "--wait=false", *force)
    during = instance.meshreg("status", check=False).stdout
    disturbed = started_after(stack, how)
    new = replacement(instance, proxies, old)
    after = instance.meshreg("status", check=False)
    said = events(stack, how)

    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    line = next(line for line in after.stdout.splitlines() if line.startswith(f"  {stack.node}: ready since "))
    assert f"pod {new['metadata']['name']} created " in line
    since = line.split("ready since ")[1].split(" ")[0]
    assert _stamp(since) >= cut - 1  # serving again only since after the cut: the interval is on the screen
    _figure(how=how, image_bytes=sizes[how], layers=LAYERS + 1, undisturbed_start_s=round(undisturbed, 1),
            disturbed_start_s=round(disturbed, 1), node_proxy_ready_again_s=round(_stamp(since) - cut, 1),
            kubelet_events=said, status_during=[x for x in during.splitlines() if "node proxy" in x or
                                                x.startswith(f"  {stack.node}")],
            status_after=line, status_exit=after.returncode)

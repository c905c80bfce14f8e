"""The dev loop on the real stack: a meshreg instance with a push proxy deployed on the real node, `meshreg connect`
running against it, and the real Tilt and Skaffold (../shared/lab-devtools) with an isolated HOME.

kube-public/local-registry-hosting is one per cluster and another helper's tests briefly publish it too, so an
instance holds the lab's kep1755 lock (realstack.kep1755_lock) from before `up` until after `down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.paths import ROOT
from support.realstack import TMP, Stack, kep1755_lock

DEVTOOLS = Path(os.environ.get("LAB_DEVTOOLS", TMP / "lab-devtools")) / "bin"
TILT, SKAFFOLD = DEVTOOLS / "tilt", DEVTOOLS / "skaffold"
HUB_BASE = "docker://127.0.0.1:5050/meshreg/curl:lab"  # busybox + curl on the lab.local hub (mesh.sh start)
BUILD = ROOT / "tests" / "support" / "devloop_build.py"
MESHREG = [sys.executable, "-m", "meshreg"]


def tools_missing(*tools: Path) -> str | None:
    """Why the real Tilt or Skaffold cannot run here, with how to build them; None when they are there."""
    absent = [str(p) for p in tools or (TILT, SKAFFOLD) if not os.access(p, os.X_OK)]
    if absent:
        return (f"{', '.join(absent)} absent: build them with ../shared/lab-devtools/build.sh TILT_GITDIR "
                "SKAFFOLD_GITDIR (../shared/lab-devtools/README.md)")
    return None


@dataclass(frozen=True)
class Instance:
    """A deployed meshreg with a push proxy scoped to dev/: its config file and ports."""

    stack: Stack
    name: str  # instance name, also its namespace
    config: Path
    node_port: int
    push_port: int

    @property
    def push_namespace(self) -> str:
        return f"{self.name}-push"

    def meshreg(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*MESHREG, *args, "-c", str(self.config)], check=False, env=self.stack.env(),
                                text=True, capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"meshreg {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result

    def published(self) -> dict:
        import yaml

        found = self.stack.kubectl("-n", "kube-public", "get", "configmap", "local-registry-hosting", "-o", "json")
        return yaml.safe_load(json.loads(found.stdout)["data"]["localRegistryHosting.v1"])


def config_text(name: str, *, node_port: int, push_port: int, extra: str = "") -> str:
    return (f"apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {{name: {name}}}\nspec:\n"
            f"  namespace: {name}\n  nodeProxy: {{enabled: true, port: {node_port}}}\n"
            f"  pushProxy: {{enabled: true, repositories: [dev/], port: {push_port}}}\n{extra}")


def _volume(stack: Stack, name: str, path: Path) -> None:
    """A hostPath PV pinned to the instance's claim and the real node (the lab has no provisioner)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 1000, 1000)  # the registry runs as uid 1000
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{name}-data"},
          "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain",
                   "claimRef": {"namespace": name, "name": "registry-data"},
                   "hostPath": {"path": str(path), "type": "Directory"},
                   "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                       {"key": "kubernetes.io/hostname", "operator": "In", "values": [stack.node]}]}]}}}}
    stack.kubectl("apply", "-f", "-", stdin=json.dumps(pv))


def wait_gone(stack: Stack, *namespaces: str, timeout: float = 180) -> None:
    """Until the namespaces (of an earlier run, still terminating) are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.kubectl("get", "namespace", *namespaces, "--ignore-not-found", "-o", "name", check=False)
        if not found.stdout.strip():
            return
        time.sleep(2)
    raise AssertionError(f"namespaces {', '.join(namespaces)} still terminating after {timeout:.0f} s")


@contextlib.contextmanager
def instance(stack: Stack, name: str, *, node_port: int, push_port: int, workdir: Path,
             extra: str = "") -> Iterator[Instance]:
    """`meshreg up` of an instance named `name` (namespace too) with its volume; `down --purge` after, always."""
    config = workdir / "meshreg.yaml"
    config.write_text(config_text(name, node_port=node_port, push_port=push_port, extra=extra))
    inst = Instance(stack, name, config, node_port, push_port)
    wait_gone(stack, name, inst.push_namespace)
    with kep1755_lock():
        try:
            _volume(stack, name, workdir / "volume")
            inst.meshreg("up", "--timeout", "240")
            yield inst
        finally:
            inst.meshreg("down", "--purge", "--yes", check=False)
            stack.kubectl("delete", "pv", f"{name}-data", "--ignore-not-found", "--wait=false", check=False)


class Connect:
    """A running `meshreg connect` (its own process group), stopped with SIGINT."""

    def __init__(self, inst: Instance, *args: str, log: Path):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([*MESHREG, "connect", "-c", str(inst.config), *args], env=inst.stack.env(),
                                         stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while "Ctrl-C to stop." not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"meshreg connect did not start: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def status(self, field: str) -> int:
        """A /proc/PID/status figure in KiB (VmRSS, VmHWM: the peak resident size)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def connected(inst: Instance, *args: str, workdir: Path) -> Iterator[Connect]:
    running = Connect(inst, *args, log=workdir / f"connect-{time.monotonic_ns()}.log")
    try:
        yield running
    finally:
        running.stop()


def base_image(workdir: Path) -> Path:
    """The build base (busybox) as an OCI layout, copied from the lab.local hub."""
    layout = workdir / "base"
    if not (layout / "index.json").exists():
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", HUB_BASE,
                        f"oci:{layout}:latest"], check=True, capture_output=True, timeout=120)
    return layout


def tool_env(stack: Stack, home: Path, base: Path) -> dict[str, str]:
    """Tilt's and Skaffold's environment: an isolated HOME, no analytics, the build script's base image."""
    home.mkdir(parents=True, exist_ok=True)
    return stack.env(HOME=str(home), TILT_DISABLE_ANALYTICS="1", DEVLOOP_BASE=str(base),
                     DOCKER_HOST="unix:///nonexistent")


def skaffold_setup(env: dict[str, str], context: str) -> None:
    """What a Skaffold user on a cluster it does not know as local does once: no metrics prompt, and mark the
    context local so Skaffold reads kube-public/local-registry-hosting."""
    for args in (["config", "set", "--global", "collect-metrics", "false"],
                 ["config", "set", "--kube-context", context, "local-cluster", "true"]):
        subprocess.run([str(SKAFFOLD), *args], env=env, check=True, capture_output=True, timeout=60)


def deployment(name: str, namespace: str, image: str) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": name, "image": image}]}}}}, indent=2)


def tiltfile(image: str, *, context: str) -> str:
    return (f"allow_k8s_contexts({context!r})  # a context Tilt does not know as a dev cluster\n"
            f"custom_build({image!r}, 'python3 {BUILD} . $EXPECTED_REF', deps=['hello.txt'],\n"
            f"             skips_local_docker=True)\nk8s_yaml('k8s.yaml')\n")


def skaffold_yaml(image: str) -> str:
    return ("apiVersion: skaffold/v4beta14\nkind: Config\nmetadata: {name: app}\nbuild:\n  artifacts:\n"
            f"    - image: {image}\n      custom:\n        buildCommand: python3 {BUILD} . \"$IMAGE\"\n"
            "        dependencies: {paths: [hello.txt]}\nmanifests:\n  rawYaml: [k8s.yaml]\ndeploy:\n  kubectl: {}\n")


def pod_images(stack: Stack, namespace: str) -> list[tuple[str, str, str]]:
    """(pod, image, phase) of every pod in the namespace."""
    pods = json.loads(stack.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
    return [(p["metadata"]["name"], p["spec"]["containers"][0]["image"], p["status"].get("phase", ""))
            for p in pods]


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


class _Hashing:
    """A write-only file that hashes what passes through it on the way to `out`."""

    def __init__(self, out: object):
        import hashlib

        self.out, self.sha = out, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.out.write(data)  # type: ignore[attr-defined]

    def flush(self) -> None:
        pass


def large_image(layout: Path, sizes: tuple[int, ...]) -> str:
    """An OCI layout (tag latest) with one random-content layer per size, written as a stream (a 1 GiB layer never
    sits in memory); returns the manifest digest."""
    import gzip
    import hashlib
    import tarfile

    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layers, diff_ids = [], []
    for i, size in enumerate(sizes):
        part = blobs / "partial"
        with open(part, "wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=0, mtime=0) as gz:  # type: ignore[arg-type]
                plain = _Hashing(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
                    info = tarfile.TarInfo(f"data-{i}.bin")
                    info.size = size
                    tar.addfile(info, _Random(size))
        digest = compressed.sha.hexdigest()
        part.rename(blobs / digest)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{digest}",
                       "size": (blobs / digest).stat().st_size})
        diff_ids.append(f"sha256:{plain.sha.hexdigest()}")

    def put(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode(),
                 "application/vnd.oci.image.config.v1+json")
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": layers}).encode(),
                   "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return str(manifest["digest"])


class _Random:
    """A readable stream of `size` random bytes."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def skopeo(src: str, dest: str, *, retries: int = 0, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    """`skopeo copy` with plain HTTP both ways; the result and the seconds it took."""
    start = time.monotonic()
    result = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                             "--retry-times", str(retries), src, dest], check=False, capture_output=True, text=True,
                            timeout=timeout)
    return result, time.monotonic() - start

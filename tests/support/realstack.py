"""The real stack beside this repository (../shared/lab-kube with real-node.sh, ../shared/lab-istio mesh.sh): a real
API server, a real kubelet node, a real istiod with its injector and sidecars. Found, never started, by the tests:
starting it changes the host (iptables, a bridge, /etc/hosts) and takes minutes, so it is the developer's step.

The stack is shared with other work: everything the tier creates is named `rs-*` (namespaces, instances,
PersistentVolumes) and uses node-proxy ports 5100-5199; `deployed` cleans up after itself, and `sweep` removes
what an interrupted run left behind."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from support.paths import ROOT, SHARED

TMP = Path(tempfile.gettempdir())


def lab_lock(name: str) -> Path:
    """A lock file the users of one shared lab agree on: in $LAB_LOCKS, else in labs-logs beside ../shared when that
    directory exists, else in the temp directory."""
    locks = Path(os.environ.get("LAB_LOCKS") or SHARED.resolve().parent / "labs-logs")
    return (locks if locks.is_dir() else TMP) / name


@contextmanager
def kep1755_lock() -> Iterator[None]:
    """Hold the lab's lock on kube-public/local-registry-hosting: one instance publishes it at a time."""
    with open(lab_lock("kep1755.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
HOW = ("start the real stack first, as ../shared/lab-istio/README.md says under "
       "'A real sidecar mesh on the real node': "
       "LAB_APISERVER_IP=192.0.2.2 $LAB_KUBE/start.sh --fresh, the Istio CRDs, LAB_NODE_DNS=192.0.2.2 "
       "../shared/lab-kube/real-node.sh start, ../shared/lab-istio/mesh.sh start")
PREFIX = "rs-"  # every namespace, instance and PersistentVolume of this tier
TIER = "meshreg.dev/realstack"  # a label on what the tier creates itself (PersistentVolumes, writer namespaces)
DATA = TMP / "meshreg-realstack"  # volume directories on the node (which is this host)


@dataclass(frozen=True)
class Stack:
    """Where the running real stack is: its kubeconfig, its one real node, and the images its node holds."""

    kubeconfig: Path
    node: str
    node_ip: str
    lab_kube: Path
    lab_node: Path
    lab_istio: Path
    curl_image: str = "lab.local/meshreg/curl:lab"  # busybox + curl, for meshreg verify --image
    registry_image: str = "docker.io/library/registry:2.8.3"  # Debian's distribution 2.8.2, preloaded on the node
    busybox_image: str = "docker.io/library/busybox:lab"  # static busybox, preloaded on the node

    def istio_version(self) -> tuple[int, int]:
        """(major, minor) of istiod, from its Deployment's app.kubernetes.io/version label (1.14-maistra-2.3 here)."""
        istiod = self.get("deployment", "istiod", namespace="istio-system")
        found = re.match(r"(\d+)\.(\d+)", istiod["metadata"]["labels"].get("app.kubernetes.io/version", ""))
        return (int(found[1]), int(found[2])) if found else (0, 0)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for kubectl and meshreg against the stack."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LAB_KUBE": str(self.lab_kube),
                "LAB_NODE": str(self.lab_node), "LAB_ISTIO": str(self.lab_istio), **extra}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", *args], input=stdin, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def apply(self, *objects: dict) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": list(objects)}))

    def get(self, kind: str, name: str = "", *, namespace: str | None = None, selector: str = "") -> Any:
        """One object (None when absent) or, without a name, the list of items."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        args += ["-n", namespace] if namespace else []
        args += ["-l", selector] if selector else []
        done = self.kubectl(*args, check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        data = json.loads(done.stdout)
        return data if name else data["items"]

    def delete(self, kind: str, *names: str, namespace: str | None = None, wait: bool = False) -> None:
        args = ["delete", kind, *names, "--ignore-not-found", f"--wait={str(wait).lower()}"]
        self.kubectl(*args, *(["-n", namespace] if namespace else []), check=False, timeout=180)

    def events(self, namespace: str, name: str) -> list[dict]:
        """The events of one object, oldest first."""
        found = self.kubectl("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}",
                             "-o", "json").stdout
        return sorted(json.loads(found)["items"], key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def wait(self, condition: str, what: str, *, namespace: str, timeout: int = 120, selector: str = "") -> None:
        """`kubectl wait` for `what` (KIND/NAME, or KIND with a label `selector`)."""
        done = self.kubectl("wait", f"--for={condition}", what, *(["-l", selector] if selector else []),
                            "-n", namespace, f"--timeout={timeout}s", check=False, timeout=timeout + 30)
        if done.returncode != 0:
            described = self.kubectl("describe", what, "-n", namespace, check=False).stdout[-3000:]
            raise AssertionError(f"{what} in {namespace}: not {condition} in {timeout}s: {done.stderr}\n{described}")


def find() -> tuple[Stack | None, str]:
    """The running stack, or None and why not (with how to start it)."""
    lab_kube = Path(os.environ.get("LAB_KUBE", TMP / "lab-kube"))
    lab_node = Path(os.environ.get("LAB_NODE", TMP / "lab-node"))
    lab_istio = Path(os.environ.get("LAB_ISTIO", TMP / "lab-istio"))
    node = os.environ.get("LAB_NODE_NAME", "lab-real-1")
    kubeconfig = lab_kube / "kubeconfig"
    if not SHARED.is_dir():
        return None, f"the labs live in {SHARED}, which is absent"
    if not kubeconfig.exists():
        return None, f"no API-server lab at {lab_kube} (build it: ../shared/lab-kube/README.md); then {HOW}"
    stack = Stack(kubeconfig, node, "", lab_kube, lab_node, lab_istio)
    try:
        found = json.loads(stack.kubectl("get", "node", node, "-o", "json").stdout)
        istiod = stack.kubectl("-n", "istio-system", "get", "deployment", "istiod", "-o", "json", check=False)
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        return None, f"the lab at {lab_kube} does not answer with node {node} ({e}); {HOW}"
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in found["status"].get("conditions", []))
    if not ready:
        return None, f"node {node} is not Ready; {HOW}"
    if istiod.returncode != 0 or not json.loads(istiod.stdout).get("status", {}).get("readyReplicas"):
        return None, f"no ready istiod in istio-system (../shared/lab-istio/mesh.sh start); {HOW}"
    ip = next(a["address"] for a in found["status"]["addresses"] if a["type"] == "InternalIP")
    return Stack(kubeconfig, node, ip, lab_kube, lab_node, lab_istio), ""


def sweep(stack: Stack, *, timeout: float = 120) -> None:
    """Remove what an interrupted earlier run of the tier left: its namespaces (all `rs-*`), its volumes, its
    published ConfigMaps; wait until the namespaces are gone so names can be reused."""
    spaces = [n["metadata"]["name"] for n in stack.get("namespaces") if n["metadata"]["name"].startswith(PREFIX)]
    if spaces:
        stack.delete("namespace", *spaces)
    volumes = [v["metadata"]["name"] for v in stack.get("persistentvolumes", selector=f"{TIER}=true")]
    if volumes:
        stack.delete("persistentvolume", *volumes)
    maps = [m["metadata"]["name"] for m in stack.get("configmaps", namespace="kube-public")
            if m["metadata"]["name"].startswith(f"meshreg-{PREFIX}")]
    if maps:
        stack.delete("configmap", *maps, namespace="kube-public")
    deadline = time.monotonic() + timeout
    while spaces and time.monotonic() < deadline:
        spaces = [n for n in spaces if stack.get("namespace", n) is not None]
        time.sleep(2)
    for mount in _mounts_under(DATA):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(DATA, ignore_errors=True)


def _mounts_under(base: Path) -> list[str]:
    lines = Path("/proc/mounts").read_text().splitlines()
    return [p for p in (line.split()[1] for line in lines) if p.startswith(str(base) + "/")]


# Volumes ---------------------------------------------------------------------------------------------------------


@dataclass
class Volume:
    """A PersistentVolume pinned to one claim and to the node: `hostPath` (the kubelet does not measure it) or
    `local` on a size-limited tmpfs (measured with statfs, and really fills up)."""

    name: str
    namespace: str
    claim: str
    kind: str = "hostPath"
    size: str = "64Mi"
    directory: Path = field(init=False)
    data: ClassVar[Path] = DATA  # where the directories are, and the label the tier's sweep finds its volumes by
    tier: ClassVar[str] = TIER

    def __post_init__(self) -> None:
        self.directory = self.data / self.name

    def create(self, stack: Stack) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "local":
            size = self.size.replace("Mi", "m").replace("Gi", "g")
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                            "tmpfs", str(self.directory)], check=True)
        os.chown(self.directory, 1000, 1000)  # the registry runs as 1000; hostPath ignores fsGroup
        source = {"local": {"path": str(self.directory)}} if self.kind == "local" else \
            {"hostPath": {"path": str(self.directory), "type": "Directory"}}
        stack.apply({"apiVersion": "v1", "kind": "PersistentVolume",
                     "metadata": {"name": self.name, "labels": {self.tier: "true"}},
                     "spec": {"capacity": {"storage": self.size}, "accessModes": ["ReadWriteOnce"],
                              "persistentVolumeReclaimPolicy": "Retain", **source,
                              "claimRef": {"namespace": self.namespace, "name": self.claim},
                              "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                  {"key": "kubernetes.io/hostname", "operator": "In", "values": [stack.node]}]}]}}}})

    def remove(self, stack: Stack) -> None:
        stack.delete("persistentvolume", self.name, wait=True)
        if self.kind == "local":
            subprocess.run(["umount", "-l", str(self.directory)], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


# Instances -------------------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """A meshreg instance on the stack: its directory (with meshreg.yaml), its config, and the real CLI."""

    stack: Stack
    directory: Path
    cfg: Any  # meshreg.config.Config
    volumes: list[Volume]

    @property
    def config(self) -> Path:
        return self.directory / "meshreg.yaml"

    @property
    def namespace(self) -> str:
        return self.cfg.namespace

    def meshreg(self, *args: str, check: bool = True, timeout: float = 300,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`python -m meshreg ARGS` in the instance's directory, against the stack, as a user runs it."""
        done = subprocess.run([sys.executable, "-m", "meshreg", *args], cwd=self.directory, capture_output=True,
                              text=True, timeout=timeout, env=self.stack.env(PYTHONPATH=str(ROOT), **(env or {})))
        if check and done.returncode != 0:
            raise AssertionError(f"meshreg {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    @contextmanager
    def running(self, *args: str, ready: str, timeout: float = 60) -> Iterator[subprocess.Popen]:
        """`meshreg ARGS` in the background (e.g. connect) once it printed a line starting with `ready`; stopped
        with Ctrl-C (SIGINT) at the end, and its exit code checked (0: stopped cleanly)."""
        proc = subprocess.Popen([sys.executable, "-m", "meshreg", *args], cwd=self.directory, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.stack.env(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"))
        try:
            _await_line(proc, ready, timeout=timeout, what=f"meshreg {' '.join(args)}")
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0, f"meshreg {' '.join(args)} exited {proc.returncode}"

    def json(self, *args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.meshreg(*args, "-o", "json", check=check, timeout=timeout, env=env).stdout)

    def pods(self, selector: str, namespace: str | None = None) -> list[dict]:
        return self.stack.get("pods", namespace=namespace or self.namespace, selector=selector)

    def registry_pod(self, registry: str = "registry") -> str:
        """The name of a registry's running pod."""
        pods = [p for p in self.pods(f"app.kubernetes.io/name=registry,meshreg.dev/registry={registry},"
                                     f"app.kubernetes.io/instance={self.cfg.name}")
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == 1, f"expected one running pod of registry {registry}, found {len(pods)}"
        return pods[0]["metadata"]["name"]


def _await_line(proc: subprocess.Popen, start: str, *, timeout: float, what: str) -> None:
    """Read `proc`'s stdout until a line starts with `start`; fail when it ends or `timeout` passes first."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"{what} ended: {proc.stderr.read() if proc.stderr else ''}")
        if line.startswith(start):
            return
    raise AssertionError(f"{what} printed no line starting {start!r} in {timeout:.0f}s")


def injected_namespace(stack: Stack, namespace: str, *service_accounts: str) -> None:
    """A namespace whose pods get Istio's sidecar, with the given ServiceAccounts (writers, readers, bystanders)."""
    stack.apply({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": namespace, "labels": {"istio-injection": "enabled", TIER: "true"}}},
                *({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
                  for sa in service_accounts))


@contextmanager
def deployed(stack: Stack, directory: Path, text: str, *, accounts: tuple[str, ...] = (), volume: str = "hostPath",
             up: tuple[str, ...] = ("--timeout", "180")) -> Iterator[Instance]:
    """Write `text` as meshreg.yaml in `directory`, create a volume for every claim and the namespaces and
    ServiceAccounts of `accounts` (NS/SA, injected), run `meshreg up`, and remove all of it afterwards
    (`meshreg down --purge --yes`, the namespaces, the volumes), whatever happened."""
    from meshreg import config

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meshreg.yaml").write_text(text)
    cfg = config.load(str(directory / "meshreg.yaml"))
    assert cfg.name.startswith(PREFIX) and cfg.namespace.startswith(PREFIX), "the tier's instances are rs-*"
    volumes = [Volume(f"{cfg.namespace}-{reg.name}-data", cfg.namespace, f"{reg.name}-data", kind=volume,
                      size=reg.storage.size)
               for reg in cfg.registries if not reg.storage.s3]
    spaces = sorted({a.split("/")[0] for a in accounts})
    instance = Instance(stack, directory, cfg, volumes)
    try:
        for v in volumes:
            v.create(stack)
        for ns in spaces:
            injected_namespace(stack, ns, *(a.split("/")[1] for a in accounts if a.startswith(ns + "/")))
        if up is not None:
            instance.meshreg("up", *up)
        yield instance
    finally:
        instance.meshreg("down", "--purge", "--yes", check=False)
        if spaces:
            stack.delete("namespace", *spaces)
        for v in volumes:
            v.remove(stack)

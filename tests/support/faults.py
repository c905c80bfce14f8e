"""The faults-and-load tier on the real stack (tests/realstack/test_faults_*.py, test_instances.py, benchmarks/load.py):
instances named `fl-*` with node-proxy ports 5200-5299, their volumes, their writers, and a Python image for the
pods that run Python (the gc Job's coordinator, the load's writers).

The stack is shared with other work: everything here is named `fl-*`, cleans up after itself, and `sweep` removes
what an interrupted run left behind. Objects in kube-public that only one instance may hold
(`local-registry-hosting`) are published only inside `kep1755()`, the lock the stack's users share for it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from support import realstack
from support.paths import ROOT, SHARED
from support.realstack import Stack, kep1755_lock

PREFIX = "fl-"  # every namespace, instance and PersistentVolume of this tier
PORTS = range(5200, 5300)  # node-proxy and push-proxy ports of this tier (hostPorts on the shared host)
# Of those, each test module keeps to its own: test_instances 5200-5241, benchmarks/load.py 5246, test_faults_kill
# 5247, test_faults_full 5248, test_faults_gc 5249; 5250-5299 are the interruption and connect tests'.
TIER = "meshreg.dev/faults"  # a label on what the tier creates itself (PersistentVolumes, writer namespaces)
DATA = Path(tempfile.gettempdir()) / "meshreg-faults"  # volume directories on the node (which is this host)
PYTHON_IMAGE = "lab.local/meshreg/python:lab"  # Debian's python3 and its standard library, built from this host


def kubectl_json(stack: Stack, *args: str) -> Any:
    return json.loads(stack.kubectl(*args, "-o", "json").stdout)


def get(stack: Stack, kind: str, name: str = "", *, namespace: str | None = None, selector: str = "") -> Any:
    """One object (None when absent) or, without a name, the list of items."""
    args = ["get", kind, *([name] if name else []), *(["-n", namespace] if namespace else []),
            *(["-l", selector] if selector else []), "-o", "json"]
    done = stack.kubectl(*args, check=False)
    if done.returncode != 0:
        if "NotFound" in done.stderr:
            return None
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    data = json.loads(done.stdout)
    return data if name else data["items"]


def delete(stack: Stack, kind: str, *names: str, namespace: str | None = None, wait: bool = False) -> None:
    args = ["delete", kind, *names, "--ignore-not-found", f"--wait={str(wait).lower()}"]
    subprocess.run(["kubectl", *args, *(["-n", namespace] if namespace else [])], env=stack.env(),
                   capture_output=True, text=True, timeout=300, check=False)


kep1755 = kep1755_lock  # the stack's lock on kube-public/local-registry-hosting


def sweep(stack: Stack, *names: str, timeout: float = 180) -> None:
    """Remove what an interrupted earlier run left of the instances and namespaces `names` (each `fl-...`, matching
    itself and `NAME-*`): namespaces, volumes and published ConfigMaps. Only those: other work on the shared stack
    uses `fl-*` names at the same time."""
    assert names and all(n.startswith(PREFIX) and len(n) > len(PREFIX) for n in names), names
    prefixes = tuple(n + "-" for n in names)

    def mine(name: str) -> bool:
        return name in names or name.startswith(prefixes)
    spaces = [n["metadata"]["name"] for n in get(stack, "namespaces") if mine(n["metadata"]["name"])]
    _delete_all(stack, "namespace", spaces)
    _delete_all(stack, "persistentvolume", [v["metadata"]["name"] for v in get(
        stack, "persistentvolumes", selector=f"{TIER}=true") if mine(v["metadata"]["name"])])
    _delete_all(stack, "configmap", [m["metadata"]["name"] for m in get(stack, "configmaps", namespace="kube-public")
                                     if mine(m["metadata"]["name"].removeprefix("meshreg-"))], namespace="kube-public")
    gone(stack, spaces, timeout=timeout)
    for mount in _mounts_under(DATA):
        if mine(Path(mount).name):
            subprocess.run(["umount", "-l", mount], check=False)
    for directory in DATA.glob(f"{PREFIX}*"):
        if mine(directory.name):
            shutil.rmtree(directory, ignore_errors=True)


def _delete_all(stack: Stack, kind: str, names: list[str], *, namespace: str | None = None) -> None:
    if names:
        delete(stack, kind, *names, namespace=namespace)


def _mounts_under(base: Path) -> list[str]:
    lines = Path("/proc/mounts").read_text().splitlines()
    return [p for p in (line.split()[1] for line in lines) if p.startswith(str(base) + "/")]


# Volumes ---------------------------------------------------------------------------------------------------------


@dataclass
class Volume(realstack.Volume):
    """realstack's PersistentVolume under this tier's directory and label, 1Gi by default, and growable."""

    size: str = "1Gi"
    data: ClassVar[Path] = DATA
    tier: ClassVar[str] = TIER

    def resize(self, size: str) -> None:
        """Grow the tmpfs under a `local` volume (what an admin does to a full disk)."""
        subprocess.run(["mount", "-o", f"remount,size={size.replace('Mi', 'm').replace('Gi', 'g')}",
                        str(self.directory)], check=True)


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
        return str(self.cfg.namespace)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "meshreg", *args]

    def env(self, **extra: str) -> dict[str, str]:
        return self.stack.env(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)

    def meshreg(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """`python -m meshreg ARGS` in the instance's directory, against the stack, as a user runs it."""
        done = subprocess.run(self.argv(*args), cwd=self.directory, capture_output=True, text=True,
                              timeout=timeout, env=self.env())
        if check and done.returncode != 0:
            raise AssertionError(f"meshreg {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, *args: str) -> subprocess.Popen:
        """`meshreg ARGS` in the background (for interrupting it)."""
        return subprocess.Popen(self.argv(*args), cwd=self.directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=self.env(), start_new_session=True)

    def json(self, *args: str, check: bool = True, timeout: float = 300) -> Any:
        return json.loads(self.meshreg(*args, "-o", "json", check=check, timeout=timeout).stdout)

    def pods(self, selector: str, namespace: str | None = None) -> list[dict]:
        return list(get(self.stack, "pods", namespace=namespace or self.namespace, selector=selector))

    def registry_pods(self, registry: str = "registry") -> list[dict]:
        return [p for p in self.pods(f"app.kubernetes.io/name=registry,meshreg.dev/registry={registry}")
                if not p["metadata"].get("deletionTimestamp")]

    def members(self) -> dict[tuple[str, str | None, str], dict]:
        """Every object labelled with this instance's set id, in every namespace: (kind, namespace, name) ->
        (uid, resourceVersion, labels) as the API server has them."""
        from meshreg.render.labels import APPLYSET_PART_OF, applyset

        kinds = "namespaces,serviceaccounts,configmaps,services,deployments.apps,daemonsets.apps,roles,rolebindings," \
                "persistentvolumeclaims,cronjobs,peerauthentications.security.istio.io," \
                "authorizationpolicies.security.istio.io,gateways.networking.istio.io," \
                "virtualservices.networking.istio.io"
        found = kubectl_json(self.stack, "get", kinds, "-A", "-l", f"{APPLYSET_PART_OF}={applyset(self.cfg)}")
        return {(_qualified(o), o["metadata"].get("namespace"), o["metadata"]["name"]):
                {"uid": o["metadata"]["uid"], "resourceVersion": o["metadata"]["resourceVersion"]}
                for o in found["items"]}


def _qualified(obj: dict) -> str:
    """`Deployment.apps`, `Gateway.networking.istio.io`: a kind kubectl resolves without ambiguity."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind']}.{group}" if group else obj["kind"]


def write_config(directory: Path, text: str) -> Any:
    from meshreg import config

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meshreg.yaml").write_text(text)
    cfg = config.load(str(directory / "meshreg.yaml"))
    assert cfg.name.startswith(PREFIX) and cfg.namespace.startswith(PREFIX), "the tier's instances are fl-*"
    return cfg


def injected_namespace(stack: Stack, namespace: str, *service_accounts: str) -> None:
    """A namespace whose pods get Istio's sidecar, with the given ServiceAccounts (writers)."""
    stack.apply({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": namespace, "labels": {"istio-injection": "enabled", TIER: "true"}}},
          *({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
            for sa in service_accounts))


@contextmanager
def deployed(stack: Stack, directory: Path, text: str, *, accounts: tuple[str, ...] = (), volume: str = "hostPath",
             up: tuple[str, ...] | None = ("--timeout", "240")) -> Iterator[Instance]:
    """Write `text` as meshreg.yaml in `directory`, create a volume for every claim and the namespaces and
    ServiceAccounts of `accounts` (NS/SA, injected), run `meshreg up ARGS` (not with `up=None`), and remove all of
    it afterwards (`meshreg down --purge --yes`, the namespaces, the volumes), whatever happened."""
    cfg = write_config(directory, text)
    volumes = [Volume(f"{cfg.namespace}-{reg.name}-data", cfg.namespace, f"{reg.name}-data", kind=volume,
                      size=reg.storage.size) for reg in cfg.registries if not reg.storage.s3]
    spaces = sorted({a.split("/")[0] for a in accounts})
    instance = Instance(stack, directory, cfg, volumes)
    try:
        for v in volumes:
            v.create(stack)
        for ns in spaces:
            injected_namespace(stack, ns, *(a.split("/")[1] for a in accounts if a.startswith(ns + "/")))
        if up is not None:
            instance.meshreg("up", *up, timeout=400)
        yield instance
    finally:
        instance.meshreg("down", "--purge", "--yes", check=False, timeout=400)
        if spaces:
            delete(stack, "namespace", *spaces)
        for v in volumes:
            v.remove(stack)
        gone(stack, [cfg.namespace, *(r.push_proxy.namespace for r in cfg.registries if r.push_proxy), *spaces])


def gone(stack: Stack, namespaces: list[str], *, timeout: float = 180) -> None:
    """Wait until `namespaces` are deleted (their names can be used again)."""
    deadline = time.monotonic() + timeout
    while namespaces and time.monotonic() < deadline:
        namespaces = [n for n in namespaces if get(stack, "namespace", n) is not None]
        time.sleep(1)


# The Python image ------------------------------------------------------------------------------------------------

_PYTHON = Path("/usr/bin/python3.11")
_SKIP = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "site-packages",
         "dist-packages", "__pycache__", "config-3.11-x86_64-linux-gnu")


def node_has(stack: Stack, image: str) -> bool:
    node = kubectl_json(stack, "get", "node", stack.node)
    return any(image in (i.get("names") or []) for i in node["status"].get("images") or [])


def python_image(stack: Stack) -> str:
    """`lab.local/meshreg/python:lab` on the node: this host's Debian python3.11, its shared libraries and standard
    library, as `python` on PATH (what the gc Job's default image offers). Built and imported once."""
    if node_has(stack, PYTHON_IMAGE):
        return PYTHON_IMAGE
    if not _PYTHON.exists():
        raise AssertionError(f"{_PYTHON} is absent: the Python image for the lab is built from Debian's python3.11")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "python.tar"
        archive.write_bytes(_oci_archive(_python_files(), PYTHON_IMAGE))
        subprocess.run([str(SHARED / "lab-kube" / "real-node.sh"), "import", str(archive)], env=stack.env(),
                       check=True, capture_output=True, timeout=300)
    deadline = time.monotonic() + 60
    while not node_has(stack, PYTHON_IMAGE) and time.monotonic() < deadline:
        time.sleep(2)  # the kubelet reports images in its next node status
    return PYTHON_IMAGE


def _libraries(paths: list[Path]) -> set[Path]:
    found: set[Path] = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
                found.add(Path(parts[2]))
            elif parts and parts[0].startswith("/"):
                found.add(Path(parts[0]))
    return found


def _python_files() -> dict[str, Path | str]:
    """Image path -> host file (or symlink target, as a str)."""
    stdlib = Path("/usr/lib/python3.11")
    files: dict[str, Path | str] = {"usr/bin/python3.11": _PYTHON, "usr/bin/python3": "python3.11",
                                    "usr/bin/python": "python3.11"}
    modules = []
    for path in sorted(stdlib.rglob("*")):
        relative = path.relative_to(stdlib)
        if any(part in _SKIP for part in relative.parts) or not path.is_file():
            continue
        files[f"usr/lib/python3.11/{relative}"] = path
        if path.suffix == ".so":
            modules.append(path)
    for lib in _libraries([_PYTHON, *modules]):
        files[str(lib.resolve()).lstrip("/")] = lib.resolve()
        if lib.resolve() != lib:
            files[str(lib).lstrip("/")] = str(lib.resolve())
    return files


def _oci_archive(files: dict[str, Path | str], name: str) -> bytes:
    """An OCI image archive (for `ctr images import`) of one layer holding `files`, plus /tmp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
        for target, source in sorted(files.items()):
            info = tarfile.TarInfo(target)
            if isinstance(source, str):
                info.type, info.linkname = tarfile.SYMTYPE, source
                tar.addfile(info)
                continue
            data = source.read_bytes()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    layer = raw.getvalue()
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media, "digest": digest, "size": len(data)}

    compressed = gzip.compress(layer, 6, mtime=0)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["python"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [blob(compressed, "application/vnd.oci.image.layer.v1.tar+gzip")]}
    desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest[7:]}", data)
    return out.getvalue()


# Writer pods -----------------------------------------------------------------------------------------------------

CLIENT = Path(__file__).with_name("registryclient.py")


def client_config_map(stack: Stack, namespace: str) -> None:
    """The registry client (tests/support/registryclient.py) as a ConfigMap `registryclient` in `namespace`."""
    stack.apply({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "registryclient", "namespace": namespace},
                  "data": {"registryclient.py": CLIENT.read_text()}})


def writer_pod(namespace: str, name: str, account: str, args: list[str], *, node: str,
               memory: str = "256Mi") -> dict:
    """A pod running the registry client with `args` as `account`, behind its sidecar (the namespace is injected),
    starting once the sidecar is ready and stopping it when done so the pod completes."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {TIER: "true", "app": "fl-writer"},
                         "annotations": {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
                                         # small requests: many writers fit on the lab's one 2-CPU node
                                         "sidecar.istio.io/proxyCPU": "10m", "sidecar.istio.io/proxyMemory": "32Mi"}},
            "spec": {"serviceAccountName": account, "restartPolicy": "Never", "nodeName": node,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "writer", "image": PYTHON_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["python", "/opt/client/registryclient.py", *args, "--quit-sidecar"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                                   "limits": {"memory": memory}},
                                     "volumeMounts": [{"name": "client", "mountPath": "/opt/client"}]}],
                     "volumes": [{"name": "client", "configMap": {"name": "registryclient"}}]}}


def client_result(stack: Stack, namespace: str, pod: str, *, timeout: float = 600) -> dict:
    """The JSON line the registry client printed in `pod`, once it has (waits for it)."""
    return client_results(stack, namespace, pod, timeout=timeout)[0]


def client_results(stack: Stack, namespace: str, pod: str, *, timeout: float = 600) -> list[dict]:
    """The JSON lines the registry client printed in `pod` (one per writer), once it has (waits for them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = stack.kubectl("-n", namespace, "logs", pod, "-c", "writer", check=False)
        found = [dict(json.loads(line[len("REGISTRY-CLIENT "):])) for line in done.stdout.splitlines()
                 if line.startswith("REGISTRY-CLIENT ")]
        if found:
            return found
        phase = (get(stack, "pod", pod, namespace=namespace) or {}).get("status", {}).get("phase")
        if phase == "Failed":
            raise AssertionError(f"writer {namespace}/{pod} failed: {done.stdout[-2000:]}{done.stderr[-500:]}")
        time.sleep(3)
    raise AssertionError(f"writer {namespace}/{pod} printed no result in {timeout:.0f}s")


def container_pid(stack: Stack, container_id: str) -> int:
    """The host PID of a container's main process on the real node (this host), from its containerd task."""
    sock = stack.lab_node / "run" / "containerd.sock"
    out = subprocess.run(["ctr", "-a", str(sock), "-n", "k8s.io", "task", "ls"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id.split("//")[-1]:
            return int(pid)
    raise AssertionError(f"no task for container {container_id}")


def container_id(pod: dict, name: str) -> str:
    return str(next(c["containerID"] for c in pod["status"]["containerStatuses"] if c["name"] == name))

"""Runs a registry's rendered gc CronJob on the lab the way Kubernetes would run its pod.

- the ConfigMap volumes are written out item by item, and every mount path in the containers' commands and
  environment is mapped to its directory here (the registry's data directory for the claim);
- `python` is this interpreter without site-packages (-S), as bare as the Job's image: the code runs from the
  ConfigMap's files only, never from the meshreg installed here;
- `registry` is distribution's binary (Debian calls it docker-registry), started directly as the containers'
  command says, as the kubelet starts it (no shell);
- the init container runs to completion first, then every container at once;
- the gc container reaches the registry through an outbound Envoy that carries its requests over mTLS with the
  gc ServiceAccount's certificate, as its sidecar would;
- the Kubernetes API is a stand-in for the registry's Deployment and for the Job's own pod: a server-side apply of
  the registry container's environment restarts the lab's registry with that environment, as a rollout would; the
  pod's status has each container's state, and its log endpoint serves each container's output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from . import envoy
from .mesh import one
from .processes import Server, free_port, start_envoy

RESULT = "MESHREG-GC-RESULT "
NODE = "lab-node-1"


class Deployment(ThreadingHTTPServer):
    """The registry's Deployment behind a tiny API: GET shows it rolled out, an apply restarts the registry."""

    def __init__(self, lab, name: str):
        super().__init__(("127.0.0.1", 0), _DeploymentHandler)
        self.lab, self.name = lab, name
        self.obj = json.loads(json.dumps(one(lab.objects, "Deployment", name)))
        self.obj["metadata"]["generation"] = 1
        self.applied: list[dict] = []  # every apply body, with its query
        self.env: dict[str, str] = {}
        self.quits = 0
        self.pod: dict[str, subprocess.Popen] = {}  # the running Job pod's containers
        self.unstartable: set[str] = set()  # containers whose image cannot be pulled
        self.outputs: dict[str, Path] = {}  # container -> the file its output goes to
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def status(self) -> dict:
        n = self.obj["spec"].get("replicas", 1)
        gen = self.obj["metadata"]["generation"]
        return {**self.obj, "status": {"observedGeneration": gen, "replicas": n, "updatedReplicas": n,
                                       "availableReplicas": n, "readyReplicas": n}}

    def apply(self, body: dict, query: dict) -> dict:
        with self.lock:
            self.applied.append({"body": body, "query": query})
            [container] = body["spec"]["template"]["spec"]["containers"]
            assert container["name"] == "registry", container
            self.env = {e["name"]: e["value"] for e in container.get("env", [])}
            self.obj["metadata"]["generation"] += 1
            restart_registry(self.lab, self.env)
            return self.status()

    def pod_status(self) -> dict:
        statuses = [{"name": name, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling "
                                                         "image \"docker.io/library/registry:2.8.3\""}}}
                    for name in self.unstartable]
        for name, proc in self.pod.items():
            code = proc.poll()
            state = {"running": {}} if code is None else {"terminated": {"exitCode": code, "reason": "Completed"
                                                                          if code == 0 else "Error"}}
            statuses.append({"name": name, "state": state})
        return {"kind": "Pod", "status": {"containerStatuses": statuses}}

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _DeploymentHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if "/pods/" not in url.path:
            self._reply(200, self.server.status())
        elif url.path.endswith("/log"):
            container = dict(p.split("=", 1) for p in url.query.split("&"))["container"]
            data = self.server.outputs[container].read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._reply(200, self.server.pod_status())

    def do_POST(self):  # the sidecar's /quitquitquit
        self.server.quits += 1
        self._reply(200, {})

    def do_PATCH(self):
        url = urlsplit(self.path)
        expected = f"/apis/apps/v1/namespaces/{self.server.lab.cfg.namespace}/deployments/{self.server.name}"
        if url.path != expected or self.headers["Content-Type"] != "application/apply-patch+yaml":
            self._reply(400, {"message": f"unexpected {self.command} {self.path} {self.headers['Content-Type']}"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._reply(200, self.server.apply(body, dict(p.split("=", 1) for p in url.query.split("&"))))


def restart_registry(lab, extra_env: dict) -> None:
    """Stop the lab's registry and start it again on the same port with `extra_env` (a new pod)."""
    old = lab.servers[0]
    old.stop()
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(lab.storage),
           "REGISTRY_HTTP_ADDR": f"127.0.0.1:{lab.registry_port}", **extra_env}
    argv = ["docker-registry", "serve", str(lab.root / "registry" / "config.yml")]
    server = Server(argv, log=lab.root / f"registry-{len(lab.servers)}-{os.getpid()}.log", env=env)
    lab.servers[0] = server
    server.wait_http(f"http://{lab.direct}/v2/")


def outbound(lab, identity: str) -> tuple[Server, str]:
    """An Envoy taking plain HTTP and forwarding it over mTLS as `identity` (a client's sidecar)."""
    port, admin = free_port(), free_port()
    cfg = envoy.bootstrap(admin_port=admin, listeners=[envoy.node_proxy_listener(
        port=port, rbac=[], route_timeout="0s", tuning=lab.tuning)], clusters=[envoy.sidecar_cluster(
            port=lab.sidecar_port, client=lab.identity(identity), registry_uri=lab.registry_identity.uri,
            tuning=lab.tuning)])
    server = start_envoy(cfg, lab.root / f"outbound-{identity.replace('/', '.')}.json")
    return server, f"http://127.0.0.1:{port}"


@dataclass
class JobRun:
    result: dict
    logs: dict[str, str]
    codes: dict[str, int]
    applied: list[dict] = field(default_factory=list)


class GcJob:
    """The rendered CronJob of registry `name`, runnable again and again on `lab`."""

    def __init__(self, lab, name: str = "registry"):
        self.lab = lab
        self.cron = one(lab.objects, "CronJob", f"{name}-gc")
        self.pod = self.cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.deployment = Deployment(lab, name)
        self.proxy: Server | None = None
        try:
            self.proxy, self.registry_url = outbound(lab, lab.cfg.gc_identity(lab.cfg.get_registry(name)))
            self.bin = lab.root / "bin"
            self.bin.mkdir(exist_ok=True)
            if not (self.bin / "registry").exists():
                (self.bin / "registry").symlink_to(shutil.which("docker-registry"))
        except BaseException:
            self.close()
            raise
        self.runs = 0

    def _volumes(self, root: Path) -> dict[str, Path]:
        """Volume name -> local directory, with ConfigMap items written out as Kubernetes mounts them."""
        out = {}
        for volume in self.pod["volumes"]:
            where = root / volume["name"]
            if "configMap" in volume:
                data = one(self.lab.objects, "ConfigMap", volume["configMap"]["name"])["data"]
                items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (where / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (where / item["path"]).write_text(data[item["key"]])
            elif "persistentVolumeClaim" in volume:
                where = self.lab.storage
            where.mkdir(parents=True, exist_ok=True)
            out[volume["name"]] = where
        return out

    def _process(self, container: dict, mounts: dict[str, Path], extra: dict) -> tuple[list[str], dict, str | None]:
        paths = {m["mountPath"]: str(mounts[m["name"]]) for m in container["volumeMounts"]}

        def local(value: str) -> str:
            for mount, here in sorted(paths.items(), key=lambda p: -len(p[0])):
                if value == mount or value.startswith(mount + "/"):
                    return here + value[len(mount):]
            return value

        env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(self.lab.root)}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = local(e["value"])
            elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                env[e["name"]] = NODE
        argv = [b for a in container["command"] for b in ([sys.executable, "-S"] if a == "python" else [local(a)])]
        cwd = local(container["workingDir"]) if container.get("workingDir") else None
        return argv, {**env, **extra.get(container["name"], {})}, cwd

    def run(self, *, dry_run: bool = False, timeout: float = 300, stop_when: str | None = None,
            replace: dict[str, list[str]] | None = None, unstartable: tuple[str, ...] = ()) -> JobRun:
        """The Job pod: its init container, then every container at once, to completion; the coordinator's result
        line parsed. `stop_when`: SIGTERM the pod's containers (the kubelet stopping it) once the coordinator has
        printed a line containing that text; `replace`: a container's command replaced (one that fails);
        `unstartable`: containers whose image cannot be pulled (never started)."""
        self.runs += 1
        root = self.lab.root / f"gc-run-{self.runs}"
        mounts = self._volumes(root)
        config = root / "registry-config.yml"  # the registry's config, pointing at the lab's storage
        config.write_text((mounts["config"] / "config.yml").read_text().replace("/var/lib/registry",
                                                                                 str(self.lab.storage)))
        extra = {"gc": {"MESHREG_GC_REGISTRY": self.registry_url, "MESHREG_GC_KUBE": self.deployment.url,
                        "MESHREG_GC_SIDECAR": self.deployment.url + "/quitquitquit", "POD_NAME": f"gc-{self.runs}",
                        "MESHREG_GC_REGISTRY_CONFIG": str(config), "MESHREG_GC_DATA": str(self.lab.storage),
                        **({"MESHREG_GC_DRY_RUN": "true"} if dry_run else {})}}
        [init] = self.pod["initContainers"]
        argv, env, cwd = self._process(init, mounts, extra)
        subprocess.run(argv, env={**env, **extra["gc"]}, cwd=cwd, check=True, timeout=60)
        before = len(self.deployment.applied)
        procs = self.deployment.pod = {}
        self.deployment.unstartable = set(unstartable)
        for container in self.pod["containers"]:
            if container["name"] in unstartable:
                continue
            argv, env, cwd = self._process(container, mounts, extra)
            argv = (replace or {}).get(container["name"], argv)
            out = self.deployment.outputs[container["name"]] = root / f"{container['name']}.log"
            with open(out, "wb") as sink:
                procs[container["name"]] = subprocess.Popen(argv, env=env, cwd=cwd, stdout=sink,
                                                            stderr=subprocess.STDOUT)
        if stop_when is not None:
            self._stop_when(stop_when, procs, timeout=timeout)
        for proc in procs.values():
            proc.wait(timeout=timeout)
        logs = {name: self.deployment.outputs[name].read_text() for name in procs}
        codes = {name: p.returncode for name, p in procs.items()}
        lines = [line for line in logs["gc"].splitlines() if line.startswith(RESULT)]
        assert len(lines) == 1, logs
        return JobRun(json.loads(lines[0][len(RESULT):]), logs, codes, self.deployment.applied[before:])

    def _stop_when(self, text: str, procs: dict[str, subprocess.Popen], *, timeout: float) -> None:
        """SIGTERM every container once the coordinator printed `text`, as the kubelet stops a pod."""
        deadline = time.monotonic() + timeout
        while text not in self.deployment.outputs["gc"].read_text():
            assert procs["gc"].poll() is None and time.monotonic() < deadline, f"never printed {text!r}"
            time.sleep(0.05)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.deployment.close()
        if self.proxy:
            self.proxy.stop()

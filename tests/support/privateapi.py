"""A second kube-apiserver of the API-server lab, private to one test: the lab's own binary and flags, on another
port of 127.0.0.1, on the lab's etcd (as an HA peer is), so it serves the same cluster (the real node, its pods,
their port-forwards through the real kubelet) and can be killed and started again without touching the API server
everyone else uses. Its endpoint reconciler is off: it never writes the `kubernetes` Service's endpoints."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

from support.realstack import Stack

PORT = 17443


class PrivateApiServer:
    def __init__(self, stack: Stack, directory: Path, *, port: int = PORT) -> None:
        self.stack, self.directory, self.port = stack, directory, port
        self.kubeconfig = directory / "kubeconfig-private"
        config = yaml.safe_load(stack.kubeconfig.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.args = self._args()
        self.proc: subprocess.Popen | None = None
        self.starts: list[float] = []  # seconds each start took to be ready

    def _args(self) -> list[str]:
        """The lab API server's own command line, on this port, with its own cert dir and no endpoint reconciler."""
        pid = (self.stack.lab_kube / "run" / "kube-apiserver.pid").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        own = {"--secure-port": str(self.port), "--bind-address": "127.0.0.1", "--endpoint-reconciler-type": "none",
               "--cert-dir": str(self.directory / "cert-dir")}
        kept = [a for a in args[1:] if a.split("=", 1)[0] not in own]
        return [args[0], *kept, *(f"{k}={v}" for k, v in own.items())]

    def start(self, *, timeout: float = 120) -> float:
        """Start it and wait until /readyz answers; the seconds that took."""
        started = time.monotonic()
        log = open(self.directory / "kube-apiserver.log", "a")  # noqa: SIM115 (the process keeps it)
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"the private API server exited {self.proc.returncode}: see {log.name}")
            ready = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
                                   capture_output=True, text=True, timeout=30, check=False)
            if ready.stdout.strip() == "ok":
                self.starts.append(time.monotonic() - started)
                return self.starts[-1]
            time.sleep(0.5)
        raise AssertionError(f"the private API server was not ready in {timeout:.0f}s")

    def kill(self) -> None:
        """SIGKILL, as a crashed or restarted control-plane node is seen from outside."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

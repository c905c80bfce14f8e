"""A real containerd for the lab: its own root, state, socket and registry config_path in a temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc

from .cri import Runtime
from .processes import Server

# Plugins a pull does not need. The native snapshotter unpacks on any filesystem (overlayfs cannot sit on an
# overlay /tmp, as in many CI containers); the snapshotter is not what these tests are about.
DISABLED = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.overlayfs", "io.containerd.internal.v1.opt",
            "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
CRI = 'plugins."io.containerd.grpc.v1.cri"'
NAMESPACE = "k8s.io"  # where the CRI plugin keeps images


def unavailable() -> str | None:
    """Why containerd cannot run here, or None."""
    if not (shutil.which("containerd") and shutil.which("ctr")):
        return "containerd and ctr are not installed (apt-get install -y containerd)"
    if os.geteuid() != 0:
        return "containerd's CRI plugin needs root (it mounts snapshots and manages cgroups); run the tests as root"
    return None


def config(root: Path) -> str:
    """containerd 1.6 config (version 2): everything under `root`, CRI with config_path = root/certs.d."""
    quoted = ", ".join(f'"{p}"' for p in DISABLED)
    return f"""\
version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = [{quoted}]

[grpc]
  address = "{root}/containerd.sock"

[debug]
  level = "debug"

[{CRI}]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{CRI}.containerd]
  snapshotter = "native"

[{CRI}.cni]
  bin_dir = "{root}/cni/bin"
  conf_dir = "{root}/cni/conf"

[{CRI}.registry]
  config_path = "{root}/certs.d"
"""


class Containerd:
    """containerd started with `config(root)`; `close()` stops it."""

    def __init__(self, root: Path):
        self.root = root
        self.hosts_dir = root / "certs.d"
        for d in (self.hosts_dir, root / "cni" / "bin", root / "cni" / "conf"):
            d.mkdir(parents=True, exist_ok=True)
        (root / "config.toml").write_text(config(root))
        self.socket = str(root / "containerd.sock")
        self.log = root / "containerd.log"
        self.server = Server(["containerd", "--config", str(root / "config.toml")], log=self.log)
        self.cri = Runtime(self.socket)
        try:
            self.info = self._wait()
        except BaseException:
            self.close()
            raise

    def _wait(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.server.proc.poll() is None:
            try:
                return self.cri.version()
            except grpc.RpcError:
                time.sleep(0.2)
        raise RuntimeError(f"containerd did not serve CRI; log {self.log}:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def ctr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """containerd's own client, in the CRI plugin's namespace."""
        return subprocess.run(["ctr", "--address", self.socket, "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        self.cri.close()
        self.server.stop()

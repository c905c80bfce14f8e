"""A private containerd for the lab (own root, state and socket under the lab directory; the CRI plugin off), so
a real container runtime can pull from the node proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .processes import Server

CONFIG = """\
version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


def missing() -> str | None:
    """Why a private containerd cannot run here, or None."""
    if not (shutil.which("containerd") and shutil.which("ctr")):
        return "containerd and ctr are not installed (apt-get install -y containerd)"
    if os.geteuid() != 0:
        return "containerd needs root"
    return None


class Containerd:
    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.socket = root / "containerd.sock"
        (root / "config.toml").write_text(CONFIG.format(root=root))
        self.server = Server(["containerd", "--config", str(root / "config.toml")], log=root / "containerd.log")
        deadline = time.monotonic() + 20
        while not self._answers():
            if time.monotonic() > deadline or self.server.proc.poll() is not None:
                self.server.stop()
                raise RuntimeError(f"containerd did not start: {(root / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        return self.socket.exists() and self.ctr("version").returncode == 0

    def ctr(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", "meshreg-e2e", *args], capture_output=True,
                              text=True, timeout=60)

    def pull(self, ref: str) -> subprocess.CompletedProcess:
        """Pull and unpack `ref` over plain HTTP (the native snapshotter works in any container)."""
        return self.ctr("images", "pull", "--plain-http", "--snapshotter", "native", ref)

    def stop(self) -> None:
        self.server.stop()

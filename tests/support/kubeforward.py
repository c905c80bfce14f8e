"""A tiny Kubernetes API server on 127.0.0.1 for `meshreg connect`: pods (list, get) as JSON, and both port-forward
protocols, forwarding to a real local TCP server.

- SPDY (`portforward.k8s.io`, kubectl's; support/spdyforward.py): POST .../portforward with `Upgrade: SPDY/3.1`;
  a session to a pod that is no longer in `pods` stays open and fails to dial it, as the kubelet's does.
- WebSocket (`v4.channel.k8s.io`), as kubernetes/stream/ws_client.py reads it: every message is binary and starts
  with a channel byte, the data channel of the first port being 0 and its error channel 1; the first message on each
  channel is the port number, two bytes little-endian; later messages on channel 0 carry the stream, on channel 1 an
  error text.

A front server reads each request's head: SPDY upgrades it serves itself (or, with `spdy = False`, answers 400 as a
server or proxy that does not pass SPDY would), everything else goes on to a `websockets` server behind it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import serve

from support.spdyforward import SpdyServer

DATA, ERROR = 0, 1


def pod(name: str, *, ready: bool = True, labels: dict | None = None, created: str = "2026-01-01T00:00:00Z",
        deleting: bool = False) -> dict:
    meta = {"name": name, "labels": labels or {}, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:10:00Z"
    return {"metadata": meta, "status": {"phase": "Running" if ready else "Pending", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


class KubeForward:
    """The fake server; `pods` maps namespace -> {name: pod}; `target` is the (host, port) every forward reaches."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.pods: dict[str, dict[str, dict]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.forwards: list[str] = []  # "namespace/pod" of every port-forward served
        self.deny_forward = False  # answer port-forward upgrades with 403
        self.spdy = True  # False: answer SPDY upgrades with 400, as a server or proxy without SPDY does
        self.sessions: list[SpdyServer] = []  # every SPDY session served, in order
        self.spdy_options: dict = {}  # passed to every new SpdyServer (see support/spdyforward.py)
        self._server = serve(self._forward, "127.0.0.1", 0, process_request=self._http,
                             subprotocols=["v4.channel.k8s.io"], max_size=None, compression=None,
                             close_timeout=0.5)  # a plain HTTP answer waits this long for the client to hang up
        self._behind = self._server.socket.getsockname()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        fake = self

        class Front(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._front(self.request)

        self._front_server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Front)
        self._front_server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._front_server.server_address[1]}"
        self._front_thread = threading.Thread(target=self._front_server.serve_forever, args=(0.05,), daemon=True)
        self._front_thread.start()

    def close(self) -> None:
        for session in self.sessions:
            session.kill()
        self._front_server.shutdown()
        self._front_server.server_close()
        self._front_thread.join(5)
        self._server.shutdown()
        self._thread.join(5)

    def remove_pod(self, namespace: str, name: str) -> None:
        """The pod is deleted and its containers stop: its connections end; its sessions stay open, as the kubelet's
        do, and answer new streams with a failed dial."""
        del self.pods[namespace][name]
        for session in self.sessions:
            if session.pod == f"{namespace}/{name}":
                session.pod_stopped()

    def open_streams(self) -> int:
        """Streams of every SPDY session still open on the server's side (neither closed both ways nor reset)."""
        return sum(s.open_streams() for s in self.sessions if s.alive)

    # --- the front: SPDY here, everything else behind -----------------------------------------------------------------
    def _front(self, sock: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                return
            head += data
        raw, _, rest = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if method == "POST" and headers.get("upgrade", "").lower() == "spdy/3.1":
            self._spdy(sock, path, headers, rest)
        else:
            self._splice(sock, head)

    def _spdy(self, sock: socket.socket, path: str, headers: dict, rest: bytes) -> None:
        self.requests.append(("POST", path))
        parts = urlsplit(path).path.strip("/").split("/")  # api v1 namespaces NS pods NAME portforward
        if not self.spdy:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 21\r\n\r\nno upgrade to SPDY/3.1")
            return
        denied = self._answer(path)
        if denied is not None:
            sock.sendall(f"HTTP/1.1 {denied.status_code} {denied.reason_phrase}\r\n".encode()
                         + b"".join(f"{k}: {v}\r\n".encode() for k, v in denied.headers.raw_items())
                         + b"\r\n" + denied.body)
            return
        assert headers.get("x-stream-protocol-version") == "portforward.k8s.io", headers
        assert headers.get("authorization") == "Bearer secret-token", headers
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
        session = SpdyServer(sock, self.target, pod=f"{parts[3]}/{parts[5]}", on_forward=self.forwards.append,
                             present=lambda: parts[5] in self.pods.get(parts[3], {}), **self.spdy_options)
        self.sessions.append(session)
        session.serve(rest)

    def _splice(self, sock: socket.socket, head: bytes) -> None:
        behind = socket.create_connection(self._behind)
        behind.sendall(head)

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=copy, args=(behind, sock), daemon=True)
        back.start()
        copy(sock, behind)
        back.join(5)
        behind.close()

    # --- plain HTTP: the reads `connect` makes ---------------------------------------------------------------------
    def _http(self, connection, request):
        self.requests.append(("GET", request.path))
        return self._answer(request.path)

    def _answer(self, path: str):
        url = urlsplit(path)
        parts = url.path.strip("/").split("/")  # api v1 namespaces NS pods [NAME [portforward]]
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "pods":
            return _json(404, {"kind": "Status", "code": 404, "message": f"{url.path} not found"})
        found = self.pods.get(parts[3], {})
        if len(parts) == 5:
            wanted = dict(p.split("=", 1) for p in parse_qs(url.query).get("labelSelector", [""])[0].split(",") if p)
            items = [p for p in found.values() if wanted.items() <= p["metadata"]["labels"].items()]
            return _json(200, {"kind": "PodList", "items": items})
        if parts[5] not in found:
            return _json(404, {"kind": "Status", "code": 404, "message": f'pods "{parts[5]}" not found'})
        if len(parts) == 6:
            return _json(200, found[parts[5]])
        if self.deny_forward:  # as a real API server says it
            return _json(403, {"kind": "Status", "code": 403, "reason": "Forbidden", "message": (
                f'pods "{parts[5]}" is forbidden: User "dev" cannot create resource "pods/portforward" in API group '
                f'"" in the namespace "{parts[3]}"')})
        return None  # go on with the WebSocket handshake

    # --- the port-forward stream ------------------------------------------------------------------------------------
    def _forward(self, ws) -> None:
        path = urlsplit(ws.request.path)
        port = int(parse_qs(path.query)["ports"][0])
        self.forwards.append("/".join(path.path.strip("/").split("/")[3:6:2]))
        for channel in (DATA, ERROR):
            ws.send(bytes([channel]) + port.to_bytes(2, "little"))
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as e:
            ws.send(bytes([ERROR]) + f"error forwarding port {port}: {e}".encode())
            return
        upstream.settimeout(None)
        back = threading.Thread(target=self._back, args=(upstream, ws), daemon=True)
        back.start()
        try:
            for message in ws:
                if message[:1] == bytes([DATA]):
                    upstream.sendall(message[1:])
        except Exception:  # the client went away mid-message
            pass
        finally:
            upstream.shutdown(socket.SHUT_RDWR)  # wakes the reader thread, which a close() alone would not
            back.join(5)
            upstream.close()

    @staticmethod
    def _back(upstream: socket.socket, ws) -> None:
        try:
            while data := upstream.recv(256 * 1024):
                ws.send(bytes([DATA]) + data)
        except Exception:
            pass
        ws.close()


def _json(status: int, body: dict) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return Response(status, {200: "OK", 403: "Forbidden", 404: "Not Found"}[status], headers, data)

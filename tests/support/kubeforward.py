"""A tiny Kubernetes API server on 127.0.0.1 for `meshreg connect`: pods (list, get) as JSON, and the WebSocket
port-forward the official Python client speaks, forwarding to a real local TCP server.

The protocol, as kubernetes/stream/ws_client.py reads it: the client asks for `v5.channel.k8s.io,v4.channel.k8s.io`
(the kubelet answers with v4 for port-forward); every message is binary and starts with a channel byte, the data
channel of the first port being 0 and its error channel 1; the first message on each channel is the port number,
two bytes little-endian; later messages on channel 0 carry the stream, on channel 1 an error text.
"""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import serve

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
        self._server = serve(self._forward, "127.0.0.1", 0, process_request=self._http,
                             subprotocols=["v4.channel.k8s.io"], max_size=None, compression=None,
                             close_timeout=0.5)  # a plain HTTP answer waits this long for the client to hang up
        self.url = f"http://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    # --- plain HTTP: the reads `connect` makes ---------------------------------------------------------------------
    def _http(self, connection, request):
        url = urlsplit(request.path)
        self.requests.append(("GET", request.path))
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

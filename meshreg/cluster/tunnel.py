"""One Kubernetes port-forward stream over a WebSocket, relayed to one local connection with flow control.

The protocol is the API server's `v4.channel.k8s.io` port-forward (the kubelet's WebSocket stream server): every
message is binary and starts with a channel byte, 0 for the data of the one forwarded port and 1 for its error
text; the server's first message on each channel is the port, two bytes little-endian. There is no half-close: a
stream ends when either side closes the WebSocket.

The official client's port-forward keeps what it receives in a byte string that grows without bound and slices it
on every send, and keeps polling after the local client has gone. Here the `websockets` library (its C extension
masks frames) does the framing on asyncio, and every direction waits for the other end to take what it has before
reading more: at most `max_queue` frames are buffered from the server, at most `write_limit` bytes towards it, and
one chunk towards the local client. When the local client goes, the stream is closed at once, and nothing is left
running. TLS and credentials are those of the kubeconfig as `kubernetes.client.Configuration` loaded it (CA, client
certificate, bearer token, refreshed exec-plugin tokens, basic auth, proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from meshreg.cluster.errors import translate
from meshreg.errors import ClusterError

__all__ = ["CHUNK", "PROTOCOL", "Endpoint", "Outcome", "Tunnel", "endpoint", "open_tunnel"]

PROTOCOL = Subprotocol("v4.channel.k8s.io")
DATA, ERROR = 0, 1
CHUNK = 64 * 1024  # bytes read from the local client per message (larger ones cost asyncio's TLS more CPU)
MAX_FRAME = 4 << 20  # the largest message accepted from the server (the kubelet sends at most 32 KiB)
MAX_QUEUE = 16  # messages buffered from the server before reading pauses (TCP then holds the sender back)
WRITE_LIMIT = 2 * CHUNK  # bytes buffered towards the server before a send waits
OPEN_TIMEOUT = 20.0
CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Endpoint:
    """Where and how to open port-forwards: the API server's URL, TLS, and a function giving fresh auth headers."""

    url: str  # https://host:port[/prefix]
    ssl: ssl.SSLContext | None
    server_hostname: str | None
    headers: Callable[[], dict[str, str]]
    proxy: str | None = None

    def forward_url(self, namespace: str, pod: str, port: int) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
        return urlunsplit((scheme, parts.netloc, path, f"ports={port}", ""))


def endpoint(configuration: Any) -> Endpoint:
    """The Endpoint of a loaded `kubernetes.client.Configuration`, with its TLS settings and credentials."""
    context = None
    if configuration.host.startswith("https"):
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif configuration.assert_hostname is False:
            context.check_hostname = False

    def headers() -> dict[str, str]:
        # auth_settings() calls the refresh hook an exec plugin installs, so every stream gets a current token.
        return {s["key"]: s["value"] for s in configuration.auth_settings().values()
                if s.get("in") == "header" and s.get("value")}

    return Endpoint(url=configuration.host, ssl=context, server_hostname=configuration.tls_server_name or None,
                    headers=headers, proxy=configuration.proxy or None)


@dataclass
class Outcome:
    """What one relayed connection carried, and the error text the server sent for it, if any."""

    sent: int = 0  # bytes from the local client to the pod
    received: int = 0  # bytes from the pod to the local client
    error: str = ""


class Tunnel:
    """An open port-forward to one pod port; `relay` carries one local connection over it and closes both."""

    def __init__(self, ws: ClientConnection, *, port: int):
        self.ws, self.port = ws, port
        self.outcome = Outcome()

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Outcome:
        """Copy both ways until either side ends; then close the WebSocket and the local connection."""
        up = asyncio.create_task(self._up(reader))
        down = asyncio.create_task(self._down(writer))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            await self.close()
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
        return self.outcome

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ConnectionClosed):
            self.ws.transport.abort()

    async def _up(self, reader: asyncio.StreamReader) -> None:
        """Local client -> pod. The local end closing (or half-closing: the push proxy's Envoy, an HTTP server, would
        end the connection on a half-close too) ends the stream."""
        try:
            while data := await reader.read(CHUNK):
                await self.ws.send(b"\x00" + data)
                self.outcome.sent += len(data)
        except (OSError, ConnectionClosed):
            pass

    async def _down(self, writer: asyncio.StreamWriter) -> None:
        """Pod -> local client, each message written out before the next is read."""
        try:
            async for message in self.ws:
                if not isinstance(message, bytes) or not message:
                    continue
                if message[0] == DATA:
                    writer.write(message[1:])
                    self.outcome.received += len(message) - 1
                    await writer.drain()
                elif message[0] == ERROR:
                    self.outcome.error += message[1:].decode("utf-8", "replace")
        except (OSError, ConnectionClosed):
            pass


async def open_tunnel(ep: Endpoint, *, namespace: str, pod: str, port: int) -> Tunnel:
    """A port-forward to pod:port, after the server has named the port on both channels; ClusterError (one line)
    when the server refuses it or cannot be reached."""
    where = f"port-forward to pod {namespace}/{pod}"
    try:
        ws = await connect(ep.forward_url(namespace, pod, port), ssl=ep.ssl, server_hostname=ep.server_hostname,
                           additional_headers=ep.headers(), subprotocols=[PROTOCOL], compression=None,
                           proxy=ep.proxy, open_timeout=OPEN_TIMEOUT, close_timeout=CLOSE_TIMEOUT,
                           ping_interval=None, max_size=MAX_FRAME, max_queue=MAX_QUEUE, write_limit=WRITE_LIMIT,
                           user_agent_header="meshreg")
    except InvalidStatus as e:
        raise _refusal(e, where) from e
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as e:
        raise ClusterError(f"{where} failed: cannot reach the API server at {ep.url}: {_reason(e)}") from e
    tunnel = Tunnel(ws, port=port)
    try:
        await asyncio.wait_for(_expect_ports(ws, port), OPEN_TIMEOUT)
    except (ClusterError, ConnectionClosed, asyncio.TimeoutError) as e:
        await tunnel.close()
        detail = str(e) if isinstance(e, ClusterError) else "the server closed the stream before naming the port"
        raise ClusterError(f"{where} failed: {detail}") from e
    return tunnel


async def _expect_ports(ws: ClientConnection, port: int) -> None:
    """The server's first message on each channel is the port it forwards."""
    seen: set[int] = set()
    while len(seen) < 2:
        message = await ws.recv(decode=False)
        if len(message) != 3 or message[0] not in (DATA, ERROR) or int.from_bytes(message[1:], "little") != port:
            text = message[1:].decode("utf-8", "replace").strip() if message[:1] == bytes([ERROR]) else ""
            raise ClusterError(text or f"unexpected first message {message[:16]!r}")
        seen.add(message[0])


def _refusal(e: InvalidStatus, where: str) -> ClusterError:
    """The refused handshake as meshreg says every API error (RBAC, admission, a pod that is gone)."""
    try:
        status = json.loads(e.response.body or b"{}")
    except ValueError:
        status = {}
    return translate(e.response.status_code, status if isinstance(status, dict) else {}, subject=where)


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__

"""Requests written byte for byte (no client library resolves `..`, merges `//` or re-encodes anything), sent over
one kept-alive connection, plain or mTLS, and what a sidecar's answer says about who decided it.

A sidecar answers a request it routed to its application with the application's response plus
`x-envoy-upstream-service-time` (the router sets it); an RBAC denial is its own `403` (body `RBAC: access denied`,
none for HEAD), and nothing else in front of the registry answers 403 itself. Any other answer of its own (`400`
for a path it rejects, for instance) came before any policy; a connection that carries no HTTP at all (STRICT mTLS
and a plain-text client) ends before all of them.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

ALLOW, DENY, REJECT, REFUSE = "ALLOW", "DENY", "REJECT", "REFUSE"
OUTCOMES = (ALLOW, DENY, REJECT, REFUSE)
UPSTREAM = "x-envoy-upstream-service-time"
# Istio's inbound HTTP filter chain is chosen by this ALPN (the client sidecar sends it), as lab-istio's probe does.
ISTIO_ALPN = ["istio-http/1.1", "istio", "http/1.1"]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def outcome(self) -> str:
        """ALLOW (the application answered), DENY (an RBAC filter refused) or REJECT (Envoy answered itself)."""
        if UPSTREAM in self.headers:
            return ALLOW
        if self.status == 403:  # the RBAC filter's answer (its body `RBAC: access denied`, absent for HEAD)
            return DENY
        return REJECT


class Closed(Exception):
    """The connection ended before a whole response arrived (for a new connection: no HTTP was spoken)."""


def client_context(*, cert: str, key: str, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client TLS context presenting `cert` that does not verify the server (the tests judge the server's answers,
    not its name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(alpn or ISTIO_ALPN)
    return ctx


class Connection:
    """One HTTP/1.1 connection to `address` (host, port), opened on first use and again after the server closed it."""

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext | None, *, host: str = "registry",
                 timeout: float = 10.0):
        self.address, self.context, self.host, self.timeout = address, context, host, timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._session: ssl.SSLSession | None = None  # resumed on the next connection: a full handshake costs more
        self.opened = 0

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else Nagle holds the request after the handshake
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, session=self._session)
            except (ssl.SSLError, OSError) as e:
                sock.close()
                raise Closed(f"TLS handshake failed: {e}") from e
        self.opened += 1
        self._buffer = b""
        return sock

    def close(self) -> None:
        if self._sock is not None:
            if isinstance(self._sock, ssl.SSLSocket) and self._sock.session is not None:
                self._session = self._sock.session
            self._sock.close()
            self._sock = None

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
        """Send METHOD PATH exactly as given; a connection the server closed in between is opened once more."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        data = head.encode() + b"\r\n" + body
        reused = self._sock is not None
        try:
            return self._exchange(data, head_only=method == "HEAD")
        except (Closed, OSError):
            self.close()
            if not reused:
                raise
        return self._exchange(data, head_only=method == "HEAD")  # the kept-alive connection had been closed

    def _exchange(self, data: bytes, *, head_only: bool) -> Response:
        if self._sock is None:
            self._sock = self._open()
        try:
            self._sock.sendall(data)
            response, keep = self._read(head_only=head_only)
        except (OSError, ssl.SSLError) as e:
            self.close()
            raise Closed(str(e)) from e
        if not keep:
            self.close()
        return response

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise Closed("the server closed the connection")
        self._buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _read(self, *, head_only: bool) -> tuple[Response, bool]:
        status_line = self._line().decode("latin-1")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b"" if head_only or status in (204, 304) or 100 <= status < 200 else self._body(headers)
        keep = headers.get("connection", "").lower() != "close"
        return Response(status, headers, body), keep

    def _body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while size := int(self._line().split(b";")[0], 16):
                out += self._take(size)
                self._take(2)
            while self._line():  # trailers, then the empty line
                pass
            return out
        if "content-length" in headers:
            return self._take(int(headers["content-length"]))
        while True:  # delimited by the end of the connection
            try:
                self._fill()
            except Closed:
                out, self._buffer = self._buffer, b""
                return out


def outcome(connection: Connection, method: str, path: str) -> str:
    """The outcome of one request: what `Response.outcome` says, or REFUSE when no HTTP answer came."""
    try:
        return connection.request(method, path).outcome
    except Closed:
        return REFUSE

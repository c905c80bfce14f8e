"""A port-forward session to one pod over SPDY (`portforward.k8s.io`, what kubectl speaks): one upgraded connection to
the API server, on which every local connection becomes a pair of streams (an error stream and a data stream, tied
by a request id). The kubelet dials the pod once both streams of a pair exist, and closes that pod connection when
the pair ends; the session itself holds nothing open in the pod.

Everything is an asyncio Protocol, so data moves in callbacks without a task per direction: a piece of a data frame
is written to its local connection as soon as it is decrypted, and what a local client sends becomes one data frame.
Flow control is by pausing: while the session's buffer towards the server is full, no local connection is read;
while a local client's buffer is full, the session stops reading (so TCP holds the server back, as kubectl's
client does). Memory is bounded by those buffers, whatever the transfer's size.

A pair is used only once the server has answered both SYN_STREAMs: until then nothing has been read from the local
client, so a session found dead (closed, or silent past REPLY_TIMEOUT) costs a retry on a new session, never data.
Until a pair is attached to its local connection, what the server does on it (data, the end of a stream, a reset, the
session's end) is kept on the pair, not done to the connection: the forwarder may still leave the pair for one to
another pod (a session outlives its pod, and streams to a deleted pod are answered, then ended at once).
A session without streams for IDLE_CLOSE seconds is closed, before idle-connection timeouts of load balancers in
front of API servers (4 minutes and more) could drop it silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from meshreg.cluster import spdy
from meshreg.cluster.errors import translate
from meshreg.cluster.tunnel import Endpoint
from meshreg.errors import ClusterError

__all__ = ["Local", "NotSpdy", "Pair", "Session", "SessionLost", "open_session"]

OPEN_TIMEOUT = 20.0
REPLY_TIMEOUT = 10.0
IDLE_CLOSE = 180.0
LOCAL_HIGH = 256 * 1024  # bytes queued towards a local client before the session stops reading
SESSION_HIGH = 512 * 1024  # bytes queued towards the server before local clients stop being read
MAX_HEAD = 64 * 1024  # the upgrade's answer: status line, headers and an error body
MAX_ERROR = 4096  # bytes kept of an error stream's text


class NotSpdy(ClusterError):
    """The server (or something in front of it) answered the upgrade without switching to SPDY."""


class SessionLost(ClusterError):
    """The session ended, or did not answer, before a pair of streams was set up (nothing was sent on it)."""


class Local(asyncio.Protocol):
    """A local client's connection; not read until its pair of streams is set up (`attach`)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pair: Pair | None = None
        self.gone = asyncio.get_running_loop().create_future()  # set when the connection is lost
        self._early: list[bytes] = []
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()
        transport.set_write_buffer_limits(high=LOCAL_HIGH)

    def attach(self, pair: Pair) -> None:
        self.pair = pair
        if self.gone.done():  # the client left while the streams were being set up
            pair.local_gone()
            return
        for data in self._early:
            pair.send(data)
        self._early.clear()
        if self._eof:
            pair.send_fin()
        pair.attached()
        if self.transport and not self.transport.is_closing() and not pair.session.write_paused:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.pair:
            self.pair.send(data)
        elif self.transport:  # never expected (reading starts at attach); kept, not lost
            self._early.append(data)
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self.pair:
            self.pair.send_fin()
        return True  # keep the connection open for what the pod still sends

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        if self.pair:
            self.pair.local_gone()

    def pause_writing(self) -> None:
        if self.pair:
            self.pair.session.hold(self.pair)

    def resume_writing(self) -> None:
        if self.pair:
            self.pair.session.release(self.pair)

    def close(self) -> None:
        if self.transport:
            self.transport.close()


class Pair:
    """The two streams of one local connection: `error_id` (the server's error text) and `data_id` (the bytes)."""

    def __init__(self, session: Session, local: Local, error_id: int):
        self.session, self.local = session, local
        self.error_id, self.data_id = error_id, error_id + 2
        self.replies = _future()
        self.waiting = {self.error_id, self.data_id}
        self.error = bytearray()
        self.sent = self.received = 0
        self.fin_sent = self.fin_received = self.error_done = self.ended = False
        self.reset = self.broken = False  # the data stream reset by the server; the session ended under the pair
        self._early: list[bytes] = []  # the pod's bytes that came before the pair was attached

    @property
    def intact(self) -> bool:
        """Neither the data stream nor the session has ended on the server's side: before it is attached, the pair can
        still be used."""
        return not (self.fin_received or self.reset or self.broken)

    def attached(self) -> None:
        """Its local connection is now this pair's: do to it what the server did on the pair meanwhile."""
        transport = self.local.transport
        if transport is None:
            return
        if self.reset or self.broken:
            transport.abort()
            return
        for piece in self._early:
            transport.write(piece)
        self._early.clear()
        self.session.release(self)
        if self.fin_received:
            self.local.close()

    def replied(self, stream_id: int) -> None:
        self.waiting.discard(stream_id)
        if not self.waiting and not self.replies.done():
            self.replies.set_result(None)

    def send(self, data: bytes) -> None:
        if not self.fin_sent:
            self.sent += len(data)
            self.session.write(spdy.data_header(self.data_id, len(data)) + data)

    def send_fin(self) -> None:
        if not self.fin_sent:
            self.fin_sent = True
            self.session.write(spdy.data_header(self.data_id, 0, fin=True))

    def data(self, stream_id: int, piece: memoryview, fin: bool) -> None:
        if stream_id == self.error_id:
            self.error += piece[:max(0, MAX_ERROR - len(self.error))]
            self.error_done = self.error_done or fin
        elif self.local.pair is not self:
            self._keep(piece)
        elif self.local.transport and not self.local.transport.is_closing():
            self.received += len(piece)
            self.local.transport.write(piece)
        if fin and stream_id == self.data_id:
            self.fin_received = True
            if self.local.pair is self:
                self.local.close()  # after what is buffered for it: the pod has closed its side

    def _keep(self, piece: memoryview) -> None:
        """The pod's bytes before the pair is attached: kept for its connection, the session held past LOCAL_HIGH."""
        self.received += len(piece)
        if piece:
            self._early.append(bytes(piece))
        if self.received > LOCAL_HIGH:
            self.session.hold(self)

    def reset_by_server(self, stream_id: int) -> None:
        if stream_id == self.data_id:
            self.reset = True
            if self.local.pair is self and self.local.transport:
                self.local.transport.abort()
        self.error_done = self.error_done or stream_id == self.error_id

    def local_gone(self) -> None:
        """The local connection has closed (or the pair is not wanted): end both streams with the server, RST for one
        not ended both ways."""
        if not (self.fin_sent and self.fin_received):
            self.session.write(spdy.rst_stream(self.data_id, spdy.CANCEL))
        if not self.error_done:
            self.session.write(spdy.rst_stream(self.error_id, spdy.CANCEL))
        self.session.forget(self)

    def lost(self) -> None:
        """The session has ended under this pair."""
        self.broken = True
        if not self.replies.done():
            self.replies.set_exception(SessionLost("the port-forward session ended"))
        if self.local.pair is self and self.local.transport:
            self.local.transport.abort()


class Session(asyncio.Protocol):
    """One upgraded SPDY connection to the API server for port `port` of one pod."""

    def __init__(self, request: bytes, *, pod: str, port: int, where: str, on_end: Callable[[Session], None]):
        self.pod, self.port, self.where, self.on_end = pod, port, where, on_end
        self._request = request
        self.ready: asyncio.Future[None] = _future()
        self.transport: asyncio.Transport | None = None
        self._head: bytearray | None = bytearray()
        self._parser = spdy.Parser(self._on_data, self._on_control)
        self._blocks = spdy.HeaderBlocks()
        self._next_id, self._request_id = 1, 0
        self._pairs: dict[int, Pair] = {}  # both stream ids of every pair
        self._held: set[Pair] = set()  # pairs whose local client's buffer is full
        self.write_paused = self.ended = self.going_away = self.stale = False
        self._idle: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        return self.ready.done() and not self.ready.exception() and not (self.ended or self.going_away or self.stale)

    # --- asyncio.Protocol ---------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=SESSION_HIGH)
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            if self._head is not None:
                self._handshake(data)
            else:
                self._parser.feed(data)
        except spdy.FrameError as e:
            self._fail(ClusterError(f"{self.where}: the server broke the SPDY protocol: {e}"))

    def eof_received(self) -> bool:
        return False  # close: nothing more can come on any stream

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if not self.ready.done():
            self.ready.set_exception(SessionLost(f"{self.where} failed: the API server closed the connection"))
        for pair in {id(p): p for p in self._pairs.values()}.values():
            pair.lost()
        self._pairs.clear()
        if self._idle:
            self._idle.cancel()
        self.on_end(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        for pair in self._live():
            if pair.local.transport:
                pair.local.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        for pair in self._live():
            if pair.local.pair is pair and pair.local.transport and not pair.local.transport.is_closing():
                pair.local.transport.resume_reading()  # only a local connection whose streams are set up

    # --- the upgrade ------------------------------------------------------------------------------------------------
    def _handshake(self, data: bytes) -> None:
        assert self._head is not None
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._fail(NotSpdy(f"{self.where}: the server's answer to the upgrade has no end"))
            return
        code, headers = _head(bytes(self._head[:end]))
        body = bytes(self._head[end + 4:])
        if code == 101 and headers.get("upgrade", "").lower().startswith("spdy/3"):
            self._head = None
            self.ready.set_result(None)
            self._idle_from_now()
            if body:
                self._parser.feed(body)
            return
        length = int(headers.get("content-length", "0") or 0)
        if len(body) < length and len(self._head) <= MAX_HEAD:
            return  # the rest of the error body is on its way
        self._fail(_refusal(code, body, self.where))

    def _fail(self, error: ClusterError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
        if self.transport:
            self.transport.abort()

    # --- frames from the server -------------------------------------------------------------------------------------
    def _on_data(self, stream_id: int, piece: memoryview, fin: bool) -> None:
        pair = self._pairs.get(stream_id)
        if pair is not None:
            pair.data(stream_id, piece, fin)

    def _on_control(self, frame: spdy.Control) -> None:
        if frame.kind == spdy.SYN_REPLY and (pair := self._pairs.get(frame.stream_id)):
            pair.replied(frame.stream_id)
        elif frame.kind == spdy.RST_STREAM and (pair := self._pairs.get(frame.stream_id)):
            pair.reset_by_server(frame.stream_id)
        elif frame.kind == spdy.PING and frame.stream_id % 2 == 0:  # the server's ping: answer it
            self.write(spdy.ping(frame.stream_id))
        elif frame.kind == spdy.GOAWAY:
            self.going_away = True
        elif frame.kind == spdy.SYN_STREAM:  # a port-forward server never opens streams
            self.write(spdy.rst_stream(frame.stream_id, spdy.REFUSED_STREAM))

    # --- pairs --------------------------------------------------------------------------------------------------------
    async def pair(self, local: Local) -> Pair:
        """A new pair of streams for `local`, once the server has answered both; SessionLost when the session ends or
        stays silent (then nothing was read from `local`: retry elsewhere), ClusterError for a refused stream."""
        if not self.usable:
            raise SessionLost(f"{self.where}: the session has ended")
        pair = Pair(self, local, self._next_id)
        self._next_id += 4
        for stream_id in (pair.error_id, pair.data_id):
            self._pairs[stream_id] = pair
        self._hold_idle()
        headers = [("port", str(self.port)), ("requestid", str(self._request_id))]
        self._request_id += 1
        self.write(spdy.syn_stream(pair.error_id, self._blocks.block([("streamtype", "error"), *headers])))
        self.write(spdy.data_header(pair.error_id, 0, fin=True))  # meshreg sends nothing on the error stream
        self.write(spdy.syn_stream(pair.data_id, self._blocks.block([("streamtype", "data"), *headers])))
        try:
            await asyncio.wait_for(asyncio.shield(pair.replies), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            # Dead, or stalled behind a stream the pod does not read (the kubelet's library hands frames to a few
            # workers in turn): no new streams here; the streams it carries go on, and it closes after the last.
            self.stale = True
            pair.local_gone()
            raise SessionLost(f"{self.where}: no answer from the server in {REPLY_TIMEOUT:.0f} s") from None
        return pair

    def write(self, data: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)

    def forget(self, pair: Pair) -> None:
        if not pair.ended:
            pair.ended = True
            self._pairs.pop(pair.error_id, None)
            self._pairs.pop(pair.data_id, None)
            self.release(pair)
            if not self._pairs and self.stale:
                self.close()
            elif not self._pairs:
                self._idle_from_now()

    def hold(self, pair: Pair) -> None:
        """A local client's buffer is full: stop reading from the server until it drains."""
        self._held.add(pair)
        if self.transport:
            self.transport.pause_reading()

    def release(self, pair: Pair) -> None:
        if pair in self._held:
            self._held.discard(pair)
            if not self._held and self.transport and not self.transport.is_closing():
                self.transport.resume_reading()

    def retire(self) -> None:
        """No new pairs here (its pod is gone or not ready); close once the pairs it carries have ended."""
        self.stale = True
        if not self._pairs:
            self.close()

    def close(self) -> None:
        self.going_away = True
        if self.transport:
            self.transport.abort()

    def _live(self) -> list[Pair]:
        return list({id(p): p for p in self._pairs.values()}.values())

    def _hold_idle(self) -> None:
        if self._idle:
            self._idle.cancel()
            self._idle = None

    def _idle_from_now(self) -> None:
        self._hold_idle()
        if not self.ended:
            self._idle = asyncio.get_running_loop().call_later(IDLE_CLOSE, self.close)


async def open_session(ep: Endpoint, *, namespace: str, pod: str, port: int,
                       on_end: Callable[[Session], None] = lambda s: None) -> Session:
    """An upgraded SPDY session for port-forwards to pod:port; NotSpdy when the server does not switch to SPDY,
    ClusterError (one line) when it refuses (RBAC, a pod that is gone) or cannot be reached."""
    where = f"port-forward to pod {namespace}/{pod}"
    parts = urlsplit(ep.url)
    path = f"{parts.path.rstrip('/')}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
    headers = {"Host": parts.netloc, "User-Agent": "meshreg", "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
               "X-Stream-Protocol-Version": "portforward.k8s.io", "Content-Length": "0", **ep.headers()}
    request = (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    loop = asyncio.get_running_loop()
    session = Session(request, pod=pod, port=port, where=where, on_end=on_end)
    host, default = parts.hostname or "localhost", 443 if parts.scheme == "https" else 80
    try:
        await asyncio.wait_for(loop.create_connection(
            lambda: session, host, parts.port or default, ssl=ep.ssl,
            server_hostname=(ep.server_hostname or host) if ep.ssl else None), OPEN_TIMEOUT)
        await asyncio.wait_for(asyncio.shield(session.ready), OPEN_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as e:
        session.close()
        raise ClusterError(f"{where} failed: cannot reach the API server at {ep.url}: {_reason(e)}") from e
    except ClusterError:
        session.close()
        raise
    return session


def _future() -> asyncio.Future[None]:
    """A future whose exception, when nobody waits for it any more, is not logged as never retrieved."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    """The status code and (lower-cased) headers of an HTTP/1.1 response head; 0 when it is not one."""
    lines = raw.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return code, headers


def _refusal(code: int, body: bytes, where: str) -> ClusterError:
    """The answer to an upgrade that did not switch: the API server's refusal (401, 403, 404 with a Status) as meshreg
    says every API error; anything else means SPDY does not get through (NotSpdy)."""
    status: Any = {}
    with contextlib.suppress(ValueError):
        status = json.loads(body or b"{}")
    if code in (401, 403, 404) and isinstance(status, dict) and status.get("kind") == "Status":
        return translate(code, status, subject=where)
    return NotSpdy(f"{where}: the server answered the SPDY upgrade with HTTP {code or '(not HTTP)'}")


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__

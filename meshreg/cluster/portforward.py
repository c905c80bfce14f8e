"""`meshreg connect`'s data path: a local listener whose every connection is forwarded to a ready push-proxy pod
through a Kubernetes port-forward, switching to a new ready pod when that one is gone.

The port-forward is kubectl's: SPDY (`portforward.k8s.io`, meshreg.cluster.session), one session per pod carrying
every local connection as a pair of streams. Where SPDY cannot be used (an HTTP proxy in the kubeconfig, or a server
that does not switch to it), every local connection gets a WebSocket port-forward of its own (`v4.channel.k8s.io`,
meshreg.cluster.tunnel), as the first versions of `meshreg connect` did.

Everything runs on one asyncio loop: an idle `meshreg connect` sleeps in the kernel, and a connection whose local
client has gone is closed with its streams at once. New connections go to the newest ready pod (its readiness is
read for each, alongside setting up the streams); a connection already open stays with the pod it started on until
that pod ends it (during a rollout, the old pod drains its connections and then stops: a request cut there fails,
and the client retries it on a new connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from meshreg.cluster.api import ClusterClient
from meshreg.cluster.localport import listen
from meshreg.cluster.pushproxy import Target, forbidden_hint, is_ready, ready_pod
from meshreg.cluster.session import Local, NotSpdy, Pair, Session, SessionLost, open_session
from meshreg.cluster.tunnel import Endpoint, Tunnel, endpoint, open_tunnel
from meshreg.errors import ClusterError

__all__ = ["Forwardable", "Forwarder", "endpoint_of", "listen"]


class Forwardable(ClusterClient, Protocol):
    """A cluster client that holds the official client's ApiClient too (meshreg.cluster.client.Cluster does)."""

    api_client: Any  # kubernetes.client.ApiClient (the kubernetes package has no types)


def endpoint_of(cluster: Forwardable) -> Endpoint:
    """Where a connected Cluster opens port-forwards, with the TLS and credentials it was loaded with."""
    return endpoint(cluster.api_client.configuration)


class Forwarder:
    """Accepts local connections and forwards each to the current ready pod; `say` reports pod changes and refusals."""

    def __init__(self, *, cluster: Forwardable, target: Target, listener: socket.socket,
                 say: Callable[[str], None], ep: Endpoint | None = None):
        self.cluster, self.target, self.listener, self.say = cluster, target, listener, say
        self.endpoint = ep or endpoint_of(cluster)
        self.pod: str | None = None
        self.connections = 0  # accepted so far
        self.transport = "spdy"  # or "websocket": chosen when serving starts
        self.sessions: dict[str, asyncio.Future[Session]] = {}  # pod -> its SPDY session (being opened, or open)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._live: set[asyncio.Task[None]] = set()
        self._locals: set[Local] = set()
        self._ready = threading.Event()
        self._serving = False
        self._lock = threading.Lock()  # one pod change at a time

    def start(self) -> str:
        """Pick the first pod (ClusterError when none is ready), before anything is served."""
        self.pod = ready_pod(cluster=self.cluster, target=self.target)
        return self.pod

    def serve(self, stop: threading.Event | None = None, *, signals: bool = False) -> None:
        """Serve until `stop` is set or `close()` is called (from another thread) or, with `signals`, SIGINT or
        SIGTERM arrives; then stop listening and end every forwarded connection."""
        self._serving = True
        if stop is not None:  # a thread that only waits: nothing polls
            threading.Thread(target=self._close_when, args=(stop,), daemon=True).start()
        asyncio.run(self._serve(signals))

    def _close_when(self, stop: threading.Event) -> None:
        stop.wait()
        self.close()

    def close(self) -> None:
        """Stop serving (thread-safe); returns at once, `serve` returns once everything is closed."""
        if not self._serving:
            return
        self._ready.wait(5)
        loop, stop = self._loop, self._stop
        if loop and stop and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)

    async def _serve(self, signals: bool) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
        try:
            self.transport = await self._choose()
            if self.transport == "spdy":
                server = await self._loop.create_server(self._accept, sock=self.listener)
            else:
                server = await asyncio.start_server(self._accepted, sock=self.listener, limit=1 << 16)
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            await self._end_all()
            await server.wait_closed()

    async def _choose(self) -> str:
        """SPDY, with a session to the first pod opened ahead of the first connection; a WebSocket per connection
        when the kubeconfig names a proxy or the server does not switch to SPDY."""
        if self.endpoint.proxy:
            return "websocket"
        if self.pod:
            try:
                await self._session(self.pod)
            except NotSpdy as e:
                self.say(f"{e}; forwarding each connection over its own WebSocket instead")
                return "websocket"
            except ClusterError:
                pass  # said for each connection, as it happens
        return "spdy"

    async def _end_all(self) -> None:
        for local in list(self._locals):
            if local.transport:
                local.transport.abort()
        for task in list(self._live):
            task.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)
        for opening in self.sessions.values():
            if opening.done() and not opening.exception():
                opening.result().close()
            else:
                opening.cancel()

    # --- SPDY: one session per pod, a pair of streams per local connection ------------------------------------------
    def _accept(self) -> Local:
        local = Local()
        self._locals.add(local)
        local.gone.add_done_callback(lambda _: self._locals.discard(local))
        self._track(self._forward(local))
        return local

    def _track(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def _forward(self, local: Local) -> None:
        self.connections += 1
        try:
            pod, pair = await self._pair(local)
        except ClusterError as e:
            self.say(f"warning: connection refused: {e}{forbidden_hint(e, self.target)}")
            local.close()
            return
        local.attach(pair)
        await local.gone
        text = pair.error.decode("utf-8", "replace").strip()
        if text:
            self.say(f"warning: pod {pod}: {text}")

    async def _pair(self, local: Local) -> tuple[str, Pair]:
        """Streams to the current pod, set up while its readiness is read; if that pod has gone, to the new one. The
        first pair is not yet the local connection's: when it is left, what the server did on it meanwhile (the
        kubelet answers streams to a deleted pod, then ends them) does not touch the connection."""
        check = asyncio.ensure_future(self._current())
        pod, first = self.pod, None
        if pod:
            with contextlib.suppress(ClusterError):
                first = await self._on(pod, local)
        try:
            current = await check
        except ClusterError:
            if first:
                first.local_gone()
            raise
        if first and current == pod and first.intact:
            return pod, first
        if first:
            first.local_gone()
        if pod and current != pod:
            self._retire(pod)
        return current, await self._on(current, local)

    def _retire(self, pod: str) -> None:
        """A pod left for another: its session takes no new pairs and closes after the last one it carries."""
        opening = self.sessions.get(pod)
        if opening is not None and opening.done() and not opening.cancelled() and not opening.exception():
            opening.result().retire()

    async def _on(self, pod: str, local: Local) -> Pair:
        """A pair on the pod's session; once more on a new session when that one turns out to have ended."""
        try:
            return await (await self._session(pod)).pair(local)
        except SessionLost:
            return await (await self._session(pod)).pair(local)

    async def _session(self, pod: str) -> Session:
        """The pod's open session, or a new one (connections arriving meanwhile wait for the same one)."""
        opening = self.sessions.get(pod)
        if opening is None or (opening.done() and (opening.exception() or not opening.result().usable)):
            opening = asyncio.ensure_future(open_session(self.endpoint, namespace=self.target.namespace, pod=pod,
                                                         port=self.target.port, on_end=self._ended))
            opening.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.sessions[pod] = opening
        return await asyncio.shield(opening)

    def _ended(self, session: Session) -> None:
        opening = self.sessions.get(session.pod)
        if opening is not None and opening.done() and not opening.exception() and opening.result() is session:
            del self.sessions[session.pod]

    # --- WebSocket: a port-forward of its own for every local connection --------------------------------------------
    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._live.add(task)
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:  # stopping: asyncio's stream callback would log a cancelled task
            writer.transport.abort()
        finally:
            self._live.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            pod, tunnel = await self._open()
        except ClusterError as e:
            self.say(f"warning: connection refused: {e}{forbidden_hint(e, self.target)}")
            writer.close()
            return
        outcome = await tunnel.relay(reader, writer)
        if outcome.error.strip():
            self.say(f"warning: pod {pod}: {outcome.error.strip()}")

    async def _open(self) -> tuple[str, Tunnel]:
        """A tunnel to the current pod; if that fails, one more try on a newly picked ready pod."""
        pod = await self._current()
        try:
            return pod, await self._tunnel(pod)
        except ClusterError:
            pod = await asyncio.to_thread(self._replace_locked, pod)
            return pod, await self._tunnel(pod)

    async def _tunnel(self, pod: str) -> Tunnel:
        return await open_tunnel(self.endpoint, namespace=self.target.namespace, pod=pod, port=self.target.port)

    # --- which pod ----------------------------------------------------------------------------------------------------
    async def _current(self) -> str:
        """The current pod, checked for readiness: a pod on its way out keeps its open connections, gets no new ones."""
        pod = self.pod
        try:
            live = await asyncio.to_thread(self.cluster.get, "v1", "Pod", pod, namespace=self.target.namespace) \
                if pod else None
        except ClusterError as e:
            raise ClusterError(f"{e}{forbidden_hint(e, self.target)}") from e
        if pod and is_ready(live):
            return pod
        return await asyncio.to_thread(self._replace_locked, pod)

    def _replace_locked(self, old: str | None) -> str:
        with self._lock:
            if self.pod != old:  # another connection has already moved on
                return self.pod or self._replace(old)
            return self._replace(old)

    def _replace(self, old: str | None) -> str:
        new = ready_pod(cluster=self.cluster, target=self.target)
        changed, self.pod = self.pod != new, new
        if changed:
            self.say(f"pod {old} is gone or not ready; forwarding to pod {new}")
        return new

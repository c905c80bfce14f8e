"""`meshreg connect`'s data path: a local listener whose every connection becomes a streaming port-forward
(meshreg.cluster.tunnel) to a ready push-proxy pod, switching to a new ready pod when that one is gone.

Everything runs on one asyncio loop: an idle `meshreg connect` sleeps in the kernel, and a connection whose local
client has gone is closed with its WebSocket at once. New connections go to the newest ready pod; a connection
already open stays with the pod it started on until that pod ends it (during a rollout, the old pod drains its
connections and then stops: a request cut there fails, and the client retries it on a new connection).
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()  # one pod change at a time

    def start(self) -> str:
        """Pick the first pod (ClusterError when none is ready), before anything is served."""
        self.pod = ready_pod(cluster=self.cluster, target=self.target)
        return self.pod

    def serve(self, stop: threading.Event | None = None, *, signals: bool = False) -> None:
        """Serve until `stop` is set or `close()` is called (from another thread) or, with `signals`, SIGINT or
        SIGTERM arrives; then stop listening and end every forwarded connection."""
        if stop is not None:  # a thread that only waits: nothing polls
            threading.Thread(target=self._close_when, args=(stop,), daemon=True).start()
        asyncio.run(self._serve(signals))

    def _close_when(self, stop: threading.Event) -> None:
        stop.wait()
        self.close()

    def close(self) -> None:
        """Stop serving (thread-safe); returns at once, `serve` returns once everything is closed."""
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
        live: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            live.add(task)
            try:
                await self._handle(reader, writer)
            except asyncio.CancelledError:  # stopping: asyncio's stream callback would log a cancelled task
                writer.transport.abort()
            finally:
                live.discard(task)

        server = await asyncio.start_server(accepted, sock=self.listener, limit=1 << 16)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(live):
                task.cancel()
            await asyncio.gather(*live, return_exceptions=True)
            await server.wait_closed()

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

"""`meshreg connect`'s data path: a local listener whose every connection becomes a port-forward (the official
client's WebSocket port-forward) to a ready push-proxy pod, switching to a new ready pod when that one is gone."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from meshreg.cluster.api import ClusterClient
from meshreg.cluster.pushproxy import Target, forbidden_hint, is_ready, ready_pod
from meshreg.errors import ClusterError, UsageError

CHUNK = 256 * 1024


class Forwardable(ClusterClient, Protocol):
    """A cluster client that holds the official client's ApiClient too (meshreg.cluster.client.Cluster does)."""

    api_client: Any  # kubernetes.client.ApiClient (the kubernetes package has no types)


def listen(address: str, port: int) -> socket.socket:
    """A listening socket on address:port; UsageError (one line) when that is impossible."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
        sock.listen(64)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"{address}:{port} is already in use (another meshreg connect, or a local registry?); "
                             "pick another port with --port") from e
        raise UsageError(f"cannot listen on {address}:{port}: {e.strerror}") from e
    return sock


def open_stream(cluster: ClusterClient, *, lock: threading.Lock, api_client: Any, namespace: str, pod: str,
                port: int) -> tuple[Any, socket.socket]:
    """A port-forward to pod:port as (PortForward, socket); ClusterError when the server refuses it."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import portforward

    core = client.CoreV1Api(api_client)
    try:
        with lock:  # the client swaps api_client.call_api while it opens the WebSocket
            forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    except ApiException as e:
        raise ClusterError(f"port-forward to pod {namespace}/{pod} failed: {_handshake(e)}") from e
    return forward, forward.socket(port)


def _handshake(e: Any) -> str:
    """The HTTP status of a refused WebSocket handshake, as meshreg says API errors."""
    found = re.search(r"Handshake status (\d{3})([^-]*)", str(e.reason or e))
    if not found:
        return " ".join(str(e.reason or e).split())[:200]
    status = int(found.group(1))
    return {403: "forbidden: cannot create pods/portforward", 404: "the pod is gone (404)"}.get(
        status, f"HTTP {status}{found.group(2).rstrip()}")


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side ends, then close both."""
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()
    a.close()
    b.close()


class Forwarder:
    """Accepts local connections and forwards each to the current ready pod; `say` reports pod changes."""

    def __init__(self, *, cluster: Forwardable, target: Target, listener: socket.socket, say: Callable[[str], None],
                 api_client: Any = None) -> None:
        self.cluster, self.target, self.listener, self.say = cluster, target, listener, say
        self.api_client = api_client or _copy(cluster.api_client)
        self.pod: str | None = None
        self._lock, self._open_lock = threading.Lock(), threading.Lock()
        self._live: set[socket.socket] = set()

    def start(self) -> str:
        """Pick the first pod (ClusterError when none is ready), before anything is served."""
        self.pod = ready_pod(cluster=self.cluster, target=self.target)
        return self.pod

    def serve(self, stop: threading.Event) -> None:
        """Accept until `stop` is set; every connection is handled on its own thread."""
        self.listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        self.listener.close()
        with self._lock:
            live = list(self._live)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _handle(self, conn: socket.socket) -> None:
        try:
            pod, forward, upstream = self._open()
        except ClusterError as e:
            self.say(f"warning: connection refused: {e}")
            conn.close()
            return
        with self._lock:
            self._live.update((conn, upstream))
        try:
            relay(conn, upstream)
        finally:
            with self._lock:
                self._live.difference_update((conn, upstream))
        error = forward.error(self.target.port)
        if error:
            self.say(f"warning: pod {pod}: {error.strip()}")

    def _open(self) -> tuple[str, Any, socket.socket]:
        """A stream to the current pod; if the pod is gone, one more try on a newly picked ready pod."""
        pod = self._current()
        try:
            return (pod, *self._stream(pod))
        except ClusterError:
            pod = self._replace(pod)
            return (pod, *self._stream(pod))

    def _stream(self, pod: str) -> tuple[Any, socket.socket]:
        return open_stream(self.cluster, lock=self._open_lock, api_client=self.api_client,
                           namespace=self.target.namespace, pod=pod, port=self.target.port)

    def _current(self) -> str:
        with self._lock:
            pod = self.pod
        try:
            live = self.cluster.get("v1", "Pod", pod, namespace=self.target.namespace) if pod else None
        except ClusterError as e:
            raise ClusterError(f"{e}{forbidden_hint(e, self.target)}") from e
        return pod if pod and is_ready(live) else self._replace(pod)  # no pod: nothing is live

    def _replace(self, old: str | None) -> str:
        new = ready_pod(cluster=self.cluster, target=self.target)
        with self._lock:
            changed, self.pod = self.pod != new, new
        if changed:
            self.say(f"pod {old} is gone or not ready; forwarding to pod {new}")
        return new


def _copy(api_client: Any) -> Any:
    """Port-forwards get their own ApiClient: the client's port-forward swaps call_api while it connects."""
    from kubernetes import client

    return client.ApiClient(api_client.configuration)

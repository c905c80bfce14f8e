"""The local end of `meshreg connect`: a listening socket that really receives what is sent to its address.

On a machine that is itself a Kubernetes node (k3s, microk8s, minikube's none driver, a single-node lab), a pod's
`hostPort` on 127.0.0.1:PORT is a DNAT rule that takes every connection this machine makes to that address: binding
127.0.0.1:PORT still succeeds, but clients reach the pod (meshreg's read-only node proxy, say) and never the
listener. So after binding, `listen` connects to its own address and checks that the connection arrives.
"""

from __future__ import annotations

import errno
import select
import socket
from dataclasses import dataclass

from meshreg.errors import UsageError

__all__ = ["Probe", "is_local_address", "listen", "probe"]

ARRIVAL_TIMEOUT = 1.0  # a loopback connection is queued before connect() returns; this only bounds a stuck kernel


@dataclass(frozen=True)
class Probe:
    """What a port on this machine is: free, taken (bound by another process) or intercepted (a DNAT takes it)."""

    address: str
    port: int
    state: str  # "free", "taken" or "intercepted"
    detail: str = ""


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    # As every POSIX server does: a closed connection waiting out TIME_WAIT must not block the next bind. (On Linux
    # this never lets two listeners share a port.)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _arrives(listener: socket.socket) -> bool:
    """Whether a connection to the listener's own address reaches it (and not something a DNAT sends it to)."""
    address, port = listener.getsockname()[:2]
    try:
        client = socket.create_connection((address, port), timeout=ARRIVAL_TIMEOUT)
    except OSError:
        return False  # refused or dropped: something other than our listener answered for the address
    with client:
        mine = client.getsockname()[:2]
        listener.setblocking(False)
        try:
            while select.select([listener], [], [], ARRIVAL_TIMEOUT)[0]:
                try:
                    conn, peer = listener.accept()
                except BlockingIOError:
                    continue
                client.close()  # the client closes first, so TIME_WAIT stays on its ephemeral port
                conn.close()
                if peer[:2] == mine:
                    return True
            return False
        finally:
            listener.setblocking(True)


def probe(address: str, port: int) -> Probe:
    """Whether address:port is free for a listener that clients on this machine really reach."""
    try:
        sock = _bind(address, port)
    except OSError as e:
        state = "taken" if e.errno == errno.EADDRINUSE else "unusable"
        return Probe(address, port, state, e.strerror or str(e))
    with sock:
        if not _arrives(sock):
            return Probe(address, port, "intercepted", "connections to it reach something else (a hostPort DNAT)")
    return Probe(address, port, "free")


def listen(address: str, port: int, *, hint: str = "pick another port with --port",
           node_hint: str | None = None) -> socket.socket:
    """A listening socket on address:port that connections to address:port really reach; UsageError (one line)
    naming what is wrong and what to do (`hint`, or `node_hint` when a hostPort takes the address)."""
    try:
        sock = _bind(address, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"{address}:{port} is already in use (another meshreg connect, a local registry, or on "
                             f"macOS the AirPlay Receiver on 5000); {hint}") from e
        raise UsageError(f"cannot listen on {address}:{port}: {e.strerror}") from e
    if port and not _arrives(sock):
        sock.close()
        raise UsageError(f"{address}:{port} is intercepted: this machine is a Kubernetes node and a pod's hostPort "
                         f"(such as meshreg's read-only node proxy) takes every connection to it; {node_hint or hint}")
    return sock


def is_local_address(ip: str) -> bool:
    """Whether `ip` is an address of this machine (so a node with that address shares this machine's network)."""
    try:
        with socket.socket(_family(ip), socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
    except (OSError, ValueError):
        return False
    return True

"""A watch as the API server streams it: one JSON event per line of a chunked response, read as it arrives until
the server ends the watch (its timeoutSeconds) or `close` is called, from any thread."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

from meshreg.cluster.api import WatchEvent
from meshreg.errors import ClusterError


class Watch:
    """The events of one watch request; `response` is urllib3's, opened without reading its body."""

    def __init__(self, response: Any, *, subject: str) -> None:
        self._response = response
        self._subject = subject
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        pending = b""
        try:
            for chunk in self._response.stream(None, decode_content=True):  # each chunk as the server flushes it
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (self._event(line) for line in lines if line.strip())
        except Exception as e:  # urllib3 and socket errors: the connection broke (or close() cut it)
            if not self._closed.is_set():
                raise ClusterError(f"{self._subject}: the watch broke off: {e}") from e
        finally:
            self._response.release_conn()
        if pending.strip() and not self._closed.is_set():
            yield self._event(pending)

    def close(self) -> None:
        """End the watch now: the reading thread sees the end of the stream."""
        self._closed.set()
        try:
            if hasattr(self._response, "shutdown"):  # urllib3 2.3 and newer
                self._response.shutdown()
            else:
                sock = getattr(getattr(self._response, "connection", None), "sock", None)
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
        except (OSError, RuntimeError, ValueError):  # already ended: closed, or released to the pool
            pass

    def _event(self, line: bytes) -> WatchEvent:
        try:
            data = json.loads(line)
        except ValueError as e:
            raise ClusterError(f"{self._subject}: the server sent something that is not a watch event: "
                               f"{line[:200]!r}") from e
        return {"type": str(data.get("type", "")), "object": data.get("object") or {}}

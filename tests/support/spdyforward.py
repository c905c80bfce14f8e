"""The server side of a SPDY port-forward (`portforward.k8s.io`) as the kubelet's streaming library serves it, for
tests; written from the SPDY/3 draft and the kubelet's code, apart from meshreg.cluster.spdy:

- every SYN_STREAM is answered with a SYN_REPLY (with `reply=False`, none is: a server that has stopped answering;
  with `reply_delay`, after that many seconds: a server whose frame workers are busy);
- streams are paired by their `requestid` header (`streamtype` error or data, `port`); once both exist, the pod
  (`target`) is dialled, and a dial failure is written on the error stream, which then ends, as does the data stream;
- a session outlives its pod, as the kubelet's does: once the pod is gone (`present()` false) new streams are still
  answered, but dialling fails as containerd's does for a sandbox whose network namespace is gone; when the pod's
  containers stop (`pod_stopped`), its connections end, and so do their streams (FIN);
- the pod's bytes go out as data frames of at most `frame` bytes (the kubelet's are 32 KiB); when the pod closes its
  side, the data stream and the error stream end (FIN);
- a FIN from the client on the data stream half-closes the pod connection, a RST_STREAM closes it;
- WINDOW_UPDATE and SETTINGS are ignored, as moby/spdystream does.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Callable

SYN_STREAM, SYN_REPLY, RST_STREAM, PING = 1, 2, 3, 6
FIN = 1


class SpdyServer:
    def __init__(self, sock: socket.socket, target: tuple[str, int], *, pod: str, on_forward: Callable[[str], None],
                 reply: bool = True, frame: int = 32 * 1024, reply_delay: float = 0,
                 present: Callable[[], bool] = lambda: True):
        self.sock, self.target, self.pod, self.on_forward, self.present = sock, target, pod, on_forward, present
        self.reply, self.frame, self.reply_delay = reply, frame, reply_delay
        self.alive = True
        self.streams: dict[int, dict] = {}  # id -> headers and state
        self.received: Counter = Counter()  # frames by kind: syn, data, fin, rst, ping, other
        self._pairs: dict[str, dict[str, int]] = {}
        self._pods: dict[int, socket.socket] = {}  # data stream id -> its pod connection
        self._inflate = zlib.decompressobj()
        self._deflate = zlib.compressobj()
        self._write = threading.Lock()
        self._buffer = b""

    # --- what tests ask ---------------------------------------------------------------------------------------------
    def open_streams(self) -> int:
        return sum(1 for s in self.streams.values() if not (s["reset"] or (s["in_closed"] and s["out_closed"])))

    def kill(self) -> None:
        """End the session as a dropped connection would."""
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def pod_stopped(self) -> None:
        """The pod's containers have stopped: every connection to it ends (its streams end with FIN)."""
        for pod in list(self._pods.values()):
            with contextlib.suppress(OSError):
                pod.shutdown(socket.SHUT_RDWR)

    # --- serving ----------------------------------------------------------------------------------------------------
    def serve(self, rest: bytes) -> None:
        self._buffer = rest
        try:
            while self.alive:
                first, second = struct.unpack(">II", self._read(8))
                payload = self._read(second & 0xFFFFFF)
                if first & 0x80000000:
                    self._control(first & 0xFFFF, second >> 24, payload)
                else:
                    self._data(first & 0x7FFFFFFF, second >> 24, payload)
        except (EOFError, OSError):
            pass
        finally:
            self.alive = False
            for pod in list(self._pods.values()):
                pod.close()

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            self._buffer += data
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _send(self, frame: bytes) -> None:
        with self._write:
            try:
                self.sock.sendall(frame)
            except OSError:
                self.alive = False

    def _send_data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self._send(struct.pack(">II", stream_id, (FIN if fin else 0) << 24 | len(data)) + data)
        if fin:
            self.streams[stream_id]["out_closed"] = True

    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == SYN_STREAM:
            self.received["syn"] += 1
            self._syn(struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF, flags, payload[10:])
        elif kind == RST_STREAM:
            self.received["rst"] += 1
            stream_id = struct.unpack(">I", payload[:4])[0]
            if stream_id in self.streams:
                self.streams[stream_id]["reset"] = True
            pod = self._pods.pop(stream_id, None)
            if pod:
                pod.close()
        elif kind == PING:
            self.received["ping"] += 1
            self._send(struct.pack(">HHI", 0x8003, PING, 4) + payload)
        else:
            self.received["other"] += 1

    def _syn(self, stream_id: int, flags: int, block: bytes) -> None:
        raw = self._inflate.decompress(block)
        headers, at = {}, 4
        for _ in range(struct.unpack(">I", raw[:4])[0]):
            name_len = struct.unpack(">I", raw[at:at + 4])[0]
            name = raw[at + 4:at + 4 + name_len].decode()
            at += 4 + name_len
            value_len = struct.unpack(">I", raw[at:at + 4])[0]
            headers[name] = raw[at + 4:at + 4 + value_len].decode()
            at += 4 + value_len
        self.streams[stream_id] = {"headers": headers, "in_closed": bool(flags & FIN), "out_closed": False,
                                   "reset": False}
        if self.reply:
            block = self._deflate.compress(struct.pack(">I", 0)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            reply = struct.pack(">HHI", 0x8003, SYN_REPLY, len(block) + 4) + struct.pack(">I", stream_id) + block
            if self.reply_delay:
                threading.Timer(self.reply_delay, self._send, args=(reply,)).start()
            else:
                self._send(reply)
        pair = self._pairs.setdefault(headers["requestid"], {})
        pair[headers["streamtype"]] = stream_id
        if len(pair) == 2:  # dialled before the next frame is read, so no data frame finds the pod missing
            self._dial(pair["error"], pair["data"], int(headers["port"]))

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        self.received["data"] += 1
        stream = self.streams.get(stream_id)
        if stream is None or stream["reset"]:
            return
        pod = self._pods.get(stream_id)
        if pod and payload:
            pod.sendall(payload)
        if flags & FIN:
            self.received["fin"] += 1
            stream["in_closed"] = True
            if pod:
                pod.shutdown(socket.SHUT_WR)

    def _dial(self, error_id: int, data_id: int, port: int) -> None:
        try:
            if not self.present():
                raise OSError(f'network namespace for sandbox of pod "{self.pod}" is closed')
            pod = socket.create_connection(self.target, timeout=10)
        except OSError as e:
            self._send_data(error_id, f"error forwarding port {port} to pod {self.pod}: {e}".encode(), fin=True)
            self._send_data(data_id, b"", fin=True)
            return
        pod.settimeout(None)
        self._pods[data_id] = pod
        self.on_forward(self.pod)
        threading.Thread(target=self._forward, args=(error_id, data_id, pod), daemon=True).start()

    def _forward(self, error_id: int, data_id: int, pod: socket.socket) -> None:
        try:
            while data := pod.recv(self.frame):
                self._send_data(data_id, data)
        except OSError:  # closed by a RST_STREAM, or the session ended
            pass
        if not self.streams[data_id]["reset"]:
            self._send_data(data_id, b"", fin=True)
        if not self.streams[error_id]["reset"]:
            self._send_data(error_id, b"", fin=True)
        self._pods.pop(data_id, None)
        pod.close()

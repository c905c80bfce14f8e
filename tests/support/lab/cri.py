"""A small CRI client: the calls the kubelet makes to pull an image (runtime.v1), over gRPC with hand-encoded protobuf.

Only the few fields used here are encoded (field numbers from the CRI's api.proto, package runtime.v1):
ImageSpec{image=1}; PullImageRequest{image=1}, PullImageResponse{image_ref=1}; ImageStatusRequest{image=1},
ImageStatusResponse{image=1}, Image{id=1, repo_tags=2, repo_digests=3}; RemoveImageRequest{image=1};
VersionRequest{version=1}, VersionResponse{runtime_name=2, runtime_version=3, runtime_api_version=4}.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

_LEN, _VARINT = 2, 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: bytes | str) -> bytes:
    """One length-delimited field (a string or an embedded message)."""
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | _LEN) + _varint(len(data)) + data


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[i]
        n |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return n, i


def decode(data: bytes) -> dict[int, list]:
    """Field number -> values (bytes for length-delimited fields, int for varints); fixed-width fields skipped."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _read_varint(data, i)
        elif wire == _LEN:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):  # fixed64, fixed32
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(fields: dict, number: int) -> str:
    return fields.get(number, [b""])[0].decode()


@dataclass(frozen=True)
class Image:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]


class Runtime:
    """A CRI runtime at a unix socket; failed calls raise grpc.RpcError (code() and details() say why)."""

    def __init__(self, socket: str, *, timeout: float = 120.0):
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.timeout = timeout

    def _call(self, method: str, request: bytes) -> dict[int, list]:
        call = self.channel.unary_unary(method)  # no (de)serializers: bytes in, bytes out
        return decode(call(request, timeout=self.timeout))

    def version(self) -> dict:
        fields = self._call("/runtime.v1.RuntimeService/Version", field(1, "v1"))
        return {"name": _text(fields, 2), "version": _text(fields, 3), "api": _text(fields, 4)}

    def pull(self, image: str) -> str:
        """PullImage, as the kubelet sends it; returns the image reference (its id)."""
        fields = self._call("/runtime.v1.ImageService/PullImage", field(1, field(1, image)))
        return _text(fields, 1)

    def status(self, image: str) -> Image | None:
        fields = self._call("/runtime.v1.ImageService/ImageStatus", field(1, field(1, image)))
        if 1 not in fields:
            return None
        img = decode(fields[1][0])
        return Image(id=_text(img, 1), repo_tags=[t.decode() for t in img.get(2, [])],
                     repo_digests=[d.decode() for d in img.get(3, [])])

    def remove(self, image: str) -> None:
        self._call("/runtime.v1.ImageService/RemoveImage", field(1, field(1, image)))

    def close(self) -> None:
        self.channel.close()

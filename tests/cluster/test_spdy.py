"""SPDY/3 frames as a port-forward client writes and reads them, byte for byte against the draft's layout."""

from __future__ import annotations

import struct
import zlib

import pytest

from meshreg.cluster import spdy


def test_a_data_frame_header_is_the_stream_id_then_flags_and_a_24_bit_length():
    assert spdy.data_header(3, 5) == b"\x00\x00\x00\x03\x00\x00\x00\x05"
    assert spdy.data_header(0x7FFFFFFF, 0xFFFFFF, fin=True) == b"\x7f\xff\xff\xff\x01\xff\xff\xff"
    with pytest.raises(ValueError, match="at most 16777215 bytes"):
        spdy.data_header(1, 1 << 24)


def test_control_frames_carry_version_3_their_type_and_length():
    assert spdy.rst_stream(5, spdy.CANCEL) == b"\x80\x03\x00\x03\x00\x00\x00\x08" + struct.pack(">II", 5, 5)
    assert spdy.ping(1) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    assert spdy.goaway(7) == b"\x80\x03\x00\x07\x00\x00\x00\x08" + struct.pack(">II", 7, 0)


def test_syn_stream_headers_are_one_zlib_stream_per_connection_with_a_sync_flush_per_block():
    blocks = spdy.HeaderBlocks()
    first = spdy.syn_stream(1, blocks.block([("streamType", "error"), ("port", "5000")]), fin=True)
    second = spdy.syn_stream(3, blocks.block([("streamtype", "data"), ("port", "5000")]))
    inflate = zlib.decompressobj()  # the receiver's one decompression context for the connection
    frames = []
    for frame in (first, second):
        word, flags_length = struct.unpack(">II", frame[:8])
        assert word == 0x80030001 and len(frame) == 8 + (flags_length & 0xFFFFFF)
        stream_id, associated = struct.unpack(">II", frame[8:16])
        assert frame[16:18] == b"\x00\x00"  # priority 0, slot 0
        assert frame.endswith(b"\x00\x00\xff\xff")  # each block ends with a sync flush: decodable on its own arrival
        frames.append((flags_length >> 24, stream_id, associated, inflate.decompress(frame[18:])))
    pairs = b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x05error\x00\x00\x00\x04port\x00\x00\x00\x045000"
    assert frames[0] == (spdy.FIN, 1, 0, b"\x00\x00\x00\x02" + pairs)  # names lower-cased, as SPDY/3 requires
    assert frames[1][:3] == (0, 3, 0) and frames[1][3].startswith(b"\x00\x00\x00\x02\x00\x00\x00\x0astreamtype")


def parse(*chunks: bytes) -> list[tuple]:
    got: list[tuple] = []
    parser = spdy.Parser(lambda s, piece, fin: got.append(("data", s, bytes(piece), fin)),
                         lambda c: got.append(("control", c.kind, c.flags, c.stream_id, c.word2)))
    for chunk in chunks:
        parser.feed(chunk)
    return got


WIRE = (spdy.data_header(1, 5) + b"hello" + spdy.rst_stream(3, spdy.CANCEL) + spdy.data_header(1, 0, fin=True)
        + spdy.ping(2) + b"\x80\x03\x00\x02\x00\x00\x00\x06\x00\x00\x00\x03\x78\x9c")  # a SYN_REPLY for stream 3


def test_frames_are_read_whole_or_in_any_pieces_alike():
    whole = parse(WIRE)
    assert whole == [("data", 1, b"hello", False), ("control", spdy.RST_STREAM, 0, 3, spdy.CANCEL),
                     ("data", 1, b"", True), ("control", spdy.PING, 0, 2, 0), ("control", spdy.SYN_REPLY, 0, 3, 0)]
    bytewise = parse(*(WIRE[i:i + 1] for i in range(len(WIRE))))
    joined: list[tuple] = []
    for item in bytewise:  # data arrives piece by piece, as it came in
        if joined and item[0] == "data" == joined[-1][0] and item[1] == joined[-1][1] and not joined[-1][3]:
            joined[-1] = ("data", item[1], joined[-1][2] + item[2], item[3])
        else:
            joined.append(item)
    assert joined == whole


def test_a_data_frame_is_passed_on_before_it_is_complete():
    got = parse(spdy.data_header(5, 1 << 20) + b"x" * 1000)
    assert got == [("data", 5, b"x" * 1000, False)]


@pytest.mark.parametrize("frame, error", [
    (b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", "SPDY version 2, not 3"),
    (b"\x80\x03\x00\x04\x00\x20\x00\x00", "a control frame of 2097152 bytes"),
])
def test_what_is_not_spdy_3_stops_the_session(frame, error):
    with pytest.raises(spdy.FrameError, match=error):
        parse(frame)

"""A dependency-free TensorBoard event-file writer for scalars.

Evaluation writes a handful of numbers; pulling in tensorboard/tensorboardX (and protobuf) for
that is not worth it, and the format is small: a TFRecord file (length, masked CRC-32C of the
length, payload, masked CRC-32C of the payload) of `Event` protocol buffers, the first carrying
the file version, the others a `Summary` of (tag, simple_value) pairs. The protobuf fields used
are Event{1: wall_time double, 2: step int64, 3: file_version string, 5: summary} and
Summary{1: repeated Value{1: tag string, 2: simple_value float}}.
"""

from __future__ import annotations

import os
import socket
import struct
import time


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # reversed Castagnoli polynomial
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC (rotated and offset so CRCs of CRCs are not trivially related)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    # Wire type 2: length-delimited (strings and nested messages).
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    """Event proto: wall_time (field 1, fixed64 double), step (field 2, varint), then `body`."""
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + body


def _scalar_summary(scalars: dict[str, float]) -> bytes:
    values = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value)))
        for tag, value in scalars.items())  # Value{tag = 1, simple_value = 2 (fixed32)}
    return _field_bytes(5, values)  # Event.summary = 5


class EventWriter:
    """Appends scalar events to `events.out.tfevents.<time>.<host>` in `log_dir`."""

    def __init__(self, log_dir: str):
        os.makedirs(log_dir, exist_ok=True)
        now = time.time()
        self.path = os.path.join(log_dir, f"events.out.tfevents.{int(now)}.{socket.gethostname()}")
        self._file = open(self.path, "ab")
        self._write(_event(now, 0, _field_bytes(3, b"brain.Event:2")))  # Event.file_version = 3

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", masked_crc32c(header))
                         + record + struct.pack("<I", masked_crc32c(record)))

    def scalars(self, step: int, scalars: dict[str, float]) -> None:
        """One event holding every (tag, value) pair at `step`."""
        self._write(_event(time.time(), step, _scalar_summary(scalars)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

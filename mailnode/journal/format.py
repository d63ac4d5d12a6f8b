"""On-disk format of a shard's journal: segments of framed records.

A frame is ``MAGIC | u32 length | u32 crc32(payload) | payload``; the payload
is a serialized ``JournalRecord`` whose ``lsn`` is the frame's byte offset in
the shard's log. A segment file is named by the lsn of its first frame, so the
log is the concatenation of the segments in name order with no gaps.

Scanning tells a *torn tail* (the last write of the last segment cut short by a
crash: no valid frame follows the bad bytes) from *damage* (bad bytes with
valid frames after them, or anything wrong in an earlier segment). The first
is cut back on start-up; the second stops start-up and is for
``mailctl journal salvage``.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from mailnode.proto.journal_pb2 import JournalRecord

MAGIC = b"MCJ1"
HEADER = struct.Struct("<4sII")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 512 * 1024 * 1024
SEGMENT_SUFFIX = ".seg"


class JournalDamaged(Exception):
    """Unreadable bytes somewhere other than the torn tail of the last segment."""

    def __init__(self, path: str, offset: int, reason: str):
        super().__init__(f"{path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


def frame(payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: str) -> list[tuple[int, str]]:
    """(first lsn, path) of every segment in the directory, in log order."""
    out = []
    for name in os.listdir(directory):
        if name.endswith(SEGMENT_SUFFIX) and name[: -len(SEGMENT_SUFFIX)].isdigit():
            out.append((int(name[: -len(SEGMENT_SUFFIX)]), os.path.join(directory, name)))
    out.sort()
    return out


@dataclass
class Frame:
    lsn: int
    size: int  # header + payload
    record: JournalRecord


class BadFrame(Exception):
    def __init__(self, offset: int, reason: str, short: bool = False):
        super().__init__(reason)
        self.offset = offset
        self.reason = reason
        self.short = short  # ran off the end of the data


def parse_frame(buf: bytes | memoryview, off: int, base_lsn: int) -> Frame:
    """Parse and check the frame at ``off`` of a segment starting at ``base_lsn``."""
    if len(buf) - off < HEADER_SIZE:
        raise BadFrame(off, "incomplete frame header", short=True)
    magic, length, crc = HEADER.unpack_from(buf, off)
    if magic != MAGIC:
        raise BadFrame(off, "bad frame magic")
    if length > MAX_PAYLOAD:
        raise BadFrame(off, f"implausible frame length {length}")
    end = off + HEADER_SIZE + length
    if end > len(buf):
        raise BadFrame(off, f"frame of {length} bytes runs past end of segment", short=True)
    payload = bytes(buf[off + HEADER_SIZE : end])
    if zlib.crc32(payload) != crc:
        raise BadFrame(off, "checksum mismatch")
    record = JournalRecord()
    try:
        record.ParseFromString(payload)
    except DecodeError as e:
        raise BadFrame(off, f"undecodable record: {e}") from None
    if record.lsn != base_lsn + off:
        raise BadFrame(off, f"record says lsn {record.lsn}, its place is {base_lsn + off}")
    return Frame(base_lsn + off, HEADER_SIZE + length, record)


def next_valid_frame(buf: bytes, start: int, base_lsn: int) -> Frame | None:
    """The first valid frame at or after ``start`` (a resynchronising search)."""
    pos = buf.find(MAGIC, start)
    while pos >= 0:
        try:
            return parse_frame(buf, pos, base_lsn)
        except BadFrame:
            pos = buf.find(MAGIC, pos + 1)
    return None


@dataclass
class SegmentScan:
    base_lsn: int
    path: str
    size: int  # bytes in the file
    good_end: int  # offset after the last valid frame of the unbroken prefix
    records: int
    last_epoch: int
    first_ts: int
    last_ts: int
    bad: BadFrame | None  # first problem after good_end, if any
    resumes_at: int | None  # offset of a valid frame after the problem, if any
    epoch_starts: list[tuple[int, int]]  # (epoch, lsn of its first record) where the epoch rises


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def scan_segment(base_lsn: int, path: str, buf: bytes | None = None) -> SegmentScan:
    if buf is None:
        buf = read_file(path)
    off = records = last_epoch = first_ts = last_ts = 0
    bad = None
    epoch_starts = []
    while off < len(buf):
        try:
            fr = parse_frame(buf, off, base_lsn)
        except BadFrame as e:
            bad = e
            break
        records += 1
        if fr.record.epoch > last_epoch:
            epoch_starts.append((fr.record.epoch, fr.lsn))
            last_epoch = fr.record.epoch
        first_ts = first_ts or fr.record.timestamp_ns
        last_ts = fr.record.timestamp_ns
        off += fr.size
    resumes = None
    if bad is not None:
        nxt = next_valid_frame(buf, off + 1, base_lsn)
        resumes = None if nxt is None else nxt.lsn - base_lsn
    return SegmentScan(
        base_lsn,
        path,
        len(buf),
        off,
        records,
        last_epoch,
        first_ts,
        last_ts,
        bad,
        resumes,
        epoch_starts,
    )


def iter_frames(directory: str, start_lsn: int = 0) -> Iterator[Frame]:
    """Every valid frame at or after ``start_lsn``, in order. Stops at the first bad frame."""
    segments = list_segments(directory)
    for i, (base, path) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else None
        if nxt is not None and nxt <= start_lsn:
            continue
        buf = read_file(path)
        off = max(0, start_lsn - base)
        while off < len(buf):
            try:
                fr = parse_frame(buf, off, base)
            except BadFrame:
                return
            yield fr
            off += fr.size


def frame_boundary(buf: bytes, limit: int) -> int:
    """The largest offset <= limit in ``buf`` (which starts at a frame) that ends a frame."""
    off = 0
    while off + HEADER_SIZE <= len(buf):
        _, length, _ = HEADER.unpack_from(buf, off)
        end = off + HEADER_SIZE + length
        if end > limit or end > len(buf):
            break
        off = end
    return off


def read_range(directory: str, start_lsn: int, end_lsn: int, max_bytes: int) -> bytes:
    """Framed bytes of the log from ``start_lsn`` (a frame start), whole frames only,
    at most ``max_bytes`` (but at least one frame) and not past ``end_lsn``."""
    segments = list_segments(directory)
    for i, (base, path) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else None
        if start_lsn < base or (nxt is not None and start_lsn >= nxt):
            continue
        want = min(end_lsn, nxt if nxt is not None else end_lsn) - start_lsn
        with open(path, "rb") as f:
            f.seek(start_lsn - base)
            buf = f.read(want)
        cut = frame_boundary(buf, max_bytes)
        if cut == 0:  # one frame larger than max_bytes
            cut = frame_boundary(buf, len(buf))
        return buf[:cut]
    raise FileNotFoundError(f"{directory}: no segment holds lsn {start_lsn}")


def read_record(directory: str, lsn: int) -> JournalRecord:
    """The one record at ``lsn`` (a frame start), checksum verified: how the delivery
    queue finds a message's bytes (blocking)."""
    for base, path in reversed(list_segments(directory)):
        if base > lsn:
            continue
        with open(path, "rb") as f:
            f.seek(lsn - base)
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                break
            _, length, _ = HEADER.unpack_from(head, 0)
            buf = head + f.read(length)
        return parse_frame(buf, 0, lsn).record
    raise FileNotFoundError(f"{directory}: no record at lsn {lsn}")

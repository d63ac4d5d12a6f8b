"""Offline journal tools behind ``mailctl journal inspect|verify|salvage``.

They take the journal directory's lock, so they refuse to run under a live node.
Salvage keeps every readable record at its lsn: unreadable bytes are replaced
by a ``Hole`` record of exactly their length, so later records keep their
offsets and a replica or archive holding them still agrees.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from mailnode.durable import fsync_dir
from mailnode.journal.format import HEADER_SIZE, frame, list_segments, scan_segment
from mailnode.journal.journal import lock_directory, recover
from mailnode.proto.journal_pb2 import JournalRecord


@dataclass
class SegmentInfo:
    segment: str
    first_lsn: int
    bytes: int
    records: int
    last_epoch: int
    first_time_ns: int
    last_time_ns: int
    status: str  # ok | torn tail at N | damaged at N: reason | gap before


def inspect(directory: str) -> list[SegmentInfo]:
    out = []
    segments = list_segments(directory)
    expected = segments[0][0] if segments else 0
    for i, (base, path) in enumerate(segments):
        scan = scan_segment(base, path)
        status = "ok"
        if base != expected:
            status = f"gap: previous segment ends at lsn {expected}"
        elif scan.bad is not None:
            last = i == len(segments) - 1
            if last and scan.resumes_at is None:
                status = f"torn tail at offset {scan.good_end} ({scan.bad.reason})"
            else:
                status = f"damaged at offset {scan.good_end}: {scan.bad.reason}"
        out.append(
            SegmentInfo(
                os.path.basename(path),
                base,
                scan.size,
                scan.records,
                scan.last_epoch,
                scan.first_ts,
                scan.last_ts,
                status,
            )
        )
        expected = base + scan.size
    return out


def locked(directory: str):
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such journal directory")
    return lock_directory(directory)


def verify(directory: str) -> list[SegmentInfo]:
    """Segments whose status is not ok (an empty list: the journal is sound)."""
    fd = locked(directory)
    try:
        return [s for s in inspect(directory) if s.status != "ok"]
    finally:
        os.close(fd)


def hole_frame(lsn: int, length: int) -> bytes:
    """A Hole record framed to exactly ``length`` bytes."""
    for epoch in (0, 1):
        for pad in range(max(0, length - HEADER_SIZE - 40), length):
            rec = JournalRecord(lsn=lsn, epoch=epoch)
            rec.hole.lost_bytes = length
            rec.hole.padding = b"\0" * pad
            data = frame(rec.SerializeToString())
            if len(data) == length:
                return data
            if len(data) > length:
                break
    raise ValueError(f"cannot fill {length} bytes at lsn {lsn} with a hole record (too short)")


@dataclass
class Repair:
    segment: str
    offset: int
    bytes: int
    action: str


def salvage(directory: str) -> list[Repair]:
    """Make the journal readable again; returns what was repaired."""
    fd = locked(directory)
    repairs: list[Repair] = []
    try:
        while True:
            repair = _repair_first(directory)
            if repair is None:
                break
            repairs.append(repair)
        recover(directory)  # must now pass
        fsync_dir(directory)
    finally:
        os.close(fd)
    return repairs


def _repair_first(directory: str) -> Repair | None:
    segments = list_segments(directory)
    for i, (base, path) in enumerate(segments):
        scan = scan_segment(base, path)
        next_base = segments[i + 1][0] if i + 1 < len(segments) else None
        if next_base is not None and next_base < base + scan.good_end:
            raise ValueError(
                f"{path}: overlaps the next segment; salvage cannot decide which to keep"
            )
        name = os.path.basename(path)
        if scan.bad is None:
            if next_base is None or next_base == base + scan.size:
                continue
            # The segment ends short of the next one: bytes lost at its end.
            start, end = scan.size, next_base - base
        elif scan.resumes_at is not None:
            start, end = scan.good_end, scan.resumes_at
        elif next_base is None:
            with open(path, "r+b") as f:
                f.truncate(scan.good_end)
                os.fsync(f.fileno())
            return Repair(
                name, scan.good_end, scan.size - scan.good_end, f"cut torn tail ({scan.bad.reason})"
            )
        else:
            start, end = scan.good_end, next_base - base
        hole = hole_frame(base + start, end - start)
        with open(path, "r+b") as f:
            f.seek(start)
            f.write(hole)
            if scan.resumes_at is None:
                f.truncate(end)
            os.fsync(f.fileno())
        reason = scan.bad.reason if scan.bad is not None else "segment shorter than the log says"
        return Repair(name, start, end - start, f"replaced unreadable bytes with a hole ({reason})")
    return None


def as_dicts(items) -> list[dict]:
    return [asdict(i) for i in items]

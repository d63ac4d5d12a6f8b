"""A shard's journal: append-only, checksummed, group-committed with fdatasync.

``append()`` is called on the event loop; it gives the record its lsn and
queues the frame. One writer thread takes everything queued since its last
round, writes it with one ``writev`` and makes it durable with one
``fdatasync`` (group commit), then resolves the waiting futures on the loop.
The event loop never touches the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from mailnode.journal.format import (
    JournalDamaged,
    frame,
    list_segments,
    scan_segment,
    segment_name,
)
from mailnode.proto.journal_pb2 import JournalRecord

log = logging.getLogger(__name__)

IOV_MAX = 1024


class JournalError(Exception):
    """The journal cannot take writes (disk error, closed, or fenced)."""


@dataclass
class Committed:
    """A record that is durable, handed to commit listeners in lsn order."""

    lsn: int
    end: int
    record: JournalRecord


@dataclass
class _Pending:
    lsn: int
    data: bytes
    record: JournalRecord
    future: asyncio.Future | None
    new_segment: bool  # this frame starts a new segment file


BatchListener = Callable[[list[Committed]], None]
BatchObserver = Callable[[int, int, float], None]  # records, bytes, fsync seconds


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Recovery:
    segments: int
    end_lsn: int
    epoch: int
    truncated_bytes: int


def recover(directory: str) -> Recovery:
    """Check every segment; cut a torn tail; raise JournalDamaged on anything else."""
    segments = list_segments(directory)
    expected = segments[0][0] if segments else 0
    epoch = 0
    truncated = 0
    for i, (base, path) in enumerate(segments):
        if base != expected:
            raise JournalDamaged(path, 0, f"gap in the log: previous segment ends at lsn {expected}")
        scan = scan_segment(base, path)
        epoch = max(epoch, scan.last_epoch)
        last = i == len(segments) - 1
        if scan.bad is not None:
            if not last or scan.resumes_at is not None:
                raise JournalDamaged(path, scan.bad.offset, scan.bad.reason)
            truncated = scan.size - scan.good_end
            log.warning(
                "journal %s: torn tail at offset %d (%s): cutting %d bytes written by an "
                "unfinished commit",
                path, scan.good_end, scan.bad.reason, truncated,
            )
            with open(path, "r+b") as f:
                f.truncate(scan.good_end)
                os.fsync(f.fileno())
        expected = base + scan.good_end
    return Recovery(len(segments), expected, epoch, truncated)


class Journal:
    def __init__(
        self,
        directory: str,
        *,
        segment_size: int = 64 * 1024 * 1024,
        on_batch: BatchObserver | None = None,
    ):
        self.directory = directory
        self.segment_size = segment_size
        self.on_batch = on_batch
        self._listeners: list[BatchListener] = []
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._segment_base = 0
        self._segment_len = 0  # bytes assigned to the current segment (incl. queued)
        self._have_segment = False  # loop-side: a segment exists to append to
        self.first_lsn = 0
        self.end_lsn = 0  # next lsn to assign
        self.committed_lsn = 0  # everything below is durable
        self.epoch = 0
        self.segments = 0
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failed: Exception | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the directory, recover, and open the last segment for appends (blocking)."""
        os.makedirs(self.directory, exist_ok=True)
        self._lock_fd = lock_directory(self.directory)
        rec = recover(self.directory)
        self.end_lsn = self.committed_lsn = rec.end_lsn
        self.epoch = rec.epoch
        segments = list_segments(self.directory)
        self.segments = len(segments)
        if segments:
            self._have_segment = True
            self.first_lsn = segments[0][0]
            self._segment_base, path = segments[-1]
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_len = rec.end_lsn - self._segment_base
        return rec

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._writer, name=f"journal:{self.directory}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, stop the writer and release the directory (blocking)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def add_listener(self, listener: BatchListener) -> None:
        """Called on the event loop with each committed batch, in lsn order."""
        self._listeners.append(listener)

    @property
    def failed(self) -> Exception | None:
        return self._failed

    # -- appending -----------------------------------------------------------------
    def append(self, record: JournalRecord, *, wait: bool = True) -> asyncio.Future | None:
        """Queue a record; the future resolves to its lsn once it is durable.

        Must be called on the event loop. The record's lsn, epoch and timestamp
        are set here, so appends are ordered as they are called.
        """
        if self._failed is not None:
            raise JournalError(f"journal {self.directory} failed: {self._failed}")
        if self._closing:
            raise JournalError(f"journal {self.directory} is closed")
        record.lsn = self.end_lsn
        if not record.epoch:
            record.epoch = self.epoch
        record.timestamp_ns = time.time_ns()
        data = frame(record.SerializeToString())
        new_segment = not self._have_segment or (
            self._segment_len > 0 and self._segment_len + len(data) > self.segment_size
        )
        self._have_segment = True
        if new_segment:
            self._segment_len = 0
        self._segment_len += len(data)
        fut = self._loop.create_future() if wait else None
        item = _Pending(self.end_lsn, data, record, fut, new_segment)
        self.end_lsn += len(data)
        with self._cond:
            self._pending.append(item)
            if len(self._pending) == 1:
                self._cond.notify()
        return fut

    # -- writer thread -------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending and self._closing:
                    return
                batch, self._pending = self._pending, []
            t0 = time.monotonic()
            try:
                nbytes = self._write_batch(batch)
            except OSError as e:
                # After a failed write or fsync the file's state is unknown
                # (fsyncgate): refuse all further writes until a restart recovers.
                log.error("journal %s: write failed, refusing further commits: %s", self.directory, e)
                self._failed = e
                self._loop.call_soon_threadsafe(self._fail_batch, batch, e)
                with self._cond:
                    rest, self._pending = self._pending, []
                self._loop.call_soon_threadsafe(self._fail_batch, rest, e)
                return
            if self.on_batch is not None:
                self.on_batch(len(batch), nbytes, time.monotonic() - t0)
            self._loop.call_soon_threadsafe(self._resolve, batch)

    def _write_batch(self, batch: list[_Pending]) -> int:
        nbytes = 0
        run: list[bytes] = []
        for item in batch:
            if item.new_segment:
                self._flush(run)
                run = []
                self._rotate(item.lsn)
            run.append(item.data)
            nbytes += len(item.data)
        self._flush(run)
        os.fdatasync(self._fd)
        return nbytes

    def _flush(self, bufs: list[bytes]) -> None:
        for i in range(0, len(bufs), IOV_MAX):
            chunk = bufs[i : i + IOV_MAX]
            want = sum(map(len, chunk))
            done = os.writev(self._fd, chunk)
            if done != want:  # short write: finish it byte-exactly
                rest = b"".join(chunk)[done:]
                while rest:
                    rest = rest[os.write(self._fd, rest) :]

    def _rotate(self, first_lsn: int) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)
            os.close(self._fd)
        path = os.path.join(self.directory, segment_name(first_lsn))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        fsync_dir(self.directory)  # the new name must survive a crash too
        self._segment_base = first_lsn
        self.segments += 1
        log.info("journal %s: new segment %s", self.directory, os.path.basename(path))

    # -- on the loop ---------------------------------------------------------------
    def _resolve(self, batch: list[_Pending]) -> None:
        last = batch[-1]
        self.committed_lsn = last.lsn + len(last.data)
        for item in batch:
            if item.future is not None and not item.future.done():
                item.future.set_result(item.lsn)
        if self._listeners:
            committed = [Committed(i.lsn, i.lsn + len(i.data), i.record) for i in batch]
            for listener in self._listeners:
                listener(committed)

    @staticmethod
    def _fail_batch(batch: list[_Pending], error: Exception) -> None:
        for item in batch:
            if item.future is not None and not item.future.done():
                item.future.set_exception(JournalError(f"commit failed: {error}"))

    @property
    def size(self) -> int:
        return self.committed_lsn - self.first_lsn


def lock_directory(directory: str) -> int:
    """Hold an exclusive lock on the journal directory for this process's life."""
    fd = os.open(os.path.join(directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"journal {directory} is in use by another process") from None
    return fd

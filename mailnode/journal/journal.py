"""A shard's journal: append-only, checksummed, group-committed with fdatasync.

``append()`` is called on the event loop; it gives the record its lsn and
queues the frame. One writer thread takes everything queued since its last
round, writes it with one ``writev`` and makes it durable with one
``fdatasync`` (group commit), then resolves the waiting futures on the loop.
The event loop never touches the disk.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

from mailnode.durable import fsync_dir, makedirs_synced
from mailnode.errors import JournalError, JournalFenced
from mailnode.journal.format import (
    JournalDamaged,
    frame,
    list_segments,
    read_range,
    scan_segment,
    segment_name,
)
from mailnode.proto.journal_pb2 import JournalRecord

log = logging.getLogger(__name__)

IOV_MAX = 1024
RECENT_BYTES = 16 * 1024 * 1024  # committed frames kept in memory for spares that keep up


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
    future: asyncio.Future[int] | None
    new_segment: bool  # this frame starts a new segment file


BatchListener = Callable[[list[Committed]], None]
BatchObserver = Callable[[int, int, float], None]  # records, bytes, fsync seconds


@dataclass
class Recovery:
    segments: int
    end_lsn: int
    epoch: int
    truncated_bytes: int
    epochs: list[tuple[int, int]]  # (epoch, first lsn), ascending
    first_lsn: int


EPOCHS_FILE = "epochs.json"


def read_epochs(directory: str) -> tuple[int, list[tuple[int, int]]]:
    """(start lsn, epoch history) for a journal that begins after a snapshot, else (0, [])."""
    try:
        with open(os.path.join(directory, EPOCHS_FILE)) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return 0, []
    return int(doc["start_lsn"]), [(int(e), int(lsn)) for e, lsn in doc["epochs"]]


def write_epochs(directory: str, start_lsn: int, epochs: list[tuple[int, int]]) -> None:
    tmp = os.path.join(directory, EPOCHS_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"start_lsn": start_lsn, "epochs": epochs}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, EPOCHS_FILE))
    fsync_dir(directory)


def recover(directory: str) -> Recovery:
    """Check every segment; cut a torn tail; raise JournalDamaged on anything else."""
    segments = list_segments(directory)
    start, epochs = read_epochs(directory)
    expected = segments[0][0] if segments else start
    epoch = epochs[-1][0] if epochs else 0
    truncated = 0
    for i, (base, path) in enumerate(segments):
        if base != expected:
            raise JournalDamaged(
                path, 0, f"gap in the log: previous segment ends at lsn {expected}"
            )
        scan = scan_segment(base, path)
        for e, lsn in scan.epoch_starts:
            if e > epoch:
                epochs.append((e, lsn))
                epoch = e
        last = i == len(segments) - 1
        if scan.bad is not None:
            if not last or scan.resumes_at is not None:
                raise JournalDamaged(path, scan.bad.offset, scan.bad.reason)
            truncated = scan.size - scan.good_end
            log.warning(
                "journal %s: torn tail at offset %d (%s): cutting %d bytes written by an "
                "unfinished commit",
                path,
                scan.good_end,
                scan.bad.reason,
                truncated,
            )
            with open(path, "r+b") as f:
                f.truncate(scan.good_end)
                os.fsync(f.fileno())
        expected = base + scan.good_end
    return Recovery(
        len(segments), expected, epoch, truncated, epochs, segments[0][0] if segments else start
    )


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
        self.epoch = 0  # the epoch given to records appended here (a primary's)
        # The fence token: append() is allowed only while this equals ``epoch``, i.e. the
        # shard is primary at that epoch. A demotion clears it first, so no late write of
        # the old primary (an abort that was waiting for ZooKeeper) can land among the
        # frames it now receives from the new one. append_frame() (a spare's) ignores it.
        self.writer: int | None = None
        self.epochs: list[tuple[int, int]] = []  # (epoch, first lsn) history, ascending
        self.segments = 0
        self._recent_lsns: list[int] = []
        self._recent_data: list[bytes] = []
        self._recent_bytes = 0
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failed: Exception | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the directory, recover, and open the last segment for appends (blocking)."""
        makedirs_synced(self.directory)
        self._lock_fd = lock_directory(self.directory)
        rec = recover(self.directory)
        self.end_lsn = self.committed_lsn = rec.end_lsn
        self.epoch = rec.epoch
        self.epochs = list(rec.epochs)
        self.first_lsn = rec.first_lsn
        segments = list_segments(self.directory)
        self.segments = len(segments)
        if segments:
            self._have_segment = True
            self._segment_base, path = segments[-1]
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_len = rec.end_lsn - self._segment_base
        return rec

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(
            target=self._writer, name=f"journal:{self.directory}", daemon=True
        )
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
    def allow_writes(self, epoch: int) -> None:
        """This shard is primary at ``epoch``: append() writes records of that epoch."""
        self.epoch = self.writer = epoch

    def fence(self) -> None:
        """No more append() (the shard was demoted); append_frame() still works."""
        self.writer = None

    # wait=False queues without a future: None.
    @overload
    def append(
        self, record: JournalRecord, *, wait: Literal[True] = True
    ) -> asyncio.Future[int]: ...
    @overload
    def append(self, record: JournalRecord, *, wait: bool) -> asyncio.Future[int] | None: ...
    def append(self, record: JournalRecord, *, wait: bool = True) -> asyncio.Future[int] | None:
        """Queue a record; the future resolves to its lsn once it is durable.

        Must be called on the event loop. The record's lsn, epoch and timestamp
        are set here, so appends are ordered as they are called.
        """
        self._check_open()
        if self.writer is None or self.writer != self.epoch:
            raise JournalFenced(
                f"journal {self.directory}: not primary at epoch {self.epoch} (fenced)"
            )
        record.lsn = self.end_lsn
        if not record.epoch:
            record.epoch = self.epoch
        record.timestamp_ns = time.time_ns()
        return self._enqueue(frame(record.SerializeToString()), record, wait)

    @overload
    def append_frame(
        self, lsn: int, data: bytes, record: JournalRecord, *, wait: Literal[True] = True
    ) -> asyncio.Future[int]: ...
    @overload
    def append_frame(
        self, lsn: int, data: bytes, record: JournalRecord, *, wait: bool
    ) -> asyncio.Future[int] | None: ...
    def append_frame(
        self, lsn: int, data: bytes, record: JournalRecord, *, wait: bool = True
    ) -> asyncio.Future[int] | None:
        """A spare's append: a frame exactly as the primary wrote it, at the same lsn."""
        self._check_open()
        if lsn != self.end_lsn:
            raise JournalError(
                f"journal {self.directory}: frame at lsn {lsn}, expected {self.end_lsn}"
            )
        return self._enqueue(data, record, wait)

    def _check_open(self) -> None:
        if self._failed is not None:
            raise JournalError(f"journal {self.directory} failed: {self._failed}")
        if self._closing:
            raise JournalError(f"journal {self.directory} is closed")

    def _enqueue(
        self, data: bytes, record: JournalRecord, wait: bool
    ) -> asyncio.Future[int] | None:
        if not self.epochs or record.epoch > self.epochs[-1][0]:
            self.epochs.append((record.epoch, self.end_lsn))
        new_segment = not self._have_segment or (
            self._segment_len > 0 and self._segment_len + len(data) > self.segment_size
        )
        self._have_segment = True
        if new_segment:
            self._segment_len = 0
        self._segment_len += len(data)
        fut = self._event_loop().create_future() if wait else None
        item = _Pending(self.end_lsn, data, record, fut, new_segment)
        self.end_lsn += len(data)
        with self._cond:
            self._pending.append(item)
            if len(self._pending) == 1:
                self._cond.notify()
        return fut

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise JournalError(f"journal {self.directory} is not started")
        return self._loop

    # -- writer thread -------------------------------------------------------------
    def _writer(self) -> None:
        loop = self._event_loop()
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
                log.error(
                    "journal %s: write failed, refusing further commits: %s", self.directory, e
                )
                self._failed = e
                loop.call_soon_threadsafe(self._fail_batch, batch, e)
                with self._cond:
                    rest, self._pending = self._pending, []
                loop.call_soon_threadsafe(self._fail_batch, rest, e)
                return
            if self.on_batch is not None:
                self.on_batch(len(batch), nbytes, time.monotonic() - t0)
            loop.call_soon_threadsafe(self._resolve, batch)

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
        os.fdatasync(self._segment_fd())
        return nbytes

    def _segment_fd(self) -> int:
        # A batch's first item rotates when there is no segment yet, so one is open here.
        assert self._fd is not None, f"journal {self.directory}: no open segment"
        return self._fd

    def _flush(self, bufs: list[bytes]) -> None:
        for i in range(0, len(bufs), IOV_MAX):
            chunk = bufs[i : i + IOV_MAX]
            want = sum(map(len, chunk))
            fd = self._segment_fd()
            done = os.writev(fd, chunk)
            if done != want:  # short write: finish it byte-exactly
                rest = b"".join(chunk)[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]

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
            self._recent_lsns.append(item.lsn)
            self._recent_data.append(item.data)
            self._recent_bytes += len(item.data)
        if self._recent_bytes > 2 * RECENT_BYTES:  # trim in bulk, keeping the newest half
            keep = len(self._recent_data) // 2
            self._recent_lsns = self._recent_lsns[keep:]
            self._recent_data = self._recent_data[keep:]
            self._recent_bytes = sum(map(len, self._recent_data))
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

    # -- reading (for spares) --------------------------------------------------------
    def read_recent(self, start_lsn: int, max_bytes: int) -> bytes | None:
        """Committed frames from ``start_lsn`` out of memory, or None when not cached."""
        i = bisect.bisect_left(self._recent_lsns, start_lsn)
        if i == len(self._recent_lsns) or self._recent_lsns[i] != start_lsn:
            return None
        out = [self._recent_data[i]]
        size = len(out[0])
        for j in range(i + 1, len(self._recent_data)):
            data = self._recent_data[j]
            if size + len(data) > max_bytes:
                break
            out.append(data)
            size += len(data)
        return b"".join(out)

    async def read(self, start_lsn: int, max_bytes: int = 1 << 20) -> bytes:
        """Committed frames from ``start_lsn`` (a frame boundary), whole frames only."""
        data = self.read_recent(start_lsn, max_bytes)
        if data is None:
            data = await asyncio.to_thread(
                read_range, self.directory, start_lsn, self.committed_lsn, max_bytes
            )
        return data

    # -- rewriting (a spare after divergence or a snapshot) -----------------------------
    def _idle_fd_swap(self, action) -> None:
        with self._cond:
            if self._pending:
                raise JournalError(f"journal {self.directory}: cannot rewrite with appends queued")
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            action()

    def truncate(self, lsn: int) -> int:
        """Cut the log back to ``lsn`` (a frame boundary); returns bytes removed (blocking)."""
        removed = self.committed_lsn - lsn

        def cut():
            for base, path in reversed(list_segments(self.directory)):
                if base >= lsn:
                    os.unlink(path)
                    continue
                with open(path, "r+b") as f:
                    f.truncate(lsn - base)
                    os.fsync(f.fileno())
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                self._segment_len = lsn - base
                break
            fsync_dir(self.directory)

        self._idle_fd_swap(cut)
        self.end_lsn = self.committed_lsn = lsn
        self.epochs = [(e, s) for e, s in self.epochs if s < lsn]
        self.epoch = self.epochs[-1][0] if self.epochs else 0
        self.segments = len(list_segments(self.directory))
        self._have_segment = self._fd is not None
        self._recent_lsns, self._recent_data, self._recent_bytes = [], [], 0
        return removed

    def remove_before(self, lsn: int) -> int:
        """Delete the segments that end at or before ``lsn`` (never the one being written);
        the log then starts at the first segment left. Returns segments removed (blocking)."""
        segments = list_segments(self.directory)
        removable = [
            path for i, (base, path) in enumerate(segments[:-1]) if segments[i + 1][0] <= lsn
        ]
        if not removable:
            return 0
        first = segments[len(removable)][0]
        # The start and the epoch history first: a crash part-way leaves a log that still
        # begins at its first remaining segment, with the history it needs.
        write_epochs(self.directory, first, [e for e in self.epochs if e[1] < first])
        for path in removable:
            os.unlink(path)
        fsync_dir(self.directory)
        self.first_lsn = first
        self.segments -= len(removable)
        return len(removable)

    def reset(self, start_lsn: int, epochs: list[tuple[int, int]]) -> None:
        """Empty the log so that it starts at ``start_lsn`` (after a snapshot), blocking."""

        def wipe():
            for _, path in list_segments(self.directory):
                os.unlink(path)
            write_epochs(self.directory, start_lsn, epochs)

        self._idle_fd_swap(wipe)
        self.end_lsn = self.committed_lsn = self.first_lsn = start_lsn
        self.epochs = list(epochs)
        self.epoch = epochs[-1][0] if epochs else 0
        self.segments = 0
        self._have_segment = False
        self._segment_len = 0
        self._recent_lsns, self._recent_data, self._recent_bytes = [], [], 0

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

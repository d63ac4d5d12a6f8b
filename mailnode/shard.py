"""A shard on this node: its journal, its derived state, and the applier.

Committed records reach the applier thread in lsn order; it applies them to
the Maildir store and user table and checkpoints periodically. Callers that
need to read their own write (user add, POP3 expunge) wait for applied_lsn.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import queue
import threading
import time

from mailnode import metrics
from mailnode.journal import Committed, Journal
from mailnode.journal.format import iter_frames
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.store.state import ShardState

log = logging.getLogger(__name__)


class Shard:
    def __init__(self, shard: int, directory: str, *, node: str, segment_size: int,
                 checkpoint_interval: float):
        self.id = shard
        self.node = node
        self.directory = directory
        self.checkpoint_interval = checkpoint_interval
        label = str(shard)
        self._m_batch = metrics.FSYNC_BATCH.labels(label)
        self._m_fsync = metrics.FSYNC_SECONDS.labels(label)
        self._m_deliveries = metrics.DELIVERIES.labels(label)
        self._m_applied = metrics.APPLIED_LSN.labels(label)
        self.journal = Journal(os.path.join(directory, "journal"), segment_size=segment_size,
                               on_batch=self._observe_batch)
        self.state = ShardState(shard, directory)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # (lsn, seq, future)
        self._seq = 0
        self._stopping = threading.Event()
        self.applied_lsn = 0  # loop-side view of state.applied_lsn

    # -- start-up (blocking; run before serving) --------------------------------------
    def open(self) -> int:
        """Recover the journal and replay it into the store; returns records replayed."""
        os.makedirs(self.directory, exist_ok=True)
        rec = self.journal.open()
        self.state.load()
        if self.state.applied_lsn > rec.end_lsn:
            raise RuntimeError(
                f"shard {self.id}: store checkpoint at lsn {self.state.applied_lsn} is past the "
                f"journal's end {rec.end_lsn}; the journal was truncated behind the store's back"
            )
        replayed = 0
        for fr in iter_frames(self.journal.directory, self.state.applied_lsn):
            self.state.apply(fr.record, fr.lsn + fr.size, replay=True)
            replayed += 1
        self.state.checkpoint()
        self.applied_lsn = self.state.applied_lsn
        log.info("shard %d: journal end lsn %d, epoch %d, %d segments; replayed %d records",
                 self.id, rec.end_lsn, rec.epoch, rec.segments, replayed)
        return replayed

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.journal.add_listener(self._queue.put)
        self.journal.start(loop)
        self._thread = threading.Thread(target=self._applier, name=f"applier:{self.id}", daemon=True)
        self._thread.start()
        if self.journal.end_lsn == 0:
            r = JournalRecord(epoch=1)
            r.epoch_started.shard = self.id
            r.epoch_started.node = self.node
            self.journal.epoch = 1
            self.journal.append(r, wait=False)
        self.update_gauges()

    def stop(self) -> None:
        """Flush the journal and the applier, write a checkpoint (blocking)."""
        self.journal.close()
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self.state.checkpoint()

    # -- applier thread ---------------------------------------------------------------
    def _applier(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            try:
                batch = self._queue.get(timeout=self.checkpoint_interval)
            except queue.Empty:
                batch = []
            if batch is None:
                return
            delivered = 0
            for c in batch:
                delivered += self._apply_until_done(c)
            if delivered:
                self._m_deliveries.inc(delivered)
            if batch:
                self._loop.call_soon_threadsafe(self._applied, self.state.applied_lsn)
            now = time.monotonic()
            if now - last_checkpoint >= self.checkpoint_interval:
                try:
                    self.state.checkpoint()
                except OSError:
                    log.exception("shard %d: checkpoint failed", self.id)
                last_checkpoint = now

    def _apply_until_done(self, c: Committed) -> int:
        """Apply one record, retrying on disk errors: the store must not skip a record."""
        failures = 0
        while True:
            try:
                return self.state.apply(c.record, c.end)
            except OSError as e:
                if failures == 0:
                    log.error("shard %d: applying lsn %d failed, retrying every second: %s", self.id, c.lsn, e)
                failures += 1
                if self._stopping.wait(1.0):
                    raise SystemExit from e  # stop: the next start replays this record

    def _observe_batch(self, records: int, nbytes: int, seconds: float) -> None:
        self._m_batch.observe(records)
        self._m_fsync.observe(seconds)

    # -- on the loop ------------------------------------------------------------------
    def _applied(self, lsn: int) -> None:
        self.applied_lsn = lsn
        self._m_applied.set(lsn)
        while self._waiters and self._waiters[0][0] < lsn:
            fut = self._waiters.pop(0)[2]
            if not fut.done():
                fut.set_result(None)

    async def wait_applied(self, lsn: int) -> None:
        """Wait until the record at ``lsn`` is applied to the store."""
        if lsn < self.applied_lsn:
            return
        fut = self._loop.create_future()
        self._seq += 1
        bisect.insort(self._waiters, (lsn, self._seq, fut))
        await fut

    async def commit(self, record: JournalRecord, *, applied: bool = False) -> int:
        """Append and wait until durable (and applied, if asked). Returns the lsn."""
        lsn = await self.journal.append(record)
        if applied:
            await self.wait_applied(lsn)
        return lsn

    def update_gauges(self) -> None:
        label = str(self.id)
        metrics.JOURNAL_BYTES.labels(label).set(self.journal.size)
        metrics.JOURNAL_SEGMENTS.labels(label).set(self.journal.segments)
        metrics.JOURNAL_COMMITTED_LSN.labels(label).set(self.journal.committed_lsn)

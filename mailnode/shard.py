"""A shard on this node: its journal, its derived state, and the applier.

Committed records reach the applier thread in lsn order; it applies them to
the Maildir store and user table and checkpoints periodically. Callers that
need to read their own write (user add, POP3 expunge) wait for applied_lsn.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

from mailnode import metrics
from mailnode.config import ReplicationPolicy
from mailnode.durable import makedirs_synced, sweep_tmp, write_atomic
from mailnode.errors import NotPrimary, NotReplicated, OverQuota
from mailnode.journal import Committed, Journal, JournalFenced
from mailnode.journal.format import iter_frames, list_segments, read_record
from mailnode.journal.journal import read_epochs, write_epochs
from mailnode.journal.waiters import LsnWaiters
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.replication.primary import ReplicationPrimary
from mailnode.store.maildir import message_name
from mailnode.store.state import ShardState

log = logging.getLogger(__name__)

REPLAY_BATCH = 20_000  # records per index commit during a replay
CATCH_UP = 5.0  # seconds a mailbox being opened waits for the applier, at most
APPLY_BATCH = 2_000  # records the applier takes into one index commit, at most


def _touches_queue(record: JournalRecord) -> bool:
    kind = record.WhichOneof("body")
    return kind in ("delivery_result", "queue_control", "aborted") or (
        kind == "message_accepted" and bool(record.message_accepted.relay_recipients)
    )


def _mailboxes_touched(record: JournalRecord) -> Iterable[str]:
    """The mailboxes whose folders or messages a record changes (IMAP sessions wake)."""
    kind = record.WhichOneof("body")
    if kind == "message_accepted":
        return record.message_accepted.recipients
    if kind == "delivery_result":
        return record.delivery_result.dsn.recipients
    if kind == "aborted":
        return record.aborted.recipients
    if kind in ("expunged", "folder_changed", "flags_changed", "messages_copied"):
        return (getattr(record, kind).mailbox,)
    return ()


class Shard:
    def __init__(
        self,
        shard: int,
        directory: str,
        *,
        node_name: str,
        segment_size: int,
        checkpoint_interval: float,
        replication: ReplicationPolicy | None = None,
        follow: str = "",
        idle_when_new: bool = False,
    ):
        self.id = shard
        self.node_name = node_name
        self.directory = directory
        self.checkpoint_interval = checkpoint_interval
        label = str(shard)
        self._m_batch = metrics.FSYNC_BATCH.labels(label)
        self._m_fsync = metrics.FSYNC_SECONDS.labels(label)
        self._m_deliveries = metrics.DELIVERIES.labels(label)
        self._m_applied = metrics.APPLIED_LSN.labels(label)
        self.journal = Journal(
            os.path.join(directory, "journal"),
            segment_size=segment_size,
            on_batch=self._observe_batch,
        )
        self.state = ShardState(shard, directory)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters = LsnWaiters()  # wait_applied: positions of the store
        self._stopping = threading.Event()
        self._inflight: dict[str, asyncio.Future[int]] = {}  # queue id -> its commit under way
        # Take-backs of inherited messages and 250s for their retried queue ids exclude
        # each other (take_back, _answer_duplicate).
        self._takeback_lock = asyncio.Lock()
        self._retry_answered: set[int] = set()  # inherited lsns whose RetryAnswered is durable
        # Take-backs (Aborted records) of messages whose commit failed because this node
        # was demoted first: a spare may hold them and be promoted. Kept in a file until
        # the follower has handed them to the new primary.
        self.untaken: list[JournalRecord] = []
        self.untaken_path = os.path.join(directory, "untaken.json")
        self._untaken_lock = asyncio.Lock()
        self.applied_lsn = 0  # loop-side view of state.applied_lsn
        # Role: "primary" (the only writer) or "spare" (a hot spare of `primary_address`, idle when "").
        self.role = "primary"
        self.draining = False  # a switchover is under way: no new commits, spares catch up
        self.primary_address = ""
        self.epoch = 0  # the highest epoch this node knows for the shard
        self.role_path = os.path.join(directory, "role.json")
        self.initial_primary = follow  # a new shard's primary ([replication] follow)
        self.idle_when_new = idle_when_new  # cluster mode: wait for ZooKeeper to assign a role
        rp = replication or ReplicationPolicy()
        self.replication = ReplicationPrimary(
            self,
            policy=rp.policy,
            strict=rp.strict,
            sync_timeout=rp.sync_timeout,
            max_lag_bytes=rp.max_lag_bytes,
            max_lag_seconds=rp.max_lag_seconds,
        )
        self._commit_signal: asyncio.Future[None] | None = None  # made by start()
        self.apply_lock = (
            threading.Lock()
        )  # held by the applier while it applies; a rebuild takes it
        # Loop-side callable: the delivery queue changed.
        self.on_queue_change: Callable[[], None] | None = None
        # Loop-side callable: these mailboxes changed (applied and committed).
        self.on_mailbox_change: Callable[[set[str]], None] | None = None
        # async (shard, end): the archive holds it too ([archive] remote_sync).
        self.remote_wait: Callable[[Shard, int], Awaitable[None]] | None = None
        self.confirmed_lsn = (
            0  # a spare: its journal below this is a prefix of the current primary's
        )
        # Cluster mode: the agent's ZooKeeper lease (F5).
        self.lease: Callable[[], bool] | None = None

    # -- start-up (blocking; run before serving) --------------------------------------
    def open(self) -> int:
        """Recover the journal and replay it into the store; returns records replayed."""
        makedirs_synced(self.directory)
        sweep_tmp(self.directory)  # role.json, untaken.json: a write a crash cut short
        why = self.state.incomplete()
        if why is not None:
            self._discard_incomplete_store(why)
        rec = self.journal.open()
        self.state.load()
        if self.state.legacy():
            self._migrate_legacy_store()
        if self.state.applied_lsn > rec.end_lsn:
            raise RuntimeError(
                f"shard {self.id}: store checkpoint at lsn {self.state.applied_lsn} is past the "
                f"journal's end {rec.end_lsn}; the journal was truncated behind the store's back"
            )
        replayed = self._replay(self.state.applied_lsn)
        self.state.checkpoint()
        self.applied_lsn = self.state.committed_lsn
        self._load_role()
        self._load_untaken()
        log.info(
            "shard %d: journal end lsn %d, epoch %d, %d segments; replayed %d records",
            self.id,
            rec.end_lsn,
            rec.epoch,
            rec.segments,
            replayed,
        )
        return replayed

    def _replay(self, start: int) -> int:
        """Apply the journal from ``start`` (blocking; start-up or a rebuild), committing
        every REPLAY_BATCH records so a long replay keeps the index's WAL small."""
        replayed = 0
        for fr in iter_frames(self.journal.directory, start):
            self.state.apply(fr.record, fr.lsn + fr.size, replay=True)
            replayed += 1
            if replayed % REPLAY_BATCH == 0:
                # Bounded as it goes: a million replayed queue ids pruned at once later
                # would stall the applier for most of a second.
                self.state.recent_ids.prune()
                self.state.commit()
        self.state.recent_ids.prune()
        self.state.commit()
        return replayed

    def _migrate_legacy_store(self) -> None:
        """A shard from before the index (state.json). With the whole journal here, the
        index is rebuilt from it (the same UIDs on every node); else state.json and the
        Maildirs are moved in as they are."""
        if self.journal.first_lsn == 0:
            log.warning(
                "shard %d: building the index from the whole journal (was state.json)", self.id
            )
            self.state.begin_replace("index built from the journal in place of state.json")
            self.state.discard()
            self.state.end_replace()
        else:
            self.state.migrate_legacy()

    def _discard_incomplete_store(self, why: str) -> None:
        """A crash while the store was being replaced: neither old nor new can be trusted.
        A journal that starts at 0 rebuilds it by replay; one that starts after a snapshot
        cannot, so it is emptied too and the spare bootstraps again from its primary."""
        start, _ = read_epochs(self.journal.directory)
        segments = list_segments(self.journal.directory)
        if (segments and segments[0][0] == 0) or (not segments and start == 0):
            log.warning(
                "shard %d: the store was left half replaced (%s); rebuilding it from the journal",
                self.id,
                why,
            )
        else:
            log.warning(
                "shard %d: the store was left half replaced (%s) and the journal starts at lsn %d; "
                "emptying both: this spare bootstraps again from its primary",
                self.id,
                why,
                segments[0][0] if segments else start,
            )
            for _, path in segments:
                os.unlink(path)
            write_epochs(self.journal.directory, 0, [])
        self.state.discard()
        self.state.end_replace()

    def _load_untaken(self) -> None:
        try:
            with open(self.untaken_path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return
        for text in doc:
            rec = JournalRecord()
            rec.ParseFromString(base64.b64decode(text))
            self.untaken.append(rec)
        if self.untaken:
            log.info(
                "shard %d: %d take-backs still to hand to the primary", self.id, len(self.untaken)
            )

    async def _save_untaken(self) -> None:
        async with self._untaken_lock:
            doc = [base64.b64encode(r.SerializeToString()).decode() for r in self.untaken]
            await asyncio.to_thread(write_atomic, self.untaken_path, json.dumps(doc).encode())

    async def untake(self, record: JournalRecord, reason: str) -> None:
        """Remember, durably, to take back a message whose commit failed on demotion."""
        if record.WhichOneof("body") == "message_accepted":
            self.untaken.append(self._aborted_for(record, reason))
            await self._save_untaken()

    async def handed_over(self, records: list[JournalRecord]) -> None:
        """The new primary has these take-backs (it took them or refused them)."""
        self.untaken = [r for r in self.untaken if r not in records]
        await self._save_untaken()

    def _load_role(self) -> None:
        try:
            with open(self.role_path) as f:
                doc = json.load(f)
        except FileNotFoundError:  # a new shard: a spare of [replication] follow, else primary
            doc = (
                {"role": "spare", "primary": self.initial_primary}
                if self.initial_primary or self.idle_when_new
                else {}
            )
        role = doc.get("role", "primary")
        self.primary_address = doc.get("primary", "")
        self.epoch = max(int(doc.get("epoch", 0)), self.journal.epoch)
        if not os.path.exists(self.role_path):
            self.role = role
            self.save_role()
        if role == "primary" and self.idle_when_new:
            # Cluster mode (F2): role.json is only what this node last knew. It serves as
            # primary again only once ZooKeeper confirms the assignment at its epoch (the
            # agent then promotes it, giving back the same epoch), never from the file.
            self.become_spare("", self.epoch)
            log.info(
                "shard %d: was primary at epoch %d; waiting for ZooKeeper to confirm",
                self.id,
                self.epoch,
            )
        elif role == "primary":
            self.become_primary(self.epoch)
        else:
            self.become_spare(self.primary_address, self.epoch)

    # -- the role: one holder, changed only here --------------------------------------
    def become_primary(self, epoch: int) -> None:
        """The only writer of the shard at ``epoch`` (the journal takes append() again)."""
        self.role, self.primary_address, self.draining = "primary", "", False
        self.epoch = epoch
        self.journal.allow_writes(epoch)

    def become_spare(self, primary: str, epoch: int) -> None:
        """A hot spare of ``primary`` ("" = idle). The journal is fenced before anything
        else, so nothing this node still had in flight as primary can append (F3)."""
        self.journal.fence()
        self.role, self.primary_address, self.draining = "spare", primary, False
        self.epoch = max(self.epoch, epoch)

    def adopt_epoch(self, epoch: int) -> bool:
        """A spare follows its primary's newer epoch; True when it changed (then persist)."""
        if epoch <= self.epoch:
            return False
        self.epoch = epoch
        return True

    def set_draining(self, draining: bool) -> None:
        """A primary being drained for a switchover takes no new commits (``accepting``)."""
        self.draining = draining

    def save_role(self) -> None:
        """Persist the role (blocking): a restarted node comes back in the role it had."""
        doc = {"role": self.role, "primary": self.primary_address, "epoch": self.epoch}
        write_atomic(self.role_path, json.dumps(doc).encode())

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._commit_signal = loop.create_future()
        self.journal.add_listener(self._queue.put)
        self.journal.add_listener(self._signal_commit)
        self.journal.start(loop)
        self._thread = threading.Thread(
            target=self._applier, name=f"applier:{self.id}", daemon=True
        )
        self._thread.start()
        # Whether what this journal already holds reached a spare is not known here: a spare
        # joins the in-sync set only once it holds all of it.
        self.replication.answered_end = self.journal.committed_lsn
        if self.journal.end_lsn == 0 and self.role == "primary":
            self.start_epoch(1)
        self.update_gauges()

    def start_epoch(self, epoch: int) -> asyncio.Future[int]:
        """Begin ``epoch`` as primary: its first record is an EpochStarted."""
        self.become_primary(epoch)
        r = JournalRecord(epoch=epoch)
        r.epoch_started.shard = self.id
        r.epoch_started.node = self.node_name
        return self.journal.append(r)

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, f"shard {self.id} is not started"
        return self._loop

    def _signal_commit(self, batch) -> None:
        self.replication.committed(batch[-1].end)
        fut, self._commit_signal = self._commit_signal, self._started_loop().create_future()
        assert fut is not None  # start() made the first
        fut.set_result(None)

    async def next_commit(self, timeout: float) -> None:
        """Wait until the next commit (or the timeout): how a sender to spares sleeps."""
        signal = self._commit_signal
        assert signal is not None, f"shard {self.id} is not started"
        try:
            await asyncio.wait_for(asyncio.shield(signal), timeout)
        except TimeoutError:
            pass

    def stop(self) -> None:
        """Flush the journal and the applier, write a checkpoint (blocking)."""
        self.journal.close()
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self.state.checkpoint()
        self.state.index.close()

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
            stop = False
            while batch and len(batch) < APPLY_BATCH:  # what else committed meanwhile: one commit
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch = batch + more
            with self.apply_lock:
                delivered = self._apply_until_done(batch) if batch else 0
            queue_changed = any(_touches_queue(c.record) for c in batch)
            touched = {a for c in batch for a in _mailboxes_touched(c.record)}
            if delivered:
                self._m_deliveries.inc(delivered)
            if batch:
                self._started_loop().call_soon_threadsafe(
                    self._applied, self.state.committed_lsn, queue_changed, touched
                )
            if stop:
                return
            now = time.monotonic()
            if now - last_checkpoint >= self.checkpoint_interval:
                try:
                    with (
                        self.apply_lock
                    ):  # not while a snapshot is installed or the spool is written
                        self.state.checkpoint()
                except OSError:
                    log.exception("shard %d: checkpoint failed", self.id)
                last_checkpoint = now

    def _apply_until_done(self, batch: list[Committed]) -> int:
        """Apply and commit a batch, retrying on disk errors: the store must not skip a
        record, and what readers are told is applied must be committed. After a failure
        the whole batch is rolled back and applied again as a replay (its files may be
        written already). Records a rebuild already applied are passed over."""
        failures = 0
        while True:
            try:
                delivered = 0
                for c in batch:
                    if c.end > self.state.applied_lsn:
                        delivered += self.state.apply(c.record, c.end, replay=failures > 0)
                self.state.commit()
                return delivered
            except (OSError, sqlite3.OperationalError) as e:
                self.state.abandon()
                if failures == 0:
                    log.error(
                        "shard %d: applying lsn %d..%d failed, retrying every second: %s",
                        self.id,
                        batch[0].lsn,
                        batch[-1].end,
                        e,
                    )
                failures += 1
                if self._stopping.wait(1.0):
                    raise SystemExit from e  # stop: the next start replays the batch

    def _observe_batch(self, records: int, nbytes: int, seconds: float) -> None:
        self._m_batch.observe(records)
        self._m_fsync.observe(seconds)

    # -- on the loop ------------------------------------------------------------------
    def _applied(
        self, lsn: int, queue_changed: bool = False, touched: set[str] | None = None
    ) -> None:
        self.applied_lsn = lsn
        if queue_changed and self.on_queue_change is not None:
            self.on_queue_change()
        if touched and self.on_mailbox_change is not None:
            self.on_mailbox_change(touched)
        self._m_applied.set(lsn)
        self._waiters.reached(lsn)

    async def wait_applied(self, lsn: int) -> None:
        """Wait until the record at ``lsn`` is applied to the store."""
        if lsn < self.applied_lsn:
            return
        await self._waiters.wait_for(lsn + 1)  # the record at lsn ends at lsn + 1

    async def caught_up(self, timeout: float = CATCH_UP) -> None:
        """Wait (bounded) until everything committed so far is applied: a mailbox opened
        now lists every message answered 250 before it (the index commits after the
        Maildir sync, a little after the journal)."""
        end = self.journal.committed_lsn
        if end and self.applied_lsn < end:
            try:
                await asyncio.wait_for(self.wait_applied(end - 1), timeout)
            except TimeoutError:
                log.warning(
                    "shard %d: serving a mailbox %.0f s behind the journal", self.id, timeout
                )

    async def commit(self, record: JournalRecord, *, applied: bool = False) -> int:
        """Append as primary and wait until durable under the replication policy (and
        applied, if asked). Returns the lsn. Raises NotPrimary on a spare."""
        if not self.accepting:
            why = (
                " (draining for a switchover)"
                if self.draining
                else " (its ZooKeeper lease lapsed)"
                if self.role == "primary"
                else ""
            )
            raise NotPrimary(f"shard {self.id} is not primary on {self.node_name}{why}")
        fut = self.journal.append(record)
        end = self.journal.end_lsn
        lsn = await fut
        try:
            alone = await self.replication.wait(end)
            if self.remote_wait is not None:
                await self.remote_wait(self, end)
            if alone and self.replication.clustered:
                await self._answered_alone(lsn)  # from here salvage keeps it: answer 250
        except NotReplicated as e:
            await self._abort(record, str(e))
            raise
        except NotPrimary as e:
            # Demoted while waiting: a spare may hold the message and be promoted with it,
            # while our sender sees 451 and retries; the new primary takes it back unless
            # it answered 250 for this queue id itself (a front end's retry).
            await self.untake(record, str(e))
            raise
        if self.role != "primary" and not alone:
            await self.untake(record, "demoted during the commit")
            raise NotPrimary(f"shard {self.id} was demoted on {self.node_name} during the commit")
        if applied:
            await self.wait_applied(lsn)
        return lsn

    async def commit_message(
        self, record: JournalRecord, *, retry: bool = False
    ) -> tuple[int, bool]:
        """Commit a message once per queue id: (lsn, was it a duplicate).

        A retry (after a lost reply or a failover) or a salvaged copy may arrive while the
        first commit of the same queue id is still waiting for its spare: that one decides."""
        qid = record.message_accepted.queue_id
        if not qid:
            return await self.commit(record), False
        pending = self._inflight.get(qid)
        if pending is not None:
            try:
                return await asyncio.shield(pending), True
            except Exception:
                pass  # the first attempt failed: this one commits
        if retry and self.journal.committed_lsn:
            await self.wait_applied(
                self.journal.committed_lsn - 1
            )  # see what the old primary sent us
        lsn = await self._answer_duplicate(qid)
        if lsn is not None:
            return lsn, True
        await self._check_quota(record.message_accepted)
        fut = self._inflight[qid] = self._started_loop().create_future()
        try:
            lsn = await self.commit(record)
            fut.set_result(lsn)
            return lsn, False
        except BaseException as e:
            fut.set_exception(e if isinstance(e, Exception) else NotPrimary("commit cancelled"))
            fut.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            self._inflight.pop(qid, None)

    async def _check_quota(self, m) -> None:
        """Refuse a message only when it fits no recipient: every one of this shard's
        mailboxes in it is over quota and it has no one else to go to. One recipient
        over quota among others does not refuse the others' copy (RCPT refused the full
        mailboxes already; one that filled up since gets it: a message of overshoot)."""
        if not m.whole_transaction or not m.recipients or m.relay_recipients:
            return
        size = len(m.data)
        reasons = [self.state.over_quota(rcpt, size) for rcpt in m.recipients]
        if all(reasons):
            metrics.QUOTA_REFUSALS.labels(str(self.id)).inc(len(reasons))
            raise OverQuota(
                f"shard {self.id}: over quota: "
                + "; ".join(f"{r}: {why}" for r, why in zip(m.recipients, reasons, strict=True))
            )

    @property
    def accepting(self) -> bool:
        """May act as primary now: commit, deliver, ship, serve. In a cluster also only
        while the ZooKeeper lease holds, so never after a replacement could act."""
        return (
            self.role == "primary"
            and not self.draining
            and not self.state.replacing
            and (self.lease is None or self.lease())
        )

    async def _abort(self, record: JournalRecord, reason: str) -> None:
        """Take back a durable but unacknowledged message: the client gets 451 and retries."""
        if record.WhichOneof("body") != "message_accepted":
            return
        abort = self._aborted_for(record, reason)
        try:
            fut = self.journal.append(abort)
        except JournalFenced:
            # Demoted meanwhile: salvage skips the message (no AnsweredAlone names it), but
            # a spare may hold it: taken back at the new primary once we follow it.
            await self.untake(record, reason)
            return
        await fut
        if self.replication.strict:
            # Best effort, bounded: a spare promoted with the message but not its abort
            # would keep it, and the sender's retry would store it twice (F13).
            try:
                await asyncio.wait_for(
                    self.replication.wait(self.journal.committed_lsn), self.replication.sync_timeout
                )
            except (TimeoutError, NotReplicated, NotPrimary):
                pass
        await self.wait_applied(abort.lsn)  # a retry must not find the queue id as committed

    def _aborted_for(self, record: JournalRecord, reason: str) -> JournalRecord:
        m = record.message_accepted
        abort = JournalRecord()
        a = abort.aborted
        a.lsn, a.queue_id, a.reason = record.lsn, m.queue_id, reason[:500]
        a.uid = message_name(self.id, record.lsn, record.timestamp_ns, len(m.data))
        a.recipients.extend(m.recipients)
        a.folder = m.folder
        return abort

    def _inherited(self, lsn: int) -> bool:
        """Was the record at ``lsn`` written by an earlier primary (before our epoch)?"""
        mine = next((first for epoch, first in self.journal.epochs if epoch >= self.epoch), None)
        return mine is not None and lsn < mine

    async def _answer_duplicate(self, qid: str) -> int | None:
        """The lsn of an earlier commit of ``qid`` this retry may be answered 250 for, or None.

        An inherited message may still be taken back by the primary that wrote it (it
        answered 451); answering 250 here first makes a RetryAnswered durable, and the
        two exclude each other."""
        lsn = self.state.recent_ids.get(qid)
        if lsn is None or lsn in self._retry_answered or not self._inherited(lsn):
            return lsn
        async with self._takeback_lock:
            lsn = self.state.recent_ids.get(qid)  # taken back while we waited?
            if lsn is not None and lsn not in self._retry_answered:
                marker = JournalRecord()
                marker.retry_answered.lsns.append(lsn)
                await self.commit(marker)
                self._retry_answered.add(lsn)
            return lsn

    async def take_back(self, aborted, origin: str) -> int:
        """Take back an inherited message its writer answered 451 for (``aborted`` is
        that node's Aborted record): 0 when refused (not ours to undo, not the same
        message, already answered 250 here or already taken back), else our Aborted's lsn."""
        async with self._takeback_lock:
            if not self.accepting:
                raise NotPrimary(f"shard {self.id} is not primary on {self.node_name}")
            lsn, m = aborted.lsn, None
            why = (
                "written in our own epoch"
                if not self._inherited(lsn)
                else "already answered 250 here"
                if lsn in self._retry_answered
                else ""
            )
            if not why:
                why, m = await asyncio.to_thread(self._takeback_check, lsn, aborted.queue_id)
            if why:
                log.info("shard %d: not taking back lsn %d for %s: %s", self.id, lsn, origin, why)
                return 0
            assert m is not None  # _takeback_check returns the record when it finds no reason
            rec = self._aborted_for(m, f"{origin} answered 451 for it: {aborted.reason}")
            out = await self.commit(rec)
            await self.wait_applied(out)  # the queue id is free for the sender's retry
            log.warning(
                "shard %d: took back inherited message %s (lsn %d): %s answered 451 for it",
                self.id,
                aborted.queue_id,
                lsn,
                origin,
            )
            return out

    def _takeback_check(self, lsn: int, qid: str) -> tuple[str, JournalRecord | None]:
        """(why the inherited record at ``lsn`` may not be taken back or "", that record):
        read from the journal, so it holds across restarts (blocking)."""
        try:
            rec = read_record(self.journal.directory, lsn)
        except Exception as e:
            return f"no record at that lsn ({e})", None
        if rec.WhichOneof("body") != "message_accepted" or rec.message_accepted.queue_id != qid:
            return "a different record at that lsn", rec
        for fr in iter_frames(self.journal.directory, lsn):
            kind = fr.record.WhichOneof("body")
            if kind == "retry_answered" and lsn in fr.record.retry_answered.lsns:
                return "already answered 250 here", rec
            if kind == "aborted" and fr.record.aborted.lsn == lsn:
                return "already taken back", rec
        return "", rec

    async def _answered_alone(self, lsn: int) -> None:
        """Make durable, before the answer, that the record at ``lsn`` is answered with no
        spare holding it: salvage re-submits exactly such records after a failover."""
        marker = JournalRecord()
        marker.answered_alone.lsns.append(lsn)
        try:
            await self.journal.append(marker)
        except JournalFenced:
            raise NotPrimary(
                f"shard {self.id} was demoted on {self.node_name} during the commit"
            ) from None

    def rebuild_store(self) -> int:
        """Throw the derived store away and replay the whole local journal (blocking).

        Used after a divergence was cut off the journal: the store may hold
        effects of the removed records."""
        with self.apply_lock:
            self.state.begin_replace("rebuild from the journal after a divergence")
            self.state.wipe(self.journal.first_lsn)
            replayed = self._replay(self.journal.first_lsn)
            # applied_lsn stays where the replay ended. Frames appended while it ran are
            # the applier's (their batches wait for this lock); bumping it to the
            # journal's end made the applier pass them over as "applied by the rebuild"
            # (seen in a chaos run: 493 acknowledged messages missing from a store).
            self.state.checkpoint(force=True)  # syncs the filesystem first
            self.state.end_replace()
        # Every mailbox may have changed: IMAP sessions of all of them look again.
        self._started_loop().call_soon_threadsafe(
            self._applied, self.state.committed_lsn, False, set(self.state.users)
        )
        return replayed

    def read_queued(self, lsn: int) -> JournalRecord:
        """The record of a queued message: from the journal, or from the spool when its
        segment is gone (blocking)."""
        try:
            return read_record(self.journal.directory, lsn)
        except FileNotFoundError:
            with open(os.path.join(self.state.spool, str(lsn)), "rb") as f:
                rec = JournalRecord()
                rec.ParseFromString(f.read())
                return rec

    def spool_queued(self, below: int, target: str | None = None) -> int:
        """Copy the records of queued messages below lsn ``below`` into the spool (or
        ``target``'s spool), so that they outlive their journal segment (blocking; caller
        holds apply_lock)."""
        spool = os.path.join(target, "spool") if target else self.state.spool
        written = 0
        for lsn in self.state.queue_table.lsns_below(below):
            path = os.path.join(spool, str(lsn))
            if not os.path.exists(path):
                makedirs_synced(spool)
                write_atomic(path, self.read_queued(lsn).SerializeToString())
                written += 1
        return written

    def update_gauges(self) -> None:
        label = str(self.id)
        metrics.SHARD_ROLE.labels(label).set(1 if self.role == "primary" else 0)
        metrics.SHARD_EPOCH.labels(label).set(self.epoch)
        for spare in self.replication.spares.values():
            nbytes, seconds = self.replication.lag(spare)
            metrics.SPARE_LAG_BYTES.labels(label, spare.name).set(nbytes)
            metrics.SPARE_LAG_SECONDS.labels(label, spare.name).set(seconds)
        metrics.JOURNAL_BYTES.labels(label).set(self.journal.size)
        metrics.JOURNAL_SEGMENTS.labels(label).set(self.journal.segments)
        metrics.JOURNAL_COMMITTED_LSN.labels(label).set(self.journal.committed_lsn)

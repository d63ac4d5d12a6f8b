"""A shard's derived state: its users and Maildirs, rebuilt from the journal.

``apply()`` is the one place a record changes derived state. It runs in the
shard's applier thread (and at start-up, for the replay), in lsn order. The
checkpoint (``state.json``) records how far the store is durable, with the
user table, so a restart replays only what came after it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from mailnode.delivery.queue import Queue
from mailnode.durable import syncfs, write_atomic
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.store.maildir import MaildirStore, message_name
from mailnode.store.recent import RecentIds

log = logging.getLogger(__name__)


class ShardState:
    def __init__(self, shard: int, directory: str):
        self.shard = shard
        self.directory = directory
        self.store = MaildirStore(os.path.join(directory, "maildir"))
        self.checkpoint_path = os.path.join(directory, "state.json")
        # Present while the store is being replaced (a rebuild, a snapshot install): a
        # crash then leaves a store that is neither the old one nor the new one.
        self.incomplete_path = os.path.join(directory, "store.incomplete")
        # Queued messages whose journal segment is gone (a spare started from a snapshot,
        # or segments removed once archived): their records, one file per lsn.
        self.spool = os.path.join(directory, "spool")
        self.users: dict[str, str] = {}  # address -> password hash
        self.salvaged: set[str] = set()  # salvaged_from ids of re-submitted messages
        # Queue ids of recent messages -> lsn: a front end retrying a commit after a lost
        # reply or a failover must not store the message twice. Bounded; kept on disk.
        self.recent_ids = RecentIds(os.path.join(directory, "recent_ids.log"))
        self.queue = Queue()  # messages with recipients still to deliver
        self.replacing = False  # between begin_replace and end_replace
        self.applied_lsn = 0  # every record below this is applied
        self.checkpoint_lsn = 0
        self.epoch = 0

    def load(self) -> None:
        try:
            with open(self.checkpoint_path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return
        self.users = dict(data["users"])
        self.salvaged = set(data.get("salvaged", []))
        self.applied_lsn = self.checkpoint_lsn = int(data["applied_lsn"])
        self.epoch = int(data.get("epoch", 0))
        self.queue.load(data.get("queue", []))
        self.recent_ids.load(self.applied_lsn)  # the replay from here adds the rest

    def begin_replace(self, why: str) -> None:
        """Mark the store as being replaced, durably, before anything of it is removed."""
        self.replacing = True  # Shard.accepting: nothing is served from a half-built store
        write_atomic(self.incomplete_path, why.encode())

    def end_replace(self) -> None:
        """The new store is durable (the caller synced it): unmark it."""
        self.replacing = False
        os.unlink(self.incomplete_path)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def incomplete(self) -> str | None:
        """Why the store was being replaced when this node stopped, or None."""
        try:
            with open(self.incomplete_path, errors="replace") as f:
                return f.read() or "unknown"
        except FileNotFoundError:
            return None

    def discard(self) -> None:
        """Remove the store and its checkpoint from disk (blocking); replay rebuilds them."""
        shutil.rmtree(self.store.root, ignore_errors=True)
        try:
            os.unlink(self.checkpoint_path)
        except FileNotFoundError:
            pass
        self.wipe_memory()

    def wipe(self, start_lsn: int = 0) -> None:
        """Forget all derived state (blocking); a replay from ``start_lsn`` rebuilds it."""
        shutil.rmtree(self.store.root, ignore_errors=True)
        self.wipe_memory(start_lsn)

    def wipe_memory(self, start_lsn: int = 0) -> None:
        """Forget the in-memory state and re-open the store directory as it is on disk."""
        self.store = MaildirStore(self.store.root)
        self.users = {}
        self.salvaged = set()
        self.recent_ids.wipe()
        self.queue = Queue()
        self.applied_lsn = self.checkpoint_lsn = start_lsn
        self.epoch = 0

    def checkpoint(self, force: bool = False) -> None:
        if self.applied_lsn == self.checkpoint_lsn and not force:
            return
        lsn = self.applied_lsn
        self.recent_ids.flush()
        syncfs(self.directory)
        write_atomic(self.checkpoint_path, self.serialize())
        self.checkpoint_lsn = lsn
        self._prune_spool()

    def serialize(self) -> bytes:
        """The derived state besides the Maildirs, as state.json holds it (checkpoints and
        snapshots alike; ``load`` reads it back)."""
        doc = {
            "shard": self.shard,
            "applied_lsn": self.applied_lsn,
            "epoch": self.epoch,
            "users": self.users,
            "salvaged": sorted(self.salvaged),
            "queue": self.queue.to_json(),
        }
        return json.dumps(doc, sort_keys=True).encode()

    def _prune_spool(self) -> None:
        """Forget spooled records of messages that left the queue (after the checkpoint says so)."""
        try:
            names = os.listdir(self.spool)
        except FileNotFoundError:
            return
        for name in names:
            if name.isdigit() and int(name) not in self.queue.entries:  # never a file being written
                os.unlink(os.path.join(self.spool, name))

    def apply(self, record: JournalRecord, end: int, *, replay: bool = False) -> int:
        """Apply one committed record; returns mailbox copies delivered."""
        kind = record.WhichOneof("body")
        delivered = 0
        if kind == "message_accepted":
            delivered = self._accept(record, record.message_accepted, replay)
        elif kind == "delivery_result":
            self.queue.result(record.delivery_result)
            if record.delivery_result.HasField("dsn"):
                delivered = self._accept(record, record.delivery_result.dsn, replay)
        elif kind == "queue_control":
            self.queue.control(record.queue_control)
        elif kind == "aborted":
            self.recent_ids.remove(record.aborted.queue_id)
            self.queue.drop(record.aborted.lsn)
            for rcpt in record.aborted.recipients:
                self.store.remove(rcpt, [record.aborted.uid])
        elif kind == "expunged":
            self.store.remove(record.expunged.mailbox, list(record.expunged.uids))
        elif kind in ("user_added", "password_changed"):
            body = getattr(record, kind)
            self.users[body.address] = body.password_hash
            self.store.ensure(body.address)
        elif kind == "user_deleted":
            # The Maildir stays on disk for the operator; the address stops receiving.
            self.users.pop(record.user_deleted.address, None)
        elif kind == "epoch_started":
            self.epoch = max(self.epoch, record.epoch)
        self.applied_lsn = end
        return delivered

    def _accept(self, record: JournalRecord, m, replay: bool) -> int:
        """A message: this shard's recipients stored, the others queued."""
        name = message_name(self.shard, record.lsn, record.timestamp_ns, len(m.data))
        delivered = (
            self.store.deliver(name, m.data, list(m.recipients), replay=replay)
            if m.recipients
            else 0
        )
        self.queue.add(record.lsn, m, record.timestamp_ns)
        if m.salvaged_from:
            self.salvaged.add(m.salvaged_from)
        if m.queue_id:
            self.recent_ids.add(m.queue_id, record.lsn)
        return delivered

"""The delivery queue of a shard: derived state, like the Maildirs.

A queue entry is a message record with recipients still to deliver. It exists
only because of journal records (MessageAccepted with relay recipients, a
DeliveryResult carrying a DSN) and changes only by journal records
(DeliveryResult, QueueControl, Aborted), so a restart, or a promoted spare,
finds exactly the queue the old primary had. The message bytes stay in the
journal; an entry holds the lsn to read them from.

``Queue`` is the logic; where entries live is its mapping: a dict in tests, the
shard index's ``queue`` table (``mailnode.store.queue_table``) in a node.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field

from mailnode.proto.journal_pb2 import DeliveryResult, MessageAccepted, QueueControl

FINAL = (DeliveryResult.DELIVERED, DeliveryResult.BOUNCED, DeliveryResult.EXPIRED)


@dataclass
class QueueEntry:
    lsn: int  # the record holding the message
    queue_id: str
    sender: str  # "" for the null sender (a DSN)
    arrival_ns: int
    size: int
    pending: list[str]  # recipients not yet delivered or bounced
    next_attempt_ns: int = 0  # 0: due now
    attempts: int = 0  # deferred attempts so far
    held: bool = False
    warned: bool = False  # a delay warning was sent
    last_reply: dict[str, str] = field(default_factory=dict)  # recipient -> last reply

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> QueueEntry:
        return cls(**doc)


class Queue:
    """lsn -> QueueEntry. Mutated only by the applier (under the shard's apply lock); an
    entry changed in place is stored back, so the mapping may be a table."""

    def __init__(self, entries: MutableMapping[int, QueueEntry] | None = None):
        self.entries: MutableMapping[int, QueueEntry] = {} if entries is None else entries

    def add(self, lsn: int, m: MessageAccepted, timestamp_ns: int) -> None:
        if not m.relay_recipients:
            return
        self.entries[lsn] = QueueEntry(
            lsn=lsn,
            queue_id=m.queue_id,
            sender=m.mail_from,
            arrival_ns=timestamp_ns,
            size=len(m.data),
            pending=list(dict.fromkeys(m.relay_recipients)),
        )

    def result(self, r: DeliveryResult) -> None:
        entry = self.entries.get(r.message_lsn)
        if entry is None:  # deleted by an operator while the attempt ran
            return
        deferred = False
        for rcpt in r.recipients:
            if rcpt.outcome in FINAL:
                if rcpt.address in entry.pending:
                    entry.pending.remove(rcpt.address)
                entry.last_reply.pop(rcpt.address, None)
            else:
                deferred = True
                entry.last_reply[rcpt.address] = rcpt.reply
        if deferred:
            entry.attempts += 1
            entry.next_attempt_ns = r.next_attempt_ns
        if r.delay_warned:
            entry.warned = True
        if not entry.pending:
            del self.entries[r.message_lsn]
        else:
            self.entries[r.message_lsn] = entry

    def control(self, c: QueueControl) -> None:
        for lsn in c.message_lsns:
            entry = self.entries.get(lsn)
            if entry is None:
                continue
            if c.action == QueueControl.DELETE:
                del self.entries[lsn]
                continue
            if c.action == QueueControl.HOLD:
                entry.held = True
            elif c.action == QueueControl.RELEASE:
                entry.held = False
            elif c.action == QueueControl.FLUSH:
                entry.next_attempt_ns = 0
            elif c.action == QueueControl.REQUEUE:
                entry.next_attempt_ns = 0
                entry.held = False
                entry.warned = False
            self.entries[lsn] = entry

    def drop(self, lsn: int) -> None:
        self.entries.pop(lsn, None)

    def to_json(self) -> list[dict]:
        return [e.to_json() for e in self.entries.values()]

"""Queue operations on a shard's primary: what ``mailctl queue`` does, as journal records.

list and show read the derived queue; hold, release, delete, flush and requeue
commit one QueueControl record, so spares and a restarted node agree.
"""

from __future__ import annotations

import asyncio

from mailnode.delivery.dsn import headers_of
from mailnode.errors import Refused
from mailnode.proto import queue_pb2
from mailnode.proto.journal_pb2 import JournalRecord, QueueControl

ACTIONS = {
    "hold": QueueControl.HOLD,
    "release": QueueControl.RELEASE,
    "delete": QueueControl.DELETE,
    "flush": QueueControl.FLUSH,
    "requeue": QueueControl.REQUEUE,
}


class QueueOpError(Refused):
    """A queue operation that names nothing, or something it cannot apply to."""


def entry_pb(shard_id: int, e) -> queue_pb2.QueueEntry:
    return queue_pb2.QueueEntry(
        shard=shard_id,
        queue_id=e.queue_id,
        lsn=e.lsn,
        sender=e.sender,
        arrival_ns=e.arrival_ns,
        size=e.size,
        recipients=e.pending,
        next_attempt_ns=e.next_attempt_ns,
        attempts=e.attempts,
        held=e.held,
        last_reply=e.last_reply,
    )


async def queue_op(node, shard, request: queue_pb2.QueueRequest) -> queue_pb2.QueueReply:
    ids = set(request.ids)

    def select() -> list[queue_pb2.QueueEntry]:
        table = shard.state.queue_table  # the committed queue, from the index
        found = (
            table.all() if request.all or request.action == "list" else table.select(shard.id, ids)
        )
        return [entry_pb(shard.id, e) for e in found]

    entries = await asyncio.to_thread(select)
    if request.action == "list":
        return queue_pb2.QueueReply(entries=entries)
    if request.action == "show":
        reply = queue_pb2.QueueReply(entries=entries[:1])
        if entries:
            rec = await asyncio.to_thread(shard.read_queued, entries[0].lsn)
            m = (
                rec.message_accepted
                if rec.WhichOneof("body") == "message_accepted"
                else rec.delivery_result.dsn
            )
            reply.headers = headers_of(m.data)
        return reply
    action = ACTIONS.get(request.action)
    if action is None:
        raise QueueOpError(
            f"unknown queue action {request.action!r} (known: list, show, {', '.join(ACTIONS)})"
        )
    if not entries:
        return queue_pb2.QueueReply()
    rec = JournalRecord()
    rec.queue_control.action = action
    rec.queue_control.message_lsns.extend(e.lsn for e in entries)
    rec.queue_control.reason = "mailctl queue " + request.action
    await shard.commit(rec, applied=True)
    node.delivery.wake()
    return queue_pb2.QueueReply(entries=entries)

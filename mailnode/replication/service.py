"""The primary's side of replication, as a gRPC service (grpc.aio).

Follow: a spare sends where its journal ends and the epoch of its last record;
the primary answers with where that epoch ended in its own log when the spare
holds more (Truncate: the spare diverged), with NeedSnapshot when the spare is
older than the oldest segment, else with the frames from there on, as they
commit. Every reply carries the primary's epoch; the spare refuses lower ones.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from mailnode.errors import grpc_errors
from mailnode.interfaces import Peer
from mailnode.proto import replication_pb2 as pb
from mailnode.proto import replication_pb2_grpc
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.replication import salvage
from mailnode.replication.peers import authorize, message_record
from mailnode.replication.snapshot import serve_snapshot
from mailnode.wire import ServicerContext

log = logging.getLogger(__name__)

BATCH_BYTES = 1 << 20
# A spare with an empty journal copies the store instead of replaying a journal larger than this.
SNAPSHOT_ABOVE = 1 << 20
HEARTBEAT_SECONDS = 1.0


def end_of_epoch(epochs: list[tuple[int, int]], epoch: int, end_lsn: int) -> int:
    """Where ``epoch`` (or the newest epoch not above it) ends in a log with this history."""
    for e, start in epochs:
        if e > epoch:
            return start
    return end_lsn


class ReplicationService(replication_pb2_grpc.ReplicationServicer):
    def __init__(self, node: Peer):
        self.node = node

    async def _shard(self, number: int, context):
        await authorize(self.node, context)
        shard = self.node.shards.get(number)
        if shard is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no shard {number} on {self.node.name}")
        return shard

    async def _primary(self, number: int, context):
        shard = await self._shard(number, context)
        if shard.role != "primary":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{self.node.name} is not primary of shard {number} (epoch {shard.epoch})",
            )
        return shard

    async def Follow(self, request_iterator, context: ServicerContext):
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("kind") != "start":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a FollowStart"
            )
        start = first.start
        shard = await self._primary(start.shard, context)
        journal = shard.journal
        epoch = shard.epoch
        diverged = end_of_epoch(journal.epochs, start.last_epoch, journal.committed_lsn)
        if start.from_lsn > diverged:
            log.info(
                "shard %d: spare %s has %d bytes past where its epoch %d ended (lsn %d): truncate",
                shard.id,
                start.follower,
                start.from_lsn - diverged,
                start.last_epoch,
                diverged,
            )
            yield pb.FollowReply(epoch=epoch, truncate=pb.Truncate(lsn=diverged))
            return
        if start.from_lsn < journal.first_lsn or (
            start.from_lsn == 0 and journal.committed_lsn > SNAPSHOT_ABOVE
        ):
            yield pb.FollowReply(
                epoch=epoch, need_snapshot=pb.NeedSnapshot(first_lsn=journal.first_lsn)
            )
            return
        spare = shard.replication.connected(start.follower, start.from_lsn)
        log.info("shard %d: spare %s follows from lsn %d", shard.id, start.follower, start.from_lsn)
        acks = asyncio.create_task(self._read_acks(request_iterator, shard, spare))
        position = start.from_lsn
        try:
            while shard.role == "primary" and shard.epoch == epoch and not acks.done():
                if position < journal.committed_lsn:
                    data = await journal.read(position, BATCH_BYTES)
                    yield pb.FollowReply(epoch=epoch, frames=pb.Frames(lsn=position, data=data))
                    position += len(data)
                else:
                    yield pb.FollowReply(
                        epoch=epoch, heartbeat=pb.Heartbeat(committed_lsn=journal.committed_lsn)
                    )
                    await shard.next_commit(HEARTBEAT_SECONDS)
        finally:
            acks.cancel()
            shard.replication.disconnected(spare)
            log.info(
                "shard %d: spare %s stream ended at lsn %d", shard.id, start.follower, position
            )

    @staticmethod
    async def _read_acks(request_iterator, shard, spare) -> None:
        async for req in request_iterator:
            if req.WhichOneof("kind") == "ack":
                shard.replication.acknowledged(spare, req.ack.durable_lsn)

    @grpc_errors
    async def Submit(self, request, context):
        shard = await self._primary(request.shard, context)
        rec = await message_record(request.record, context, salvage.SUBMITTED)
        if rec.WhichOneof("body") == "aborted":
            return pb.SubmitReply(lsn=await shard.take_back(rec.aborted, request.origin))
        if rec.WhichOneof("body") != "message_accepted":
            return await self._submit_other(shard, rec, request.origin, context)
        m = rec.message_accepted
        if m.salvaged_from and m.salvaged_from in shard.state.salvaged:
            return pb.SubmitReply(lsn=0)  # a retried salvage: already taken
        fresh = JournalRecord()
        fresh.message_accepted.CopyFrom(m)
        # By queue id too: a front end may have retried the same transaction here already.
        lsn, dup = await shard.commit_message(fresh, retry=True)
        log.info(
            "shard %d: %s salvaged message %s from %s (lsn %d)",
            shard.id,
            "already had" if dup else "took",
            m.queue_id,
            request.origin,
            lsn,
        )
        return pb.SubmitReply(lsn=lsn)

    async def _submit_other(self, shard, rec, origin: str, context):
        """A salvaged expunge, delivery outcome or user change: all idempotent, so a
        retried salvage applying one twice does no harm."""
        fresh = JournalRecord()
        kind = rec.WhichOneof("body")
        getattr(fresh, kind).CopyFrom(getattr(rec, kind))
        lsn = await shard.commit(fresh)
        log.info("shard %d: took salvaged %s from %s (lsn %d)", shard.id, kind, origin, lsn)
        return pb.SubmitReply(lsn=lsn)

    async def Fence(self, request, context):
        shard = await self._shard(request.shard, context)
        if request.epoch <= shard.epoch and not (
            shard.role == "spare" and request.epoch == shard.epoch
        ):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"epoch {request.epoch} is not newer than {shard.epoch}",
            )
        await self.node.roles.demote(
            shard.id,
            request.primary,
            request.epoch,
            reason=f"fenced by {request.primary_node} (epoch {request.epoch})",
        )
        return pb.FenceReply(epoch=shard.epoch, end_lsn=shard.journal.committed_lsn)

    async def Snapshot(self, request, context):
        shard = await self._primary(request.shard, context)
        async for chunk in serve_snapshot(shard, request, context):
            yield chunk

"""The primary's side of the front ends: commits, lookups and mailboxes of its shards
for the SMTP and POP3 listeners of every other node (gRPC service ``Shard``)."""

from __future__ import annotations

import grpc

from mailnode.delivery.ops import queue_op
from mailnode.errors import NotPrimary, grpc_errors
from mailnode.interfaces import FrontEnd
from mailnode.proto import frontend_pb2 as pb
from mailnode.proto import frontend_pb2_grpc
from mailnode.replication.peers import authorize, message_record


class ShardService(frontend_pb2_grpc.ShardServicer):
    """Every method translates the error vocabulary once (errors.grpc_errors)."""

    def __init__(self, node: FrontEnd):
        self.node = node

    async def _primary(self, number: int, context):
        await authorize(self.node, context)
        shard = self.node.shards.get(number)
        if shard is None or not shard.accepting:
            raise NotPrimary(f"{self.node.name} is not serving shard {number} as primary")
        return shard

    @grpc_errors
    async def Commit(self, request, context):
        shard = await self._primary(request.shard, context)
        rec = await message_record(request.record, context)
        lsn, dup = await shard.commit_message(rec, retry=request.retry)
        return pb.CommitReply(lsn=lsn, duplicate=dup)

    @grpc_errors
    async def Lookup(self, request, context):
        shard = await self._primary(request.shard, context)
        exists, over = shard.state.lookup(request.address)
        return pb.LookupReply(exists=exists, over_quota=over)

    @grpc_errors
    async def Authenticate(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.authenticate(shard, request.user, request.password)

    @grpc_errors
    async def OpenMailbox(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.open(shard, request.mailbox, request.session)

    @grpc_errors
    async def ReadMessage(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.read(shard, request.mailbox, request.uid, request.session)

    @grpc_errors
    async def Expunge(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.expunge(
            shard, request.mailbox, list(request.uids), request.session
        )

    @grpc_errors
    async def Queue(self, request, context):
        shard = await self._primary(request.shard, context)
        return await queue_op(self.node, shard, request)

    async def Imap(self, request_iterator, context):
        """A logged-in IMAP session from another node's front end (frontend/imap.py)."""
        await authorize(self.node, context)
        try:
            async for frame in self.node.imap.serve_remote(request_iterator, context):
                yield frame
        except NotPrimary as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))

    @grpc_errors
    async def CloseMailbox(self, request, context):
        await self._primary(request.shard, context)
        return self.node.mailboxes.close(request.mailbox, request.session)

"""The primary's side of the front ends: commits, lookups and mailboxes of its shards
for the SMTP and POP3 listeners of every other node (gRPC service ``Shard``)."""

from __future__ import annotations

import grpc

from mailnode.delivery.ops import QueueOpError, queue_op
from mailnode.frontend.pop3 import NotOwner
from mailnode.journal import JournalError
from mailnode.proto import frontend_pb2 as pb
from mailnode.proto import frontend_pb2_grpc
from mailnode.replication.peers import authorize, message_record
from mailnode.replication.primary import NotPrimary, NotReplicated


class ShardService(frontend_pb2_grpc.ShardServicer):
    def __init__(self, node):
        self.node = node

    async def _primary(self, number: int, context):
        await authorize(self.node, context)
        shard = self.node.shards.get(number)
        if shard is None or not shard.accepting:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{self.node.name} is not serving shard {number} as primary",
            )
        return shard

    async def Commit(self, request, context):
        shard = await self._primary(request.shard, context)
        rec = await message_record(request.record, context)
        try:
            lsn, dup = await shard.commit_message(rec, retry=request.retry)
        except NotPrimary as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except (NotReplicated, JournalError) as e:
            await context.abort(grpc.StatusCode.ABORTED, str(e))
        return pb.CommitReply(lsn=lsn, duplicate=dup)

    async def Lookup(self, request, context):
        shard = await self._primary(request.shard, context)
        return pb.LookupReply(exists=request.address in shard.state.users)

    async def Authenticate(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.authenticate(shard, request.user, request.password)

    async def OpenMailbox(self, request, context):
        shard = await self._primary(request.shard, context)
        return await self.node.mailboxes.open(shard, request.mailbox, request.session)

    async def ReadMessage(self, request, context):
        shard = await self._primary(request.shard, context)
        try:
            return await self.node.mailboxes.read(
                shard, request.mailbox, request.uid, request.session
            )
        except NotOwner as e:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))

    async def Expunge(self, request, context):
        shard = await self._primary(request.shard, context)
        try:
            return await self.node.mailboxes.expunge(
                shard, request.mailbox, list(request.uids), request.session
            )
        except NotOwner as e:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except (NotPrimary, NotReplicated, JournalError) as e:
            await context.abort(grpc.StatusCode.ABORTED, str(e))

    async def Queue(self, request, context):
        shard = await self._primary(request.shard, context)
        try:
            return await queue_op(self.node, shard, request)
        except QueueOpError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotPrimary as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except (NotReplicated, JournalError) as e:
            await context.abort(grpc.StatusCode.ABORTED, str(e))

    async def CloseMailbox(self, request, context):
        await self._primary(request.shard, context)
        return self.node.mailboxes.close(request.mailbox, request.session)

"""Front ends route each shard's work to its current primary: in-process when that is
this node, over gRPC otherwise, from the shard map the agent keeps current.

While a shard has no reachable primary (a failover), a transaction is *held*:
it waits for the map to change and retries, up to ``hold_timeout``, far inside
RFC 5321's 10-minute DATA timeout. Retries carry the same queue id and the
primary deduplicates, so a commit whose reply was lost is not stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from mailnode import metrics
from mailnode.errors import HoldExpired, NotPrimary, NotReplicated, from_grpc
from mailnode.interfaces import Peer
from mailnode.proto import frontend_pb2 as pb
from mailnode.proto import frontend_pb2_grpc
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.wire import CHANNEL_OPTIONS

log = logging.getLogger(__name__)

LOCAL = "local"
# gRPC outcomes that mean "not the primary (any more), or unreachable": hold and retry
# (errors.GRPC_CODES sends NotPrimary, NotReplicated and JournalError as the middle
# three). Any other status is translated by errors.from_grpc and raised.
MOVED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
}  # ABORTED: not replicated, taken back
LOOKUP_TTL, LOOKUP_NEGATIVE_TTL = 30.0, 5.0


class Router:
    def __init__(self, node: Peer, hold_timeout: float):
        self.node = node
        self.hold_timeout = hold_timeout
        self._changed: asyncio.Future | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._lookups: dict[str, tuple[tuple[bool, str], float]] = {}

    # -- the shard map -----------------------------------------------------------------
    def target(self, shard_id: int) -> str | None:
        """LOCAL, the primary's gRPC address, or None while the shard has no primary."""
        if self.node.shards[shard_id].accepting:
            return LOCAL
        return self.node.agent.primary_address(shard_id)

    def changed(self) -> None:
        """The shard map moved (called by the agent): wake held transactions."""
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    async def wait_change(self, timeout: float) -> None:
        """Until the shard map next changes, or ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)
        except TimeoutError:
            pass

    def _stub(self, address: str) -> frontend_pb2_grpc.ShardStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(
                address, options=CHANNEL_OPTIONS
            )
        return frontend_pb2_grpc.ShardStub(channel)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def _held(self, shard_id: int, call, hold: float | None = None):
        """Run ``call(target, attempt)`` against the shard's primary, holding through failovers."""
        deadline = time.monotonic() + (self.hold_timeout if hold is None else hold)
        attempt, last, t0 = 0, "no primary", time.monotonic()
        while True:
            target = self.target(shard_id)
            if target is not None:
                try:
                    result = await self._attempt(shard_id, target, call(target, attempt))
                    if attempt:
                        metrics.HOLD_SECONDS.observe(time.monotonic() - t0)
                    return result
                except (NotPrimary, NotReplicated) as e:
                    last = str(e)
                except grpc.aio.AioRpcError as e:
                    if e.code() not in MOVED:
                        raise from_grpc(e, target) from None
                    last = f"{target}: {e.code().name.lower()}: {e.details()}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HoldExpired(f"shard {shard_id}: {last}")
            now = self.target(shard_id)
            moved = target is not None and now is not None and now != target
            if attempt == 0:
                metrics.HELD.labels(str(shard_id)).inc()
                log.info(
                    "shard %d: holding a transaction until a primary takes it (%s)", shard_id, last
                )
            attempt += 1
            if not moved:  # a newly named primary is asked at once; else wait for one
                await self.wait_change(min(remaining, 0.5))

    async def _attempt(self, shard_id: int, target: str, work):
        """Await one attempt; a remote one is given up as soon as the shard map names
        another primary. A primary cut off from us may have committed and answered into
        the void: the retry, same queue id, at the new primary (which holds the message if
        the old primary's answer was a 250) is deduplicated there, and it has to come
        before the hold ends, or the sender sees 451 and sends the message again."""
        task = asyncio.ensure_future(work)
        if target == LOCAL:
            return await task
        try:
            while True:
                if self._changed is None:  # the future changed() resolves (as in wait_change)
                    self._changed = asyncio.get_running_loop().create_future()
                await asyncio.wait({task, self._changed}, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    return task.result()
                now = self.target(shard_id)
                if now is not None and now != target:
                    raise NotPrimary(f"{target} did not answer; the shard map now names {now}")
        finally:
            if not task.done():
                task.cancel()

    # -- what the front ends ask ---------------------------------------------------------
    async def commit(self, shard_id: int, record: JournalRecord) -> int:
        data = record.SerializeToString()
        metadata = self.node.cluster_metadata

        async def call(target: str, attempt: int) -> int:
            if target == LOCAL:
                metrics.ROUTED.labels(str(shard_id), "local").inc()
                fresh = JournalRecord()
                fresh.ParseFromString(data)
                lsn, _ = await self.node.shards[shard_id].commit_message(fresh, retry=attempt > 0)
                return lsn
            metrics.ROUTED.labels(str(shard_id), "remote").inc()
            reply = await self._stub(target).Commit(
                pb.CommitRequest(shard=shard_id, record=data, retry=attempt > 0),
                timeout=10,
                metadata=metadata,
            )
            return reply.lsn

        return await self._held(shard_id, call)

    async def lookup(self, shard_id: int, address: str) -> tuple[bool, str]:
        """(does the mailbox exist, why it is over quota or ""), asked of its primary."""
        shard = self.node.shards[shard_id]
        if shard.accepting:
            return shard.state.lookup(address)
        cached = self._lookups.get(address)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]

        async def call(target: str, attempt: int) -> tuple[bool, str]:
            if target == LOCAL:
                return await asyncio.to_thread(self.node.shards[shard_id].state.lookup, address)
            reply = await self._stub(target).Lookup(
                pb.LookupRequest(shard=shard_id, address=address),
                timeout=5,
                metadata=self.node.cluster_metadata,
            )
            return reply.exists, reply.over_quota

        found = await self._held(shard_id, call)
        ttl = LOOKUP_TTL if found[0] and not found[1] else LOOKUP_NEGATIVE_TTL
        self._lookups[address] = (found, time.monotonic() + ttl)
        if len(self._lookups) > 100_000:
            self._lookups.clear()
        return found

    async def imap_stream(self, shard_id: int, first: pb.ImapFrame):
        """(stream, the primary's address) for an IMAP session, once the primary says it
        serves it (held through a failover like a transaction); None when this node
        became the primary meanwhile."""

        async def call(target: str, attempt: int):
            if target == LOCAL:
                return None
            stream = self._stub(target).Imap(metadata=self.node.cluster_metadata)
            try:
                await stream.write(first)
                reply = await stream.read()
            except BaseException:
                stream.cancel()
                raise
            if reply is grpc.aio.EOF or not reply.ready:
                stream.cancel()
                raise NotPrimary(f"{target} did not take the IMAP session")
            return stream, target

        return await self._held(shard_id, call)

    async def call_primary(
        self, shard_id: int, method: str, request, local, hold: float | None = None
    ):
        """A POP3 or queue operation: ``local()`` on this node when primary, else the gRPC ``method``."""

        async def call(target: str, attempt: int):
            if target == LOCAL:
                return await local()
            return await getattr(self._stub(target), method)(
                request, timeout=30, metadata=self.node.cluster_metadata
            )

        return await self._held(shard_id, call, hold)

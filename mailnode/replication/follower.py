"""A hot spare's side: follow the primary's journal, acknowledge what is durable.

The spare appends the primary's frames byte for byte (same lsns), its applier
materialises them into its own Maildir exactly as on the primary, and it never
acts on mail. It refuses a stream of a lower epoch than it knows. When the
primary says the spare's journal diverged (it was a primary that kept
accepting after being replaced), the spare re-submits what it acknowledged past
the divergence (replication/salvage.py) to the primary as new transactions, then
cuts its journal back.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from mailnode import metrics
from mailnode.durable import to_thread_to_the_end
from mailnode.interfaces import Peer
from mailnode.journal.format import BadFrame, iter_frames, parse_frame
from mailnode.proto import replication_pb2 as pb
from mailnode.proto import replication_pb2_grpc
from mailnode.replication import salvage
from mailnode.replication.snapshot import bootstrap

log = logging.getLogger(__name__)


class StaleEpoch(Exception):
    """A primary answered from an epoch older than this spare's."""


class Follower:
    def __init__(self, node: Peer, shard):
        self.node = node
        self.shard = shard
        self.primary = ""
        self._task: asyncio.Task | None = None
        self._last_append: asyncio.Future | None = None
        self._handing: asyncio.Task | None = None  # handing shard.untaken over

    def start(self, primary: str) -> None:
        self.primary = primary
        self._task = asyncio.create_task(self._run(), name=f"follow:{self.shard.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._drain()

    async def _drain(self) -> None:
        """Wait for appends already queued, so the journal's end is durable."""
        if self._last_append is not None:
            try:
                await asyncio.shield(self._last_append)
            except Exception:
                pass

    async def _run(self) -> None:
        backoff, last_error = 0.1, ""
        while True:
            try:
                await self._follow_once()
                backoff = 0.1
                continue
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, StaleEpoch, BadFrame, ConnectionError) as e:
                text = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
                if text != last_error:
                    log.warning("shard %d: following %s: %s", self.shard.id, self.primary, text)
                    last_error = text
            except Exception:
                log.exception("shard %d: following %s failed", self.shard.id, self.primary)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _follow_once(self) -> None:
        shard, journal = self.shard, self.shard.journal
        shard.confirmed_lsn = 0  # nothing of ours is vouched for by this primary yet
        await self._drain()
        acks: asyncio.Queue[int] = asyncio.Queue()
        start = pb.FollowStart(
            shard=shard.id,
            follower=self.node.name,
            from_lsn=journal.committed_lsn,
            last_epoch=journal.epochs[-1][0] if journal.epochs else 0,
        )

        def acked(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                acks.put_nowait(journal.committed_lsn)

        async def send_acks(call) -> None:
            try:
                while True:
                    await call.write(pb.FollowRequest(ack=pb.Ack(durable_lsn=await acks.get())))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the stream ended; the receiving side says why

        async with grpc.aio.insecure_channel(self.primary) as channel:
            # write()/read() rather than a request generator: grpc cannot close a
            # generator that is waiting for the next acknowledgement.
            call = replication_pb2_grpc.ReplicationStub(channel).Follow(
                metadata=self.node.cluster_metadata
            )
            await call.write(pb.FollowRequest(start=start))
            sender = asyncio.create_task(send_acks(call))
            try:
                await self._receive(call, channel, acked, acks)
            finally:
                sender.cancel()
                call.cancel()

    async def _receive(self, call, channel, acked, acks) -> None:
        shard, journal = self.shard, self.shard.journal
        async for reply in call:
            if reply.epoch < shard.epoch:
                raise StaleEpoch(
                    f"refusing {self.primary}: its epoch {reply.epoch} is older than {shard.epoch}"
                )
            if shard.adopt_epoch(reply.epoch):
                await asyncio.to_thread(shard.save_role)
            kind = reply.WhichOneof("kind")
            if kind in ("frames", "heartbeat"):
                # The primary streams on from our end: our journal up to here is a prefix of its.
                shard.confirmed_lsn = journal.committed_lsn
                if shard.untaken and (self._handing is None or self._handing.done()):
                    self._handing = asyncio.create_task(self._hand_over_untaken(channel))
            if kind == "frames":
                self._append(reply.frames, reply.epoch).add_done_callback(acked)
            elif kind == "heartbeat":
                acks.put_nowait(journal.committed_lsn)
            elif kind == "truncate":
                call.cancel()
                await self._diverged(channel, reply.truncate.lsn)
                return
            elif kind == "need_snapshot":
                call.cancel()
                await bootstrap(self.node, shard, channel)
                return

    def _append(self, frames: pb.Frames, epoch: int) -> asyncio.Future:
        """Check every frame (checksum, lsn, epoch) and queue it; the future of the last."""
        journal, data, off, fut = self.shard.journal, frames.data, 0, None
        floor = journal.epochs[-1][0] if journal.epochs else 0
        while off < len(data):
            fr = parse_frame(data, off, frames.lsn)
            if not floor <= fr.record.epoch <= epoch:
                raise StaleEpoch(
                    f"record at lsn {fr.lsn} has epoch {fr.record.epoch}, outside {floor}..{epoch}"
                )
            floor = fr.record.epoch
            fut = journal.append_frame(fr.lsn, data[off : off + fr.size], fr.record)
            off += fr.size
        if fut is None:
            raise BadFrame(0, "empty frames message")
        self._last_append = fut
        return fut

    async def _diverged(self, channel, lsn: int) -> None:
        """Re-submit our messages past ``lsn`` to the primary, then cut the journal there."""
        shard, journal = self.shard, self.shard.journal
        await self._drain()
        if journal.committed_lsn:
            await shard.wait_applied(journal.committed_lsn - 1)
        frames = await asyncio.to_thread(lambda: list(iter_frames(journal.directory, lsn)))
        cfg = self.node.config.replication
        # In a cluster under sync, only what an AnsweredAlone names was acknowledged (F1).
        todo = salvage.plan(
            frames,
            lsn,
            origin=self.node.name,
            marked_only=self.node.agent.clustered and cfg.policy == "sync",
        )
        untaken = list(shard.untaken)
        await self._submit(channel, todo.records + untaken)
        await shard.handed_over(untaken)
        metrics.SALVAGED.labels(str(shard.id)).inc(todo.messages)
        removed = await to_thread_to_the_end(journal.truncate, lsn)
        log.warning(
            "shard %d: journal diverged from %s at lsn %d: re-submitted %d acknowledged records "
            "(%d messages, %d take-backs), skipped %d never acknowledged (answered 451 or not at "
            "all), %d not needed; cut %d bytes",
            shard.id,
            self.primary,
            lsn,
            len(todo.records),
            todo.messages,
            todo.take_backs,
            todo.unanswered,
            todo.dropped,
            removed,
        )
        if journal.first_lsn == 0:
            await to_thread_to_the_end(shard.rebuild_store)
        else:
            await bootstrap(self.node, shard, channel)

    async def _submit(self, channel, records) -> None:
        stub = replication_pb2_grpc.ReplicationStub(channel)
        for rec in records:
            await stub.Submit(
                pb.SubmitRequest(
                    shard=self.shard.id, record=rec.SerializeToString(), origin=self.node.name
                ),
                timeout=30,
                metadata=self.node.cluster_metadata,
            )

    async def _hand_over_untaken(self, channel) -> None:
        """Take-backs we could not write (demoted first) go to the primary we now follow."""
        todo = list(self.shard.untaken)
        try:
            await self._submit(channel, todo)
        except Exception as e:
            text = e.details() if isinstance(e, grpc.aio.AioRpcError) else repr(e)
            log.warning(
                "shard %d: handing %d take-backs to %s: %s (tried again on the next stream)",
                self.shard.id,
                len(todo),
                self.primary,
                text,
            )
            return
        await self.shard.handed_over(todo)

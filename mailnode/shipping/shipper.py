"""Shipping each shard's journal to the remote site's archive, from its primary.

One stream per shard while this node is its primary: a hello (shard, epoch)
gets the archive's end, then whole frames follow from exactly there, and every
reply moves the acknowledged position. Only what the shard's in-sync spares
hold is shipped (everything committed when there are none): after a failover
the new primary's journal therefore contains all the archive has, and it ships
on from the archive's end with no gap and no conflicting bytes.

``remote_sync`` makes a commit wait for the archive too. Segments below what
the archive, every spare and the store's checkpoint hold are removed; queued
messages in them are spooled first.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from mailnode import metrics
from mailnode.errors import ArchiveTimedOut
from mailnode.interfaces import Peer
from mailnode.journal.format import BadFrame, frame_boundary, parse_frame
from mailnode.journal.waiters import LsnWaiters
from mailnode.proto import archive_pb2 as pb
from mailnode.proto import archive_pb2_grpc
from mailnode.shipping.backup import upload_base
from mailnode.tls import channel_credentials
from mailnode.wire import CHANNEL_OPTIONS

log = logging.getLogger(__name__)

CHUNK = 1 << 20
IN_FLIGHT = 8 << 20


class ShipError(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


class Shipper:
    def __init__(self, node: Peer):
        self.node = node
        self.cfg = node.config.archive
        self.acked: dict[int, int] = {}  # shard -> archive's end lsn (what it holds)
        self.caught_up_at: dict[int, float] = {}
        self._waiters: dict[int, LsnWaiters] = {}  # remote_sync commits, per shard
        self._tasks: list[asyncio.Task] = []
        self._channel: grpc.aio.Channel | None = None
        self._stopping = False
        self._need_base: set[int] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.address)

    def stub(self) -> archive_pb2_grpc.ArchiveStub:
        if self._channel is None:
            options: list[tuple[str, object]] = list(CHANNEL_OPTIONS)
            if self.cfg.tls_ca:
                options.append(("grpc.ssl_target_name_override", self.cfg.server_name))
                self._channel = grpc.aio.secure_channel(
                    self.cfg.address,
                    channel_credentials(self.cfg.tls_ca, self.cfg.tls_cert, self.cfg.tls_key),
                    options=options,
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.cfg.address, options=options)
        return archive_pb2_grpc.ArchiveStub(self._channel)

    def start(self) -> None:
        if self.enabled:
            self._tasks = [
                asyncio.create_task(self._loop(shard), name=f"ship:{shard.id}")
                for shard in self.node.shards.values()
            ]
            if self.cfg.base_backup_interval:
                self._tasks.append(asyncio.create_task(self._bases(), name="base-backups"))

    async def _bases(self) -> None:
        """Upload a base backup of each shard this node is primary of when the archive's
        newest is older than base_backup_interval."""
        interval = self.cfg.base_backup_interval
        while True:
            await asyncio.sleep(min(interval / 4, 60.0))
            try:
                status = await self.stub().Status(pb.StatusRequest(), timeout=30)
                newest = {
                    s.shard: max((b.created_ns for b in s.bases), default=0) for s in status.shards
                }
                for shard in self.node.shards.values():
                    if (
                        shard.accepting
                        and shard.id in newest
                        and time.time_ns() - newest[shard.id] >= interval * 1e9
                    ):
                        info = await upload_base(self.node, shard, self.stub())
                        log.info(
                            "shard %d: base backup at lsn %d uploaded to the archive (%d bytes)",
                            shard.id,
                            info.lsn,
                            info.bytes,
                        )
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep making base backups whatever went wrong this time
                detail = (
                    f"{e.code().name.lower()}: {e.details()}"
                    if isinstance(e, grpc.aio.AioRpcError)
                    else repr(e)
                )
                log.warning("base backup to the archive: %s", detail)

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()

    # -- remote_sync -------------------------------------------------------------------
    async def wait(self, shard, end: int) -> None:
        """Return when the archive holds the commit ending at ``end`` (remote_sync)."""
        if not self.enabled or not self.cfg.remote_sync or self.acked.get(shard.id, 0) >= end:
            return
        fut = self._waiters.setdefault(shard.id, LsnWaiters()).wait_for(end)
        try:
            await asyncio.wait_for(fut, self.cfg.timeout)
        except TimeoutError:
            raise ArchiveTimedOut(
                f"shard {shard.id}: the archive did not acknowledge within "
                f"{self.cfg.timeout:.1f}s (remote_sync)"
            ) from None

    def _acknowledged(self, shard, end: int) -> None:
        if end < self.acked.get(shard.id, 0):
            metrics.ARCHIVE_GAPS.labels(str(shard.id)).inc()
            log.warning(
                "shard %d: the archive now ends at lsn %d, before the %d it acknowledged; "
                "shipping that range again",
                shard.id,
                end,
                self.acked[shard.id],
            )
        self.acked[shard.id] = end
        metrics.ARCHIVE_SHIPPED_LSN.labels(str(shard.id)).set(end)
        if shard.id in self._waiters:
            self._waiters[shard.id].reached(end)

    # -- shipping ------------------------------------------------------------------------
    def safe_end(self, shard) -> int:
        """How far the archive may get: what every spare that may be promoted holds."""
        committed = shard.journal.committed_lsn
        rp = shard.replication
        if rp.clustered:
            # F10: the set ZooKeeper has (a coordinator promotes from it), not the local
            # one, which empties the moment a promoted spare stops following us; a listed
            # spare that is gone counts with what it last acknowledged. Unknown: hold.
            if rp.published is None:
                return min(committed, self.acked.get(shard.id, 0))
            names = rp.published
        else:
            names = {s.name for s in rp.spares.values() if s.in_sync}
        acked = [rp.spares[n].acked if n in rp.spares else 0 for n in names]
        # The least: whichever in-sync spare is promoted holds all the archive has.
        return min([committed, *acked])

    async def _loop(self, shard) -> None:
        delay = 0.2
        idle_since = time.monotonic()
        while not self._stopping:
            if not shard.accepting:
                await asyncio.sleep(0.2)
                if time.monotonic() - idle_since > self.cfg.spare_trim_interval:
                    idle_since = time.monotonic()
                    await self._trim_spare(shard)
                continue
            try:
                await self._ship(shard)
                delay = 0.2
            except ShipError as e:
                metrics.ARCHIVE_ERRORS.labels(str(shard.id), e.kind).inc()
                log.error("shard %d: shipping to the archive stopped: %s", shard.id, e)
                delay = 5.0
            except grpc.aio.AioRpcError as e:
                kind = e.code().name.lower()
                metrics.ARCHIVE_ERRORS.labels(str(shard.id), kind).inc()
                if delay >= 1.0 or e.code() != grpc.StatusCode.UNAVAILABLE:
                    log.warning(
                        "shard %d: shipping to %s: %s: %s",
                        shard.id,
                        self.cfg.address,
                        kind,
                        e.details(),
                    )
                delay = min(delay * 2, 5.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end shipping for good
                metrics.ARCHIVE_ERRORS.labels(str(shard.id), "internal").inc()
                log.exception("shard %d: shipping failed", shard.id)
                delay = 5.0
            task = asyncio.current_task()  # this loop runs as a task: never None here
            if task is not None and task.cancelling():
                raise asyncio.CancelledError  # grpc turns a cancelled read into an RPC error
            await asyncio.sleep(delay)

    async def _ship(self, shard) -> None:
        epoch = shard.epoch
        requests: asyncio.Queue = asyncio.Queue()
        hello = pb.ShipRequest(shard=shard.id, epoch=epoch, node=self.node.name)
        await requests.put(hello)

        async def outgoing():
            try:
                while True:
                    item = await requests.get()
                    if item is None:
                        return
                    yield item
            except asyncio.CancelledError:
                return  # the call was cancelled: end the requests quietly

        call = self.stub().Ship(outgoing())
        try:
            first = await call.read()
            if first is grpc.aio.EOF:
                raise ShipError("closed", "the archive closed the stream")
            if first.end_lsn > shard.journal.committed_lsn:
                raise ShipError(
                    "ahead",
                    f"the archive holds up to lsn {first.end_lsn}, beyond this journal's "
                    f"{shard.journal.committed_lsn}: it has bytes this primary lacks",
                )
            if 0 < first.end_lsn < shard.journal.first_lsn:  # an empty archive starts where we do
                raise ShipError(
                    "gap",
                    f"the archive ends at lsn {first.end_lsn}, this journal starts at "
                    f"{shard.journal.first_lsn}: the range between is lost to it",
                )
            if first.end_lsn == 0 and shard.journal.first_lsn > 0:
                # An empty archive (new, or it lost its data) gets this journal from where it
                # starts now, and a base backup so that it can restore without the older part.
                metrics.ARCHIVE_GAPS.labels(str(shard.id)).inc()
                log.warning(
                    "shard %d: the archive is empty and this journal starts at lsn %d: shipping from "
                    "there, then a base backup",
                    shard.id,
                    shard.journal.first_lsn,
                )
                self._need_base.add(shard.id)
                self.acked[shard.id] = 0  # counted here, once
            self._acknowledged(shard, first.end_lsn)
            sent = max(first.end_lsn, shard.journal.first_lsn)
            log.info(
                "shard %d: shipping to the archive from lsn %d (epoch %d)", shard.id, sent, epoch
            )
            reader = asyncio.create_task(self._read_acks(shard, call))
            try:
                while shard.accepting and shard.epoch == epoch and not reader.done():
                    self._update_lag(shard)
                    safe = self.safe_end(shard)
                    if sent < safe and sent - self.acked[shard.id] < IN_FLIGHT:
                        data = await shard.journal.read(sent, CHUNK)
                        try:
                            parse_frame(data, 0, sent)
                        except BadFrame:
                            raise ShipError(
                                "diverged",
                                f"the archive ends at lsn {sent}, which is not a record "
                                f"boundary of this journal: their histories differ",
                            ) from None
                        data = data[: frame_boundary(data, safe - sent)]
                        if data:
                            await requests.put(
                                pb.ShipRequest(
                                    shard=shard.id,
                                    epoch=epoch,
                                    node=self.node.name,
                                    start_lsn=sent,
                                    data=data,
                                )
                            )
                            sent += len(data)
                            continue
                    if shard.id in self._need_base and self.acked[shard.id] >= shard.applied_lsn:
                        self._need_base.discard(shard.id)
                        self._tasks.append(asyncio.create_task(self._repair_base(shard)))
                    # Woken by the next local commit; spare acknowledgements are polled.
                    await shard.next_commit(0.05 if sent < shard.journal.committed_lsn else 0.5)
                    await asyncio.sleep(0)
                    await self._maybe_remove(shard)
            finally:
                await requests.put(None)
                if reader.done():
                    reader.result()  # the archive's refusal, if that is why we stopped
                else:
                    reader.cancel()
        finally:
            call.cancel()

    async def _repair_base(self, shard) -> None:
        try:
            info = await upload_base(self.node, shard, self.stub())
            log.info("shard %d: base backup at lsn %d uploaded to the archive", shard.id, info.lsn)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._need_base.add(shard.id)  # the shipping loop tries again
            detail = (
                f"{e.code().name.lower()}: {e.details()}"
                if isinstance(e, grpc.aio.AioRpcError)
                else repr(e)
            )
            log.warning("shard %d: base backup to the archive: %s", shard.id, detail)

    async def _read_acks(self, shard, call) -> None:
        while True:  # call.read(), not async for: grpc.aio does not mix the two styles on a call
            reply = await call.read()
            if reply is grpc.aio.EOF:
                raise ShipError("closed", "the archive closed the stream")
            self._acknowledged(shard, reply.end_lsn)

    def _update_lag(self, shard) -> None:
        label = str(shard.id)
        behind = max(0, shard.journal.committed_lsn - self.acked.get(shard.id, 0))
        now = time.monotonic()
        if behind == 0:
            self.caught_up_at[shard.id] = now
        metrics.ARCHIVE_LAG_BYTES.labels(label).set(behind)
        metrics.ARCHIVE_LAG_SECONDS.labels(label).set(
            now - self.caught_up_at.get(shard.id, now) if behind else 0
        )

    # -- journal segment removal ---------------------------------------------------------
    async def _trim_spare(self, shard) -> None:
        """A spare removes what the archive holds too: asked of the archive, since the
        spare does not ship (when promoted it ships on from the archive's end)."""
        if not self.cfg.remove_archived or shard.journal.segments < 2:
            return
        try:
            status = await self.stub().Status(pb.StatusRequest(), timeout=10)
        except grpc.aio.AioRpcError:
            return  # the primary reports shipping trouble; a spare just keeps its journal
        held = next((s.end_lsn for s in status.shards if s.shard == shard.id), 0)
        # Only what the current primary vouches for: a demoted primary's own tail may still
        # have to be salvaged, whatever the archive holds.
        await self._remove_below(shard, min(held, shard.state.checkpoint_lsn, shard.confirmed_lsn))

    def removable_below(self, shard) -> int:
        """Below this lsn every byte is at the archive, at every spare, and in the store's
        checkpoint: nothing local needs it any more. A spare away for longer than
        ``absent_spare_wait`` no longer holds removal back (F13: a dead spare kept the
        journal growing without bound); when it returns it bootstraps from a snapshot."""
        rp, now, wait = shard.replication, time.monotonic(), self.cfg.absent_spare_wait
        waited_for = [s for s in rp.spares.values() if s.connected or now - s.gone_since < wait]
        assigned = self.node.agent.assigned_spares(shard.id)  # all must have been heard from
        if assigned is None:
            return 0
        if any(name not in rp.spares for name in assigned) and now - rp.primary_since < wait:
            return 0
        return min(
            [
                self.acked.get(shard.id, 0),
                shard.state.checkpoint_lsn,
                *(s.acked for s in waited_for),
            ]
        )

    async def _maybe_remove(self, shard) -> None:
        if self.cfg.remove_archived and shard.journal.segments >= 2:
            await self._remove_below(shard, self.removable_below(shard))

    async def _remove_below(self, shard, below: int) -> None:
        """Off the loop; awaited by the shard's one shipping task, so removals never overlap."""
        if below <= shard.journal.first_lsn:
            return
        try:
            await asyncio.to_thread(self._remove, shard, below)
        except OSError as e:
            log.error("shard %d: removing archived segments failed: %s", shard.id, e)

    def _remove(self, shard, below: int) -> None:
        with shard.apply_lock:
            spooled = shard.spool_queued(below)
            removed = shard.journal.remove_before(below)
        if removed:
            metrics.ARCHIVE_REMOVED_SEGMENTS.labels(str(shard.id)).inc(removed)
            log.info(
                "shard %d: removed %d archived journal segments (log starts at lsn %d; %d queued "
                "messages spooled)",
                shard.id,
                removed,
                shard.journal.first_lsn,
                spooled,
            )

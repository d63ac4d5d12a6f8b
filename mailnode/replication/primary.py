"""The primary's view of its spares: acknowledgements, the in-sync set, commit policy.

Policies (``[replication] policy``):
- ``sync`` (default): a commit is answered only once it is fsync'd locally *and*
  acknowledged (fsync'd) by one in-sync spare. When no spare acknowledges
  within ``sync_timeout``: with ``strict`` the commit fails (SMTP 451 4.3.0);
  otherwise the shard *degrades*: the commit counts as local, the fact is
  logged and ``mailcluster_replication_degraded_commits_total`` rises, and
  sync waits resume as soon as a spare is back in sync.
- ``async``: commits wait for the local fsync only; spares follow and are
  reported in sync when within the lag bound.
- ``local``: like async, but no spare is ever reported in sync (a standalone
  shard; nothing may be promoted automatically).

A spare is *in sync* while the oldest commit it has not acknowledged is at
most ``max_lag_seconds`` old (and it is less than ``max_lag_bytes`` behind);
it drops out when it disconnects or lets a sync commit time out, and comes back
when an acknowledgement shows it caught up again. (A bound in bytes alone would
trip in normal operation: 20 sessions of 100 KiB are 2 MB in flight.)
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
import logging
import time
from dataclasses import dataclass

from mailnode import metrics

log = logging.getLogger(__name__)

POLICIES = ("sync", "async", "local")


class NotReplicated(Exception):
    """Strict sync policy: no in-sync spare acknowledged the commit in time."""


class NotPrimary(Exception):
    """This node is not (or no longer) the primary of the shard."""


@dataclass
class Spare:
    name: str
    acked: int = 0
    connected: bool = True
    in_sync: bool = False
    streams: int = 0


class ReplicationPrimary:
    def __init__(self, shard, *, policy: str, strict: bool, sync_timeout: float, max_lag_bytes: int,
                 max_lag_seconds: float):
        self.shard = shard
        self.policy = policy
        self.strict = strict
        self.sync_timeout = sync_timeout
        self.max_lag_bytes = max_lag_bytes
        self.max_lag_seconds = max_lag_seconds
        self._commits: collections.deque[tuple[int, float]] = collections.deque()  # (end lsn, when)
        self.spares: dict[str, Spare] = {}
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = 0
        self.degraded = False  # committing without a spare's acknowledgement
        # End of the last commit answered without a spare's acknowledgement (sync policy):
        # a spare joins the in-sync set only once it holds everything up to here, so the
        # set never names a spare that lacks an acknowledged message.
        self.unreplicated_end = 0
        # Awaited before the first degraded commit (the agent publishes the empty in-sync
        # set to ZooKeeper); raising NotReplicated refuses the commit instead.
        self.on_degrade = None
        label = str(shard.id)
        self._m_waiting = metrics.SYNC_WAITING.labels(label)
        self._m_degraded = metrics.DEGRADED_COMMITS.labels(label)
        self._m_in_sync = metrics.IN_SYNC_SPARES.labels(label)

    # -- spares ------------------------------------------------------------------------
    def connected(self, name: str, position: int) -> Spare:
        spare = self.spares.get(name)
        if spare is None:
            spare = self.spares[name] = Spare(name, position)
        spare.acked = position
        spare.connected = True
        spare.streams += 1
        self._evaluate(spare)
        return spare

    def disconnected(self, spare: Spare) -> None:
        spare.streams -= 1
        if spare.streams == 0:
            spare.connected = False
            self._set_in_sync(spare, False, "disconnected")

    def acknowledged(self, spare: Spare, lsn: int) -> None:
        spare.acked = max(spare.acked, lsn)
        self._evaluate(spare)
        if spare.in_sync:
            self._release(spare.acked)

    def committed(self, end: int) -> None:
        """A batch ending at ``end`` became durable locally (journal listener)."""
        self._commits.append((end, time.monotonic()))
        if len(self._commits) > 4096:  # keep what the slowest connected spare still needs
            floor = min((s.acked for s in self.spares.values() if s.connected), default=end)
            while len(self._commits) > 1 and self._commits[0][0] <= floor:
                self._commits.popleft()
            while len(self._commits) > 65536:
                self._commits.popleft()

    def _evaluate(self, spare: Spare) -> None:
        nbytes, seconds = self.lag(spare)
        ok = (self.policy != "local" and spare.connected and seconds <= self.max_lag_seconds
              and nbytes <= self.max_lag_bytes
              and (self.policy != "sync" or spare.in_sync or spare.acked >= self.unreplicated_end))
        self._set_in_sync(spare, ok, "caught up" if ok else f"{nbytes} bytes, {seconds:.1f}s behind")

    def _set_in_sync(self, spare: Spare, value: bool, why: str) -> None:
        if spare.in_sync != value:
            spare.in_sync = value
            log.info("shard %d: spare %s %s in sync (%s, acked %d, committed %d)", self.shard.id, spare.name,
                     "is" if value else "is no longer", why, spare.acked, self.shard.journal.committed_lsn)
            if value and self.degraded:
                self.degraded = False
                log.warning("shard %d: spare %s back in sync; commits are synchronous again",
                            self.shard.id, spare.name)
        self._m_in_sync.set(sum(s.in_sync for s in self.spares.values()))

    def in_sync(self) -> list[str]:
        return sorted(s.name for s in self.spares.values() if s.in_sync)

    def lag(self, spare: Spare) -> tuple[int, float]:
        """Bytes not acknowledged, and the age of the oldest commit among them."""
        behind = max(0, self.shard.journal.committed_lsn - spare.acked)
        if behind == 0:
            return 0, 0.0
        i = bisect.bisect_right(self._commits, (spare.acked, float("inf")))
        if i == len(self._commits):
            return behind, math.inf  # behind commits older than we remember: not in sync
        return behind, time.monotonic() - self._commits[i][1]

    def replicated_lsn(self) -> int:
        return max((s.acked for s in self.spares.values() if s.in_sync), default=0)

    # -- commits -----------------------------------------------------------------------
    def _release(self, lsn: int) -> None:
        while self._waiters and self._waiters[0][0] <= lsn:
            fut = self._waiters.pop(0)[2]
            if not fut.done():
                fut.set_result(None)

    def fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_exception(error)

    async def wait(self, end: int) -> None:
        """Return when the commit ending at ``end`` satisfies the policy."""
        if self.policy != "sync" or self.replicated_lsn() >= end:
            return
        if not self.in_sync() and not self.strict:
            await self._degrade("no spare is in sync", end)
            return
        fut = asyncio.get_running_loop().create_future()
        self._seq += 1
        bisect.insort(self._waiters, (end, self._seq, fut))
        self._m_waiting.inc()
        try:
            await asyncio.wait_for(fut, self.sync_timeout)
        except asyncio.TimeoutError:
            self._timed_out(end)
            await self._degrade(f"no acknowledgement within {self.sync_timeout:.1f}s", end)
        finally:
            self._m_waiting.dec()

    def _timed_out(self, end: int) -> None:
        for spare in self.spares.values():
            if spare.in_sync and spare.acked < end:
                self._set_in_sync(spare, False, f"no acknowledgement within {self.sync_timeout:.1f}s")
        if self.strict:
            raise NotReplicated(f"shard {self.shard.id}: no in-sync spare acknowledged within "
                                f"{self.sync_timeout:.1f}s (strict sync policy)")

    async def _degrade(self, why: str, end: int) -> None:
        self.unreplicated_end = max(self.unreplicated_end, end)
        if not self.degraded:
            if self.on_degrade is not None:
                await self.on_degrade()
            self.degraded = True
            log.warning("shard %d: %s; committing locally (degraded) until a spare is in sync",
                        self.shard.id, why)
        self._m_degraded.inc()

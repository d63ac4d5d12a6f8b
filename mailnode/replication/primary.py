"""The primary's view of its spares: acknowledgements, the in-sync set, commit policy.

Policies (``[replication] policy``):
- ``sync`` (default): a commit is answered only once it is fsync'd locally *and*
  acknowledged (fsync'd) by **every** spare in the in-sync set (Kafka's ISR with
  acks=all). A spare that does not acknowledge within ``sync_timeout`` leaves the
  set; with ``strict`` that commit then fails (SMTP 451 4.3.0), otherwise the commit
  is answered by the spares left, or, when none is left, the shard *degrades*: the
  commit counts as local, the fact is logged and
  ``mailcluster_replication_degraded_commits_total`` rises.
- ``async``: commits wait for the local fsync only; spares follow and are
  reported in sync when within the lag bound.
- ``local``: like async, but no spare is ever reported in sync (a standalone
  shard; nothing may be promoted automatically).

In a cluster the set that counts for promotion is the one published in
ZooKeeper (``shards/<n>.in_sync``). No commit is answered while that set names a
spare that is not in the local set: the smaller set is published first (``publish``,
compare-and-set by the agent), so every spare ZooKeeper calls in sync holds every
answered commit. Until the agent can publish (start-up, no ZooKeeper) such a commit
is refused instead.

A spare *joins* the set only when it holds every commit answered so far
(``answered_end``: acknowledged by spares, answered degraded, or in the journal when
this node started or was promoted, whose replication is not known); it stays while
the oldest commit it has not acknowledged is at most ``max_lag_seconds`` old (and it
is less than ``max_lag_bytes`` behind), and leaves when it disconnects or lets a
sync commit time out. (A bound in bytes alone would trip in normal operation: 20
sessions of 100 KiB are 2 MB in flight.)
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailnode import metrics
from mailnode.errors import InSyncUnpublished, SparesTimedOut
from mailnode.journal.waiters import LsnWaiters

log = logging.getLogger(__name__)

POLICIES = ("sync", "async", "local")


@dataclass
class Spare:
    name: str
    acked: int = 0
    connected: bool = True
    in_sync: bool = False
    streams: int = 0
    gone_since: float = 0.0  # time.monotonic() when its last stream ended


class ReplicationPrimary:
    def __init__(
        self,
        shard,
        *,
        policy: str,
        strict: bool,
        sync_timeout: float,
        max_lag_bytes: int,
        max_lag_seconds: float,
    ):
        self.shard = shard
        self.policy = policy
        self.strict = strict
        self.sync_timeout = sync_timeout
        self.max_lag_bytes = max_lag_bytes
        self.max_lag_seconds = max_lag_seconds
        self._commits: collections.deque[tuple[int, float]] = collections.deque()  # (end lsn, when)
        self.spares: dict[str, Spare] = {}
        self.primary_since = time.monotonic()  # spares are known from here on (forget_spares)
        self._waiters = LsnWaiters()  # commits waiting for their end to be replicated
        self.degraded = False  # committing without a spare's acknowledgement (for logs and status)
        # End of the last commit answered (sync policy): a spare joins the in-sync set only
        # once it holds everything up to here, so the set never names a spare that lacks
        # an answered commit. Shard.start and promotion set it to the journal's end.
        self.answered_end = 0
        # Cluster mode: the in-sync set as ZooKeeper has it (None: not known yet, so no
        # commit may be answered before ``publish`` has written it).
        self.clustered = False
        self.published: frozenset[str] | None = None
        # async (): write in_sync() to ZooKeeper (compare-and-set) and set ``published``;
        # raises NotReplicated when it cannot. Installed by the agent.
        self.publish: Callable[[], Awaitable[None]] | None = None
        self._publish_lock = asyncio.Lock()
        # callable (name) -> bool: is that node assigned as a spare of this shard in
        # ZooKeeper (cluster mode; None: any follower counts). A node following us from
        # a stale role.json must not make a commit look replicated.
        self.assigned: Callable[[str], bool] | None = None
        self._pruned_end = 0  # commits below this are no longer remembered in _commits
        label = str(shard.id)
        self._m_waiting = metrics.SYNC_WAITING.labels(label)
        self._m_degraded = metrics.DEGRADED_COMMITS.labels(label)
        self._m_in_sync = metrics.IN_SYNC_SPARES.labels(label)

    # -- spares ------------------------------------------------------------------------
    def forget_spares(self) -> None:
        """Becoming primary: no spare has been heard from yet."""
        self.spares.clear()
        self.primary_since = time.monotonic()

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
            spare.gone_since = time.monotonic()
            self._set_in_sync(spare, False, "disconnected")

    def acknowledged(self, spare: Spare, lsn: int) -> None:
        spare.acked = max(spare.acked, lsn)
        self._evaluate(spare)
        if spare.in_sync:
            self._release(self.replicated_lsn())

    def committed(self, end: int) -> None:
        """A batch ending at ``end`` became durable locally (journal listener)."""
        now = time.monotonic()
        self._commits.append((end, now))
        # Forget by age: a spare that lacks a commit older than max_lag_seconds is not in
        # sync whatever else it holds, so lag() may call anything older infinitely old.
        # (Pruning by what connected spares acked forgot, while no spare was connected,
        # commits a spare that reconnected a moment later still lacked.)
        horizon = now - max(2 * self.max_lag_seconds, 10.0)
        while len(self._commits) > 1 and (
            self._commits[0][1] < horizon or len(self._commits) > 65536
        ):
            self._pruned_end = self._commits.popleft()[0]

    def reevaluate(self) -> None:
        """The assignment changed: look at every spare again."""
        for spare in list(self.spares.values()):
            self._evaluate(spare)

    def _evaluate(self, spare: Spare) -> None:
        nbytes, seconds = self.lag(spare)
        ok = (
            self.policy != "local"
            and spare.connected
            and seconds <= self.max_lag_seconds
            and (self.assigned is None or self.assigned(spare.name))
            and nbytes <= self.max_lag_bytes
            and (self.policy != "sync" or spare.in_sync or spare.acked >= self.answered_end)
        )
        self._set_in_sync(
            spare, ok, "caught up" if ok else f"{nbytes} bytes, {seconds:.1f}s behind"
        )

    def _set_in_sync(self, spare: Spare, value: bool, why: str) -> None:
        if spare.in_sync != value:
            spare.in_sync = value
            log.info(
                "shard %d: spare %s %s in sync (%s, acked %d, committed %d)",
                self.shard.id,
                spare.name,
                "is" if value else "is no longer",
                why,
                spare.acked,
                self.shard.journal.committed_lsn,
            )
            if value and self.degraded:
                self.degraded = False
                log.warning(
                    "shard %d: spare %s back in sync; commits are synchronous again",
                    self.shard.id,
                    spare.name,
                )
            if (
                not value
            ):  # what waits may now be answered by the others, or degrade (wait() publishes first)
                self._release(self.replicated_lsn() if self.in_sync() else math.inf)
        self._m_in_sync.set(sum(s.in_sync for s in self.spares.values()))

    def in_sync(self) -> list[str]:
        return sorted(s.name for s in self.spares.values() if s.in_sync)

    def lag(self, spare: Spare) -> tuple[int, float]:
        """Bytes not acknowledged, and the age of the oldest commit among them."""
        behind = max(0, self.shard.journal.committed_lsn - spare.acked)
        if behind == 0:
            return 0, 0.0
        if spare.acked < self._pruned_end:
            return behind, math.inf  # lacks commits older than we remember: not in sync
        i = bisect.bisect_right(self._commits, (spare.acked, float("inf")))
        if i == len(self._commits):
            return behind, math.inf
        return behind, time.monotonic() - self._commits[i][1]

    def replicated_lsn(self) -> int:
        """What every in-sync spare holds (0 when none is in sync)."""
        return min((s.acked for s in self.spares.values() if s.in_sync), default=0)

    # -- commits -----------------------------------------------------------------------
    def _release(self, lsn: float) -> None:  # math.inf: everything waiting
        self._waiters.reached(lsn)

    def fail_waiters(self, error: Exception) -> None:
        self._waiters.fail(error)

    async def wait(self, end: int) -> bool:
        """Return when the commit ending at ``end`` satisfies the policy: True when it is
        answered with no spare holding it (degraded), False otherwise."""
        if self.policy != "sync":
            return False
        alone = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sync_timeout
        while True:
            if self.in_sync() and self.replicated_lsn() >= end:
                if await self._publish_if_needed():
                    continue  # the set may have changed meanwhile: look again
                break
            if not self.in_sync() and not self.strict:
                if await self._publish_if_needed() or self.in_sync():
                    continue
                self._degrade("no spare is in sync", end)
                alone = True
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._timed_out(end)  # strict: raises
                continue
            fut = self._waiters.wait_for(end)
            self._m_waiting.inc()
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                pass
            finally:
                self._m_waiting.dec()
        self.answered_end = max(self.answered_end, end)
        return alone

    async def _publish_if_needed(self) -> bool:
        """In a cluster, make ZooKeeper's in-sync set a subset of ours before answering;
        True when something was published (the caller looks at the set again)."""
        if not self.clustered or (
            self.published is not None and self.published <= set(self.in_sync())
        ):
            return False
        if self.publish is None:
            raise InSyncUnpublished(
                f"shard {self.shard.id}: the in-sync set cannot be published to ZooKeeper "
                "yet (the node is starting or not registered)"
            )
        async with self._publish_lock:
            if self.published is not None and self.published <= set(self.in_sync()):
                return False
            await self.publish()
        return True

    def _timed_out(self, end: int) -> None:
        for spare in self.spares.values():
            if spare.in_sync and spare.acked < end:
                self._set_in_sync(
                    spare, False, f"no acknowledgement within {self.sync_timeout:.1f}s"
                )
        if self.strict:
            raise SparesTimedOut(
                f"shard {self.shard.id}: no in-sync spare acknowledged within "
                f"{self.sync_timeout:.1f}s (strict sync policy)"
            )

    def _degrade(self, why: str, end: int) -> None:
        if not self.degraded:
            self.degraded = True
            log.warning(
                "shard %d: %s; committing locally (degraded) until a spare is in sync",
                self.shard.id,
                why,
            )
        self._m_degraded.inc()

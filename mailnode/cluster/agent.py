"""The node agent: this node's presence in ZooKeeper and its shards' assigned roles.

- Registers an ephemeral ``nodes/<name>`` znode (addresses, version, shard
  roles, epochs, lsns) and refreshes it every second; checks after a
  reconnect that the znode is still owned by its own session.
- Watches ``shards/<n>`` and makes the local role match: primary at the
  assigned epoch, spare following the assigned primary, or idle.
- Holds a lease (F5): a request is answered by ZooKeeper every sixth of the
  session timeout; the lease runs from when the last answered request was
  *sent* (the server heard from us no earlier) for half the session timeout
  (the negotiated one, if the server lowered it). ZooKeeper cannot expire the
  session before ``sent + timeout``, and no coordinator can promote another
  node before that, so with ``lease < timeout`` this node stops acting as
  primary (``Shard.accepting``: commits, deliveries, shipping, the router)
  strictly before any replacement can act. A lapsed lease only pauses (losing
  one ZooKeeper server must not demote anyone); a SUSPENDED connection that
  lasts until the session must have expired demotes (self-fence); LOST fences
  at once.
- A watchdog thread drops the ZooKeeper session when the event loop stalls
  for the session timeout, so a hung node is failed over.
- Publishes each primary's in-sync set: a smaller set before any commit is
  answered without a spare it named (see replication/primary.py), so a
  coordinator can never promote a spare that misses an acknowledged message.

Connection listeners and watches run in kazoo's thread: they never block and
never call ZooKeeper; they hand work to the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import logging
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.recipe.watchers import DataWatch

from coordinator.model import (
    Coordination,
    CoordinationError,
    MemberHeld,
    NoNode,
    ShardInfo,
    _shard_info,
)
from mailnode import metrics
from mailnode.errors import InSyncUnpublished, NotReplicated
from mailnode.interfaces import AgentNode

log = logging.getLogger(__name__)

VERSION = importlib.metadata.version("mailcluster")  # what nodes/<name> says it runs


class _NegotiatedTimeout(logging.Filter):
    """kazoo reports the session timeout the server negotiated only in a BLATHER log
    line of its connection ("negotiated session timeout: %s", args[2], ms); this filter
    on the logger we hand to KazooClient keeps it and drops every BLATHER record."""

    def __init__(self):
        super().__init__()
        self.ms: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:  # what kazoo's own logger would pass by default
            return True
        if (
            "negotiated session timeout" in str(record.msg)
            and isinstance(record.args, tuple)
            and len(record.args) >= 3
            and isinstance(record.args[2], int | float | str)  # kazoo's is an int
        ):
            try:
                self.ms = float(record.args[2])
            except (TypeError, ValueError):
                pass
        return False


LEASE_FRACTION = 0.5  # of the session timeout; must stay well below 1 (see the docstring)


class Standalone:
    """The cluster view of a node without ZooKeeper: it is the whole cluster, every
    shard it is primary of is served here, and no other node is asked anything."""

    clustered = False
    connected = True

    def primary_address(self, n: int) -> str | None:
        return None

    def assigned_spares(self, n: int) -> list[str] | None:
        return []  # nobody else's copy to wait for

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Agent:
    """The cluster view of a node in a ZooKeeper cluster (module docstring)."""

    clustered = True

    def __init__(self, node: AgentNode, *, hosts: str, root: str, session_timeout: float):
        self.node = node
        self.session_timeout = session_timeout
        self._negotiated = _NegotiatedTimeout()
        zk_log = logging.getLogger("mailnode.cluster.agent.kazoo")
        zk_log.setLevel(5)  # kazoo's BLATHER, for the filter only
        zk_log.addFilter(self._negotiated)
        self.zk = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            logger=zk_log,
            connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5},
        )
        self._contact: float | None = None  # monotonic send time of the last answered request
        self.store = Coordination(self.zk, root)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connected = False
        self._fence_timer: asyncio.TimerHandle | None = None
        self._locks = {n: asyncio.Lock() for n in node.shards}
        self._assigned: dict[int, ShardInfo] = {}
        self._addresses: dict[str, str] = {}  # node name -> gRPC address, from nodes/<name>
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()  # held, so none is collected mid-run
        self._heartbeat = time.monotonic()
        self._dropped = threading.Event()
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.zk.add_listener(self._listener)
        await asyncio.to_thread(self.zk.start, 30)
        self.connected = True
        await asyncio.to_thread(self.store.config)  # the cluster must be initialised
        sent = time.monotonic()
        await self._register_when_free()
        self._contact = sent
        for shard in self.node.shards.values():
            shard.lease = self.lease_valid
            shard.replication.publish = functools.partial(self._publish_in_sync, shard)
            shard.replication.assigned = functools.partial(self._is_assigned_spare, shard.id)
        self._rewatch()
        self._tasks = [
            asyncio.create_task(self._publish_loop()),
            asyncio.create_task(self._beat()),
            asyncio.create_task(self._lease_loop()),
        ]
        threading.Thread(target=self._watchdog, name="agent-watchdog", daemon=True).start()
        log.info("agent %s: registered in ZooKeeper under %s", self.node.name, self.store.root)

    def _spawn(self, work) -> None:
        """Run ``work`` on the loop without waiting for it (from the loop only)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _rewatch(self) -> None:
        for n in self.node.shards:
            DataWatch(self.zk, self.store.path("shards", n), functools.partial(self._watch, n))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.zk.stop()
        self.zk.close()

    # -- registration ------------------------------------------------------------------
    def member_data(self) -> dict:
        cfg = self.node.config
        return {
            "name": self.node.name,
            "grpc": self.node.advertise,
            "smtp": cfg.smtp.listen,
            "pop3": cfg.pop3.listen,
            "http": cfg.http.listen,
            "version": VERSION,
            "prefer": cfg.cluster.prefer,
            "shards": {str(s.id): self._shard_data(s) for s in self.node.shards.values()},
        }

    @staticmethod
    def _shard_data(s) -> dict:
        doc = {
            "role": s.role,
            "epoch": s.epoch,
            "lsn": s.journal.committed_lsn,
            "in_sync": s.replication.in_sync() if s.role == "primary" else [],
        }
        if s.draining and s.journal.committed_lsn == s.journal.end_lsn:
            doc["drained_lsn"] = (
                s.journal.end_lsn
            )  # nothing in flight: spares need exactly this much
        return doc

    def _register(self) -> None:
        self.store.register(self.node.name, self.member_data())

    async def _register_when_free(self) -> None:
        """Register; while our previous session (a restart within its timeout) still
        holds nodes/<name>, wait for it to expire instead of exiting (F2: a restart
        loop would only repeat the window). A second live node of the same name keeps
        it for good: that is reported and, after a bound, fatal."""
        deadline = time.monotonic() + max(60.0, 4 * self.session_timeout)
        warned = False
        while True:
            try:
                await asyncio.to_thread(self._register)
                if warned:
                    log.warning(
                        "agent %s: the previous session is gone; registered", self.node.name
                    )
                return
            except MemberHeld as e:
                if time.monotonic() > deadline:
                    raise
                if not warned:
                    log.warning(
                        "agent %s: %s; waiting for it to expire (serving nothing as primary meanwhile)",
                        self.node.name,
                        e,
                    )
                    warned = True
            await asyncio.sleep(0.5)

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.connected:
                continue
            try:
                if not await asyncio.to_thread(self.store.owns_member, self.node.name):
                    await asyncio.to_thread(self._register)
                else:
                    await asyncio.to_thread(
                        self.store.update_member, self.node.name, self.member_data()
                    )
                for shard in self.node.shards.values():
                    info = self._assigned.get(shard.id)
                    if (
                        shard.role == "primary"
                        and info is not None
                        and info.primary == self.node.name
                        and set(shard.replication.in_sync()) != set(info.in_sync)
                    ):
                        await self._publish_in_sync(shard)
            except CoordinationError as e:
                log.warning("agent %s: publishing state: %s", self.node.name, e)
            except NotReplicated as e:  # the shard moved meanwhile (a switchover): next round
                log.info("agent %s: publishing state: %s", self.node.name, e)
            except Exception:
                # It once died of a NotReplicated during a switchover, and no in-sync set
                # was published again for any shard (found by the chaos run).
                log.exception("agent %s: publishing state failed", self.node.name)

    async def _publish_in_sync(self, shard) -> None:
        """Write the primary's in-sync set to shards/<n> (compare-and-set). Raises
        NotReplicated when it cannot: a degraded commit must not go ahead then."""
        for attempt in range(40):  # right after a failover the coordinator writes the shard too
            if attempt:
                await asyncio.sleep(0.05)
            try:
                info = await asyncio.to_thread(self.store.shard, shard.id)
                if info.primary != self.node.name or info.epoch != shard.epoch:
                    raise InSyncUnpublished(
                        f"shard {shard.id}: no longer primary here in ZooKeeper"
                    )
                in_sync = shard.replication.in_sync()
                if await asyncio.to_thread(self.store.update_shard, info, in_sync=in_sync):
                    shard.replication.published = frozenset(in_sync)
                    return
            except CoordinationError as e:  # nothing of kazoo's leaks into a commit
                raise InSyncUnpublished(
                    f"shard {shard.id}: cannot publish the in-sync set: {e!r}"
                ) from None
        raise InSyncUnpublished(f"shard {shard.id}: the in-sync set kept changing under us")

    # -- the lease (F5) ---------------------------------------------------------------
    @property
    def timeout(self) -> float:
        """The session timeout that counts: the server may have negotiated it down."""
        if self._negotiated.ms:
            return min(self.session_timeout, self._negotiated.ms / 1000)
        return self.session_timeout

    @property
    def lease_seconds(self) -> float:
        return self.timeout * LEASE_FRACTION

    def lease_valid(self) -> bool:
        """May this node act as primary now? (Synchronous: checked by every commit.)"""
        return self._contact is not None and time.monotonic() < self._contact + self.lease_seconds

    def _renew(self) -> None:
        """Send a request; its answer (in kazoo's thread) moves the lease's start to when
        it was sent. No thread of ours waits: a busy executor cannot starve the lease."""
        sent = time.monotonic()

        def answered(result) -> None:
            if result.successful() and (self._contact is None or sent > self._contact):
                self._contact = sent  # one float store: atomic under the GIL

        try:
            self.zk.exists_async(self.store.root).rawlink(answered)
        except Exception as e:  # not connected: the lease runs out on its own
            log.debug("agent %s: lease renewal not sent: %s", self.node.name, e)

    async def _lease_loop(self) -> None:
        fenced_at = None
        while True:
            self._renew()
            await asyncio.sleep(max(0.05, self.timeout / 6))
            # kazoo notices a dead connection only by a heartbeat left unanswered, and it
            # sends heartbeats only when idle: these requests keep it from ever being idle,
            # so on a silent partition SUSPENDED never comes. Unanswered for a whole
            # session timeout: the session must have expired; fence without kazoo.
            silent = self._contact is not None and time.monotonic() > self._contact + self.timeout
            if silent and fenced_at != self._contact:
                fenced_at = self._contact
                log.warning(
                    "agent %s: no answer from ZooKeeper for %.1fs (the session timeout): "
                    "the session must have expired",
                    self.node.name,
                    self.timeout,
                )
                self._self_fence(f"no answer from ZooKeeper for {self.timeout:.1f}s")

    # -- connection state (kazoo thread: hand over, never block) ------------------------
    def _listener(self, state) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._on_state, state)

    def _on_state(self, state) -> None:
        if self._fence_timer is not None:
            self._fence_timer.cancel()
            self._fence_timer = None
        if state == KazooState.SUSPENDED:
            self.connected = False
            # The lease already stops every action at its end (a pause, undone by a
            # reconnect to another server); demoting waits until the session must have
            # expired, anchored at the last answered request, not at when this event got here.
            left = (
                0.0
                if self._contact is None
                else max(0.0, self._contact + self.timeout - time.monotonic())
            )
            log.warning(
                "agent %s: ZooKeeper connection suspended; self-fencing in %.1fs unless it comes back",
                self.node.name,
                left,
            )
            self._fence_timer = asyncio.get_running_loop().call_later(  # self.loop: _listener
                left, self._self_fence, "ZooKeeper connection suspended"
            )
        elif state == KazooState.LOST:
            self.connected = False
            self._contact = None
            self._self_fence("ZooKeeper session lost")
        elif state == KazooState.CONNECTED:
            self.connected = True
            self._spawn(self._resync("reconnected to ZooKeeper"))

    def _self_fence(self, why: str) -> None:
        for shard in self.node.shards.values():
            if shard.role == "primary":
                self._spawn(self.node.roles.demote(shard.id, "", reason=f"self-fenced: {why}"))

    async def _resync(self, why: str) -> bool:
        try:
            await asyncio.to_thread(self._register)
            for shard in self.node.shards.values():
                # A new session may talk to a server that has not applied the latest
                # writes yet (kazoo starts it with last_zxid 0): sync first (F12).
                await asyncio.to_thread(self.store.sync, self.store.path("shards", shard.id))
                info = await asyncio.to_thread(self.store.shard, shard.id)
                await self._apply(shard.id, info)
            log.info("agent %s: %s; roles re-applied", self.node.name, why)
            return True
        except CoordinationError as e:
            log.warning("agent %s: resync after %s failed: %s", self.node.name, why, e)
            return False

    def _watch(self, n: int, data, stat) -> None:
        if data is None or self.loop is None:
            return
        info = _shard_info(n, data, stat.version)
        self.loop.call_soon_threadsafe(self._spawn, self._apply(n, info))

    def _is_assigned_spare(self, n: int, name: str) -> bool:
        """As last read from ZooKeeper (kept while disconnected: a blip must not empty
        the in-sync set)."""
        info = self._assigned.get(n)
        return info is not None and name in info.spares

    def assigned_spares(self, n: int) -> list[str] | None:
        """Names of shard n's spares as assigned in ZooKeeper (None: not known now)."""
        info = self._assigned.get(n)
        return None if info is None or not self.connected else list(info.spares)

    def primary_address(self, n: int) -> str | None:
        """gRPC address of shard n's primary as assigned in ZooKeeper (None: none known)."""
        info = self._assigned.get(n)
        if info is None or not info.primary or not self.connected:
            return None
        return self._addresses.get(info.primary)

    async def _address_of(self, name: str) -> str:
        try:
            raw, _ = await asyncio.to_thread(self.store.get, self.store.path("nodes", name))
        except NoNode:
            return ""
        address = json.loads(raw).get("grpc", "")
        self._addresses[name] = address
        return address

    # -- making the local role match the assignment ---------------------------------
    async def _apply(self, n: int, info: ShardInfo) -> None:
        async with self._locks[n]:
            self._assigned[n] = info
            if not self.connected:
                return  # never act on what may be stale
            if info.primary and info.primary != self.node.name:
                await self._address_of(info.primary)
            self.node.router.changed()
            shard, me = self.node.shards[n], self.node.name
            shard.replication.reevaluate()  # only assigned spares count as in sync
            if info.primary == me:
                if shard.role != "primary" or shard.epoch != info.epoch:
                    await self.node.roles.promote(
                        n, epoch=info.epoch, reason="assigned in ZooKeeper"
                    )
                    shard.replication.published = frozenset(info.in_sync)
                    self._observe_failover_time(shard, info)
                    self.node.router.changed()
                draining = info.extra.get("draining") == me
                if draining != shard.draining:
                    shard.set_draining(draining)
                    log.warning(
                        "agent %s: shard %d %s",
                        me,
                        n,
                        "draining for a switchover: new transactions get 451 until the swap"
                        if draining
                        else "no longer draining; serving",
                    )
                    if draining:
                        self._spawn(self._publish_drained(shard))
            elif me in info.spares and info.primary:
                address = self._addresses.get(
                    info.primary, ""
                )  # "": gone; a coordinator will decide
                if address and (shard.role != "spare" or shard.primary_address != address):
                    await self.node.roles.demote(
                        n, address, info.epoch, reason=f"assigned as spare of {info.primary}"
                    )
            elif shard.role == "primary" or shard.primary_address:
                await self.node.roles.demote(n, "", info.epoch, reason="not assigned to this shard")

    async def _publish_drained(self, shard) -> None:
        """Tell the coordinator, as soon as nothing is in flight, where the journal ends."""
        deadline = time.monotonic() + 10
        while shard.draining and shard.journal.committed_lsn != shard.journal.end_lsn:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)
        if shard.draining and self.connected:
            try:
                await asyncio.to_thread(
                    self.store.update_member, self.node.name, self.member_data()
                )
            except CoordinationError as e:
                log.warning("agent %s: publishing the drained lsn: %s", self.node.name, e)

    def _observe_failover_time(self, shard, info) -> None:
        started = info.extra.get("failover_started")
        if started:
            metrics.FAILOVER_SECONDS.observe(max(0.0, time.time() - float(started)))

    # -- watchdog ----------------------------------------------------------------------
    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            if self._dropped.is_set():
                await self._new_session()
            await asyncio.sleep(0.1)

    async def _new_session(self) -> None:
        """After the watchdog dropped the session: fence, start a new session, re-apply."""
        self._self_fence("the event loop stalled")
        try:
            await asyncio.to_thread(self.zk.start, 30)
        except Exception as e:  # try again on the next beat
            log.error("agent %s: no new ZooKeeper session yet: %s", self.node.name, e)
            return
        self.connected = True
        self._rewatch()  # a stopped client forgets its watches
        if await self._resync("new ZooKeeper session after the event loop stalled"):
            self._dropped.clear()
        else:
            await asyncio.to_thread(self.zk.stop)  # and again on the next beat

    def _watchdog(self) -> None:
        # As long as the session timeout: a loop stalled that long is hung, not just busy.
        limit = self.session_timeout
        while not self._stopping.wait(0.1):
            if time.monotonic() - self._heartbeat > limit and not self._dropped.is_set():
                log.critical(
                    "agent %s: event loop stalled for over %.1fs; dropping the ZooKeeper "
                    "session so that this node is failed over",
                    self.node.name,
                    limit,
                )
                try:
                    self.zk.stop()
                except Exception:
                    log.exception("agent: stopping the ZooKeeper client")
                self._dropped.set()  # only now: the loop must not start a session before this one ends

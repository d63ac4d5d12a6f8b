"""The node agent: this node's presence in ZooKeeper and its shards' assigned roles.

- Registers an ephemeral ``nodes/<name>`` znode (addresses, version, shard
  roles, epochs, lsns) and refreshes it every second; checks after a
  reconnect that the znode is still owned by its own session.
- Watches ``shards/<n>`` and makes the local role match: primary at the
  assigned epoch, spare following the assigned primary, or idle.
- Self-fences: when the connection is SUSPENDED it stops committing after
  ``fence_after`` (half the session timeout), before any coordinator can
  see the session expire and promote a replacement; LOST fences at once.
- A watchdog thread drops the ZooKeeper session when the event loop stalls
  for half the session timeout, so a hung node is failed over.
- Publishes each primary's in-sync set: a smaller set before any commit is
  answered without a spare it named (see replication/primary.py), so a
  coordinator can never promote a spare that misses an acknowledged message.

Connection listeners and watches run in kazoo's thread: they never block and
never call ZooKeeper; they hand work to the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError
from kazoo.recipe.watchers import DataWatch

from coordinator.model import CoordinationError, Store, _shard_info
from mailnode.replication.primary import NotReplicated

log = logging.getLogger(__name__)

VERSION = "0.1.0"


class Agent:
    def __init__(self, node, *, hosts: str, root: str, session_timeout: float):
        self.node = node
        self.session_timeout = session_timeout
        self.fence_after = session_timeout / 2
        self.zk = KazooClient(hosts=hosts, timeout=session_timeout,
                              connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5})
        self.store = Store(self.zk, root)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connected = False
        self._fence_timer: asyncio.TimerHandle | None = None
        self._locks = {n: asyncio.Lock() for n in node.shards}
        self._assigned: dict[int, object] = {}
        self._addresses: dict[str, str] = {}  # node name -> gRPC address, from nodes/<name>
        self._tasks: list[asyncio.Task] = []
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
        await asyncio.to_thread(self._register)
        for shard in self.node.shards.values():
            shard.replication.publish = functools.partial(self._publish_in_sync, shard)
        self._rewatch()
        self._tasks = [asyncio.create_task(self._publish_loop()), asyncio.create_task(self._beat())]
        threading.Thread(target=self._watchdog, name="agent-watchdog", daemon=True).start()
        log.info("agent %s: registered in ZooKeeper under %s", self.node.name, self.store.root)

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
            "name": self.node.name, "grpc": self.node.advertise, "smtp": cfg.smtp.listen,
            "pop3": cfg.pop3.listen, "http": cfg.http.listen, "version": VERSION, "prefer": cfg.cluster.prefer,
            "shards": {str(s.id): self._shard_data(s) for s in self.node.shards.values()},
        }

    @staticmethod
    def _shard_data(s) -> dict:
        doc = {"role": s.role, "epoch": s.epoch, "lsn": s.journal.committed_lsn,
               "in_sync": s.replication.in_sync() if s.role == "primary" else []}
        if s.draining and s.journal.committed_lsn == s.journal.end_lsn:
            doc["drained_lsn"] = s.journal.end_lsn  # nothing in flight: spares need exactly this much
        return doc

    def _register(self) -> None:
        self.store.register(self.node.name, self.member_data())

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.connected:
                continue
            try:
                if not await asyncio.to_thread(self.store.owns_member, self.node.name):
                    await asyncio.to_thread(self._register)
                else:
                    await asyncio.to_thread(self.store.update_member, self.node.name, self.member_data())
                for shard in self.node.shards.values():
                    info = self._assigned.get(shard.id)
                    if shard.role == "primary" and info is not None and info.primary == self.node.name:
                        if set(shard.replication.in_sync()) != set(info.in_sync):
                            await self._publish_in_sync(shard)
            except (CoordinationError, NoNodeError) as e:
                log.warning("agent %s: publishing state: %s", self.node.name, e)

    async def _publish_in_sync(self, shard) -> None:
        """Write the primary's in-sync set to shards/<n> (compare-and-set). Raises
        NotReplicated when it cannot: a degraded commit must not go ahead then."""
        for attempt in range(40):  # right after a failover the coordinator writes the shard too
            if attempt:
                await asyncio.sleep(0.05)
            try:
                info = await asyncio.to_thread(self.store.shard, shard.id)
                if info.primary != self.node.name or info.epoch != shard.epoch:
                    raise NotReplicated(f"shard {shard.id}: no longer primary here in ZooKeeper")
                in_sync = shard.replication.in_sync()
                if await asyncio.to_thread(self.store.update_shard, info, in_sync=in_sync):
                    shard.replication.published = frozenset(in_sync)
                    return
            except CoordinationError as e:
                raise NotReplicated(f"shard {shard.id}: cannot publish the in-sync set: {e}") from None
        raise NotReplicated(f"shard {shard.id}: the in-sync set kept changing under us")

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
            log.warning("agent %s: ZooKeeper connection suspended; self-fencing in %.1fs unless it comes back",
                        self.node.name, self.fence_after)
            self._fence_timer = self.loop.call_later(self.fence_after, self._self_fence,
                                                     "ZooKeeper connection suspended")
        elif state == KazooState.LOST:
            self.connected = False
            self._self_fence("ZooKeeper session lost")
        elif state == KazooState.CONNECTED:
            self.connected = True
            asyncio.ensure_future(self._resync("reconnected to ZooKeeper"))

    def _self_fence(self, why: str) -> None:
        for shard in self.node.shards.values():
            if shard.role == "primary":
                asyncio.ensure_future(self.node.roles.demote(shard.id, "", reason=f"self-fenced: {why}"))

    async def _resync(self, why: str) -> bool:
        try:
            await asyncio.to_thread(self._register)
            for shard in self.node.shards.values():
                info = await asyncio.to_thread(self.store.shard, shard.id)
                await self._apply(shard.id, info)
            log.info("agent %s: %s; roles re-applied", self.node.name, why)
            return True
        except (CoordinationError, NoNodeError) as e:
            log.warning("agent %s: resync after %s failed: %s", self.node.name, why, e)
            return False

    def _watch(self, n: int, data, stat) -> None:
        if data is None or self.loop is None:
            return
        info = _shard_info(n, data, stat.version)
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._apply(n, info)))

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
        except NoNodeError:
            return ""
        address = json.loads(raw).get("grpc", "")
        self._addresses[name] = address
        return address

    # -- making the local role match the assignment ---------------------------------
    async def _apply(self, n: int, info) -> None:
        async with self._locks[n]:
            self._assigned[n] = info
            if not self.connected:
                return  # never act on what may be stale
            if info.primary and info.primary != self.node.name:
                await self._address_of(info.primary)
            self.node.router.changed()
            shard, me = self.node.shards[n], self.node.name
            if info.primary == me:
                if shard.role != "primary" or shard.epoch != info.epoch:
                    await self.node.roles.promote(n, epoch=info.epoch, reason="assigned in ZooKeeper")
                    shard.replication.published = frozenset(info.in_sync)
                    self._publish_first_commit(shard, info)
                    self.node.router.changed()
                draining = info.extra.get("draining") == me
                if draining != shard.draining:
                    shard.draining = draining
                    log.warning("agent %s: shard %d %s", me, n, "draining for a switchover: new transactions "
                                "get 451 until the swap" if draining else "no longer draining; serving")
                    if draining:
                        asyncio.ensure_future(self._publish_drained(shard))
            elif me in info.spares and info.primary:
                address = self._addresses.get(info.primary, "")  # "": gone; a coordinator will decide
                if address and (shard.role != "follower" or shard.primary_address != address):
                    await self.node.roles.demote(n, address, info.epoch,
                                                 reason=f"assigned as spare of {info.primary}")
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
                await asyncio.to_thread(self.store.update_member, self.node.name, self.member_data())
            except CoordinationError as e:
                log.warning("agent %s: publishing the drained lsn: %s", self.node.name, e)

    def _publish_first_commit(self, shard, info) -> None:
        started = info.extra.get("failover_started")
        if started:
            from mailnode import metrics

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
                log.critical("agent %s: event loop stalled for over %.1fs; dropping the ZooKeeper "
                             "session so that this node is failed over", self.node.name, limit)
                try:
                    self.zk.stop()
                except Exception:
                    log.exception("agent: stopping the ZooKeeper client")
                self._dropped.set()  # only now: the loop must not start a session before this one ends

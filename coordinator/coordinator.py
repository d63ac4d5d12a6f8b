"""A coordinator: contends in a kazoo Election; the leader loops snapshot -> decide -> act.

It wakes on every change of the member list or a shard (watches) and at least
every ``loop_interval``. Each acting decision is written with compare-and-set
and appended to the history; a decision not to act is logged once.
"""

from __future__ import annotations

import logging
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from prometheus_client import Counter, Gauge

from coordinator.decide import Kind, decide
from coordinator.model import Coordination, CoordinationError

log = logging.getLogger(__name__)

LEADER = Gauge("mailcluster_coordinator_leader", "1 while this coordinator leads")
FAILOVERS = Counter("mailcluster_coordinator_failovers_total", "Automatic failovers decided")
DECISIONS = Counter("mailcluster_coordinator_decisions_total", "Decisions written", ["kind"])
PAUSED = Gauge("mailcluster_coordinator_paused", "1 while automatic failover is paused")


class Coordinator:
    def __init__(
        self,
        name: str,
        *,
        hosts: str,
        root: str,
        session_timeout: float,
        loop_interval: float = 0.5,
    ):
        self.name = name
        self.zk = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5},
        )
        self.store = Coordination(self.zk, root)
        self.loop_interval = loop_interval
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._said: dict[int, str] = {}
        self.election = None
        self.lead_sessions: list[int | None] = []  # the ZooKeeper session of each time it led
        self.zk.add_listener(lambda state: self._wake.set())  # a lost session ends the lead at once

    def run(self) -> None:
        self.zk.start(30)
        self.store.config()  # refuse to run against an uninitialised cluster
        election = self.election = self.zk.Election(self.store.path("election"), self.name)
        ChildrenWatch(self.zk, self.store.path("nodes"), lambda children: self._wake.set())
        for n in range(self.store.config()["shards"]):
            DataWatch(self.zk, self.store.path("shards", n), lambda data, stat: self._wake.set())
        while not self.stopping.is_set():
            try:
                election.run(self._lead)
            except CoordinationError as e:
                log.warning("coordinator %s: %s", self.name, e)
            except Exception:
                log.exception("coordinator %s: election", self.name)
            self.stopping.wait(0.2)
        election.cancel()
        self.zk.stop()
        self.zk.close()

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()
        if self.election is not None:
            self.election.cancel()  # a coordinator waiting for the lead stops waiting

    def _session(self) -> int | None:
        cid = self.zk.client_id
        return cid[0] if cid else None

    def _lead(self) -> None:
        # The election lock is an ephemeral node of this session: once the session is gone
        # (expired while this process was stopped, say) another coordinator may hold it,
        # even if kazoo has connected a new session meanwhile. So lead only while the
        # session that won is the current one, and contend again otherwise (F12).
        session = self._session()
        self.lead_sessions.append(session)
        LEADER.set(1)
        log.warning("coordinator %s: leading (session 0x%x)", self.name, session or 0)
        try:
            while (
                not self.stopping.is_set()
                and self.zk.state == KazooState.CONNECTED
                and self._session() == session
            ):
                self._wake.clear()
                self.cycle()
                self._wake.wait(self.loop_interval)
        finally:
            LEADER.set(0)
            log.warning("coordinator %s: no longer leading", self.name)

    def cycle(self) -> None:
        cluster = self.store.snapshot()
        PAUSED.set(1 if cluster.paused else 0)
        for d in decide(cluster, time.time()):
            if d.kind.ends_switchover:
                if d.changes is not None and not self.store.update_shard(d.info, **d.changes):
                    self._wake.set()
                    continue
                self.store.end_switchover(cluster.switchover_version)
                log.warning("coordinator %s: %s", self.name, d.sentence)
                self.store.append_history(
                    d.sentence, shard=d.shard, coordinator=self.name, kind=d.kind
                )
                continue
            if d.changes is None:
                if self._said.get(d.shard) != d.sentence:
                    log.warning("coordinator %s: %s", self.name, d.sentence)
                    self._said[d.shard] = d.sentence
                continue
            if not self.store.update_shard(d.info, **d.changes):
                log.info(
                    "coordinator %s: shard %d changed under us; deciding again", self.name, d.shard
                )
                self._wake.set()
                continue
            self._said[d.shard] = d.sentence
            DECISIONS.labels(d.kind).inc()
            if d.kind == Kind.FAILOVER:
                FAILOVERS.inc()
            log.warning("coordinator %s: %s", self.name, d.sentence)
            self.store.append_history(
                d.sentence,
                shard=d.shard,
                coordinator=self.name,
                kind=d.kind,
                epoch=d.changes.get("epoch", d.info.epoch),
            )

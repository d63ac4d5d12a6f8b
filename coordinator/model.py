"""The cluster's data in ZooKeeper, and the one module that talks to it.

Layout under the cluster root (default ``/mailcluster``), all values JSON:

    config                 {"shards": N, "domains": [...], "spares_per_shard": 1,
                            "failover_min_interval": seconds}
    nodes/<name>           ephemeral, written by the node's agent: {"name", "grpc", "smtp", "pop3",
                            "http", "version", "shards": {"<n>": {"role", "epoch", "lsn"}}}
    shards/<n>             {"primary", "spares": [...], "epoch", "in_sync": [...],
                            "last_failover", "failover_started"}; compare-and-set updates only
    election/              kazoo Election of the coordinators
    pause                  exists while automatic failover is paused
    switchover             a pending manual switchover request
    history/h-<seq>        one decision each: {"time", "sentence", ...}

kazoo exceptions become CoordinationError here; every call has a timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

CALL_TIMEOUT = 5.0


class ZnodeStat(Protocol):
    """What we read of kazoo's ZnodeStat (kazoo ships no types)."""

    @property
    def version(self) -> int: ...

    @property
    def ephemeralOwner(self) -> int: ...


class CoordinationError(Exception):
    pass


class NoNode(CoordinationError):
    """The path does not exist (kazoo's NoNodeError, translated here)."""


class NodeExists(CoordinationError):
    """The path exists already (kazoo's NodeExistsError)."""


class VersionConflict(CoordinationError):
    """A compare-and-set lost: someone wrote the node since it was read (BadVersionError)."""


class MemberHeld(CoordinationError):
    """nodes/<name> belongs to another session: our previous one, or a second node."""


@dataclass(frozen=True)
class Member:
    name: str
    grpc: str
    data: dict

    def shard(self, n: int) -> dict:
        return self.data.get("shards", {}).get(str(n), {})


@dataclass(frozen=True)
class ShardInfo:
    id: int
    primary: str
    spares: tuple[str, ...]
    epoch: int
    in_sync: tuple[str, ...]
    last_failover: float
    version: int
    extra: dict = field(default_factory=dict)

    def to_json(self, **changes) -> bytes:
        doc = {
            "primary": self.primary,
            "spares": list(self.spares),
            "epoch": self.epoch,
            "in_sync": list(self.in_sync),
            "last_failover": self.last_failover,
            **self.extra,
        }
        doc.update(changes)
        return json.dumps(
            {k: v for k, v in doc.items() if v is not None}
        ).encode()  # None deletes a key


@dataclass(frozen=True)
class Cluster:
    """One consistent-enough read of the cluster, decided on as a whole."""

    config: dict
    members: dict[str, Member]
    shards: dict[int, ShardInfo]
    paused: bool
    switchover: dict | None
    switchover_version: int


def _shard_info(n: int, raw: bytes, version: int) -> ShardInfo:
    doc = json.loads(raw or b"{}")
    known = {"primary", "spares", "epoch", "in_sync", "last_failover"}
    return ShardInfo(
        n,
        doc.get("primary", ""),
        tuple(doc.get("spares", [])),
        int(doc.get("epoch", 0)),
        tuple(doc.get("in_sync", [])),
        float(doc.get("last_failover", 0)),
        version,
        {k: v for k, v in doc.items() if k not in known},
    )


class Coordination:
    """The cluster's data in ZooKeeper under ``root`` (config, nodes, shards, history,
    switchover, pause): every call has a timeout, and kazoo's errors become
    CoordinationError (NoNode, NodeExists, VersionConflict) here."""

    def __init__(self, zk: KazooClient, root: str = "/mailcluster"):
        self.zk = zk
        self.root = root.rstrip("/")

    def path(self, *parts) -> str:
        return "/".join([self.root, *map(str, parts)])

    def _call(self, method: str, *args, **kwargs):
        try:
            return getattr(self.zk, method + "_async")(*args, **kwargs).get(timeout=CALL_TIMEOUT)
        except NoNodeError:
            raise NoNode(f"ZooKeeper {method} {args[0]}: no such node") from None
        except NodeExistsError:
            raise NodeExists(f"ZooKeeper {method} {args[0]}: exists already") from None
        except BadVersionError:
            raise VersionConflict(f"ZooKeeper {method} {args[0]}: changed meanwhile") from None
        except KazooTimeoutError:
            raise CoordinationError(
                f"ZooKeeper did not answer {method} {args[0]} within {CALL_TIMEOUT}s"
            ) from None
        except KazooException as e:
            raise CoordinationError(
                f"ZooKeeper {method} {args[0]}: {e.__class__.__name__}"
            ) from None

    def get(self, path: str) -> tuple[bytes, ZnodeStat]:
        return self._call("get", path)

    def ensure(self, path: str) -> None:
        self._call("ensure_path", path)

    def sync(self, path: str) -> None:
        """Catch this client's view up with the leader's before a read (ZooKeeper sync)."""
        self._call("sync", path)

    # -- cluster set-up ----------------------------------------------------------------
    def init(
        self,
        shards: int,
        domains: list[str],
        spares_per_shard: int = 1,
        failover_min_interval: float = 30.0,
    ) -> bool:
        """Create the cluster's znodes; False when it exists already (nothing changed)."""
        for sub in ("nodes", "shards", "history", "election"):
            self.ensure(self.path(sub))
        config = {
            "shards": shards,
            "domains": domains,
            "spares_per_shard": spares_per_shard,
            "failover_min_interval": failover_min_interval,
        }
        try:
            self._call("create", self.path("config"), json.dumps(config).encode())
        except NodeExists:
            return False
        for n in range(shards):
            try:
                self._call("create", self.path("shards", n), json.dumps({"epoch": 0}).encode())
            except NodeExists:
                pass
        return True

    def config(self) -> dict:
        try:
            return json.loads(self.get(self.path("config"))[0])
        except NoNode:
            raise CoordinationError(
                f"no cluster at {self.root}: run `mailctl init` first"
            ) from None

    # -- reading -----------------------------------------------------------------------
    def members(self) -> dict[str, Member]:
        out = {}
        for name in self._call("get_children", self.path("nodes")):
            try:
                raw, _ = self.get(self.path("nodes", name))
            except NoNode:
                continue  # vanished between the two reads
            doc = json.loads(raw)
            out[name] = Member(name, doc.get("grpc", ""), doc)
        return out

    def shard(self, n: int) -> ShardInfo:
        raw, stat = self.get(self.path("shards", n))
        return _shard_info(n, raw, stat.version)

    def snapshot(self) -> Cluster:
        config = self.config()
        shards = {n: self.shard(n) for n in range(config["shards"])}
        paused = self._call("exists", self.path("pause")) is not None
        try:
            raw, stat = self.get(self.path("switchover"))
            switchover, sw_version = json.loads(raw), stat.version
        except NoNode:
            switchover, sw_version = None, -1
        return Cluster(config, self.members(), shards, paused, switchover, sw_version)

    # -- writing -----------------------------------------------------------------------
    def update_shard(self, info: ShardInfo, **changes) -> bool:
        """Compare-and-set: False when someone else changed the shard since ``info`` was read."""
        try:
            self._call(
                "set", self.path("shards", info.id), info.to_json(**changes), version=info.version
            )
            return True
        except VersionConflict:
            return False

    def register(self, name: str, data: dict) -> None:
        """Create our ephemeral member znode; replace one left by our own earlier session."""
        path = self.path("nodes", name)
        raw = json.dumps(data).encode()
        while True:
            try:
                self._call("create", path, raw, ephemeral=True)
                return
            except NodeExists:
                try:
                    _, stat = self.get(path)
                except NoNode:
                    continue  # its session expired between the two calls: create it now
            if stat.ephemeralOwner != self.zk.client_id[0]:
                raise MemberHeld(
                    f"{path} is held by another session (a second node named {name}, or our previous "
                    "session not expired yet)"
                )
            self._call("set", path, raw)
            return

    def owns_member(self, name: str) -> bool:
        try:
            _, stat = self.get(self.path("nodes", name))
        except NoNode:
            return False
        return stat.ephemeralOwner == self.zk.client_id[0]

    def update_member(self, name: str, data: dict) -> None:
        self._call("set", self.path("nodes", name), json.dumps(data).encode())

    def append_history(self, sentence: str, **fields) -> None:
        doc = {"time": time.time(), "sentence": sentence, **fields}
        self._call("create", self.path("history", "h-"), json.dumps(doc).encode(), sequence=True)

    def history(self, limit: int = 50) -> list[dict]:
        names = sorted(self._call("get_children", self.path("history")))[-limit:]
        out = []
        for name in names:
            try:
                out.append(json.loads(self.get(self.path("history", name))[0]))
            except NoNode:
                pass
        return out

    def request_switchover(self, request: dict) -> None:
        try:
            self._call("create", self.path("switchover"), json.dumps(request).encode())
        except NodeExists:
            raise CoordinationError(
                "a switchover is already pending (see `mailctl status`)"
            ) from None

    def end_switchover(self, version: int) -> None:
        try:
            self._call("delete", self.path("switchover"), version=version)
        except (NoNode, VersionConflict):
            pass

    def set_paused(self, paused: bool) -> None:
        try:
            if paused:
                self._call("create", self.path("pause"), b"")
            else:
                self._call("delete", self.path("pause"))
        except (NodeExists, NoNode):
            pass


@contextmanager
def connect(
    hosts: str, root: str = "/mailcluster", *, timeout: float = 15.0, session_timeout: float = 10.0
) -> Iterator[Coordination]:
    """A Coordination on a session started for the with-block (within ``timeout`` seconds), always
    stopped and closed after it; kazoo errors leave as CoordinationError."""
    zk = KazooClient(hosts=hosts, timeout=session_timeout)
    try:
        try:
            zk.start(timeout)
        except (KazooTimeoutError, KazooException):
            raise CoordinationError(f"cannot reach ZooKeeper at {hosts}") from None
        try:
            yield Coordination(zk, root)
        except KazooTimeoutError:
            raise CoordinationError(f"ZooKeeper at {hosts} did not answer in time") from None
        except KazooException as e:
            raise CoordinationError(f"ZooKeeper at {hosts}: {e.__class__.__name__}") from None
    finally:
        zk.stop()
        zk.close()

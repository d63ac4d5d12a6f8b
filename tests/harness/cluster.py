"""A cluster for tests: a ZooKeeper root of its own, nodes, coordinators; the shared
ZooKeeper ensemble; `mailctl local` clusters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

from harness import DOMAIN, addresses, processes, toml
from harness.mailctl import mailctl
from harness.wait import wait_for

SESSION = 2.0


def start_ensemble(directory: str | os.PathLike, *, session: bool = False):
    """A real 3-server ZooKeeper ensemble on this run's ZooKeeper block, its logs registered."""
    from devtools.zkserver import Ensemble

    e = Ensemble(os.fspath(directory), addresses.zookeeper_ips(3))
    for s in e.servers:
        processes.register(
            f"zookeeper {s.myid} {s.host}",
            os.path.join(s.directory, "zookeeper.log"),
            product=False,
            session=session,
        )
    e.start()
    return e


class Coordinator:
    """A `mailcoordinator` process; poll/send_signal/wait/terminate as on its Popen."""

    def __init__(self, name: str, config: str, log: str):
        self.name, self.config, self.log = name, config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Coordinator:
        self.proc = processes.spawn(
            f"coordinator {self.name}",
            [sys.executable, "-m", "coordinator.cli", "--config", self.config],
            self.log,
        )
        return self

    def poll(self):
        return self.proc.poll()

    def send_signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None):
        return self.proc.wait(timeout)

    def terminate(self) -> None:
        self.proc.terminate()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


class Cluster:
    def __init__(self, ensemble, make_node, tmp_path):
        self.ensemble, self.tmp = ensemble, tmp_path
        self.root = f"/mc-{uuid.uuid4().hex[:8]}"
        self.nodes = []
        self.coordinators: list[Coordinator] = []
        self.make_node = make_node

    def mailctl(self, *args: str) -> str:
        """mailctl against this cluster's ZooKeeper root; its stdout."""
        return mailctl("--zk", self.ensemble.connect, "--root", self.root, *args, timeout=60).stdout

    def start(
        self, nodes: int = 3, coordinators: int = 2, spares: int = 1, prepare=None, **extra
    ) -> None:
        self.mailctl(
            "init",
            "--shards",
            "2",
            "--domain",
            DOMAIN,
            "--failover-min-interval",
            "5",
            "--spares",
            str(spares),
        )
        for _ in range(nodes):
            n = self.make_node(
                **{
                    "cluster.zookeeper": self.ensemble.connect,
                    "cluster.root": self.root,
                    "cluster.session_timeout": SESSION,
                    **extra,
                }
            )
            if prepare is not None:
                prepare(n)  # e.g. a cgroup to join (harness/partition.py)
            n.start()
            self.nodes.append(n)
        for i in range(coordinators):
            self.start_coordinator(f"coord{i}")
        wait_for(self.settled, 40, what="every shard with a primary and an in-sync spare")

    def start_coordinator(self, name: str) -> Coordinator:
        cfg = self.tmp / f"{name}.toml"
        toml.write(
            cfg,
            {
                "coordinator": {
                    "name": name,
                    "zookeeper": self.ensemble.connect,
                    "root": self.root,
                    "session_timeout": SESSION,
                    "loop_interval": 0.2,
                }
            },
        )
        c = Coordinator(name, str(cfg), str(self.tmp / f"{name}.log")).start()
        self.coordinators.append(c)
        return c

    def status(self) -> list[dict]:
        return json.loads(self.mailctl("status", "--json"))["members"]

    def settled(self) -> bool:
        rows = self.status()
        for shard in (0, 1):
            mine = [r for r in rows if r["shard"] == shard]
            if not any(r["role"] == "primary" and r["alive"] for r in mine):
                return False
            if not any(r["role"] == "spare" and r["alive"] and r["in_sync"] for r in mine):
                return False
        return True

    def spare_in_sync(self, node, shard: int) -> bool:
        return any(
            r["node"] == node.name and r["role"] == "spare" and r["in_sync"]
            for r in self.status()
            if r["shard"] == shard
        )

    def node(self, name: str):
        return next(n for n in self.nodes if n.name == name)

    def primary_of(self, shard: int):
        rows = [r for r in self.status() if r["shard"] == shard and r["role"] == "primary"]
        return self.node(rows[0]["node"])

    def stop(self) -> None:
        for c in self.coordinators:
            if c.poll() is None:
                c.terminate()
                c.wait(20)


class LocalCluster:
    """A `mailctl local up` cluster in a directory, on this run's local block; every log
    under the directory is registered."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = os.fspath(directory)
        self.base = addresses.block("local")
        processes.register(f"local cluster {self.dir}", self.dir, pattern="**/*.log")

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.dir, "local.json")):
            mailctl("local", "down", "--dir", self.dir, check=False)

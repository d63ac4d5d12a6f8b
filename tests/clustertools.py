"""A cluster for tests: a ZooKeeper root of its own, nodes, coordinators, mailctl."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from conftest import DOMAIN, wait_for

SESSION = 2.0


class Cluster:
    def __init__(self, ensemble, make_node, tmp_path):
        self.ensemble, self.tmp = ensemble, tmp_path
        self.root = f"/mc-{uuid.uuid4().hex[:8]}"
        self.nodes = []
        self.coordinators: list[subprocess.Popen] = []
        self.make_node = make_node

    def mailctl(self, *args: str) -> str:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailctl",
                "--zk",
                self.ensemble.connect,
                "--root",
                self.root,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

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
                prepare(n)  # e.g. a cgroup to join (tests/partition.py)
            n.start()
            self.nodes.append(n)
        for i in range(coordinators):
            self.start_coordinator(f"coord{i}")
        wait_for(self.settled, 40, what="every shard with a primary and an in-sync spare")

    def start_coordinator(self, name: str) -> None:
        cfg = self.tmp / f"{name}.toml"
        cfg.write_text(
            f'[coordinator]\nname = "{name}"\nzookeeper = "{self.ensemble.connect}"\n'
            f'root = "{self.root}"\nsession_timeout = {SESSION}\nloop_interval = 0.2\n'
        )
        log = open(self.tmp / f"{name}.log", "ab")
        self.coordinators.append(
            subprocess.Popen(
                [sys.executable, "-m", "coordinator.cli", "--config", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()

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

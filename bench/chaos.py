"""A randomized fault run against a real local cluster, under load, counting per message.

A 3-server ZooKeeper ensemble, 3 nodes (2 shards, one sync spare each, 2 s sessions),
2 coordinators, all on loopback; two senders (one mailbox per shard) that retry a
refused message like an MTA (tests/harness/partition.py). Then N faults, one at a time, each
drawn at random with its target and duration: kill -9 of a primary (restarted after a
pause, or at once, within its session), SIGSTOP of a primary or a spare, a primary cut
from ZooKeeper, a primary cut from ZooKeeper and its peers while clients reach it, the
link primary|spare cut or flapping, a coordinator or a ZooKeeper server killed, a
switchover. After each fault everything is healed and restarted and the run waits until
every shard has a primary and an in-sync spare again. At the end every mailbox is read
over POP3 and each message counted: lost (a 250, no copy), twice, stored after only
451s, and duplicates in RFC 1047's window (a connection broken after the final dot)
apart. Prints one JSON object.

    .venv/bin/python bench/chaos.py --faults 100 [--seed N] [--dir /tmp/chaos]

Needs root (iptables rules per cgroup, see tests/harness/partition.py). tests/test_chaos.py
runs a bounded version in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from harness import DOMAIN, PASSWORD  # noqa: E402
from harness.addresses import node_ip  # noqa: E402
from harness.cluster import Cluster, start_ensemble  # noqa: E402
from harness.mail import pop3_messages  # noqa: E402
from harness.node import Node  # noqa: E402
from harness.partition import Partitions, RetryingSender, stored_counters, tally  # noqa: E402
from harness.wait import wait_for  # noqa: E402

from mailnode.users import shard_of  # noqa: E402

KINDS = (
    "kill9",
    "kill9_fast_restart",
    "sigstop_primary",
    "sigstop_spare",
    "primary_cut_from_zk",
    "primary_isolated",
    "primary_spare_cut",
    "primary_spare_flapping",
    "coordinator_killed",
    "zookeeper_server_killed",
    "switchover",
)


def mailboxes() -> dict[int, str]:
    """One address per shard."""
    out: dict[int, str] = {}
    for i in range(100):
        address = f"user{i}@{DOMAIN}"
        out.setdefault(shard_of(address, 2), address)
        if len(out) == 2:
            return out
    raise AssertionError("no address for every shard")


class Chaos:
    def __init__(self, directory: Path, seed: int):
        self.dir, self.rng = directory, random.Random(seed)
        self.nodes: list[Node] = []
        self.log: list[dict] = []

    def make_node(self, **extra) -> Node:
        d = self.dir / f"node{len(self.nodes)}"
        d.mkdir()
        node = Node(str(d), node_ip(), extra)
        self.nodes.append(node)
        return node

    # -- the cluster -----------------------------------------------------------------
    def start(self) -> None:
        (self.dir / "cluster.secret").write_text("chaos-cluster-secret-0123456789\n")
        self.ensemble = start_ensemble(self.dir / "zk")
        self.net = Partitions()
        self.cluster = Cluster(self.ensemble, self.make_node, self.dir)
        self.cluster.start(prepare=self.net.adopt)
        self.boxes = mailboxes()
        for shard, address in self.boxes.items():
            self.cluster.primary_of(shard).add_user(address)
        servers = [n.smtp for n in self.nodes]
        self.senders = {
            shard: RetryingSender(servers, address, f"c{shard}", workers=4, timeout=45)
            for shard, address in self.boxes.items()
        }
        for s in self.senders.values():
            s.start(retry_for=240)

    def stop(self) -> None:
        try:
            self.net.remove()
        finally:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is None:
                    n.signal(signal.SIGCONT)
                n.stop()
            self.cluster.stop()
            self.ensemble.stop()

    def rows(self, shard: int) -> list[dict]:
        return [r for r in self.cluster.status() if r["shard"] == shard]

    def settled(self) -> bool:
        if any(n.proc.poll() is not None for n in self.nodes):
            return False
        return self.cluster.settled()

    def primary(self, shard: int) -> Node:
        return self.cluster.primary_of(shard)

    def spare(self, shard: int) -> Node | None:
        for r in self.rows(shard):
            if r["role"] == "spare" and r["alive"] and r["in_sync"]:
                return self.cluster.node(r["node"])
        return None

    # -- faults ----------------------------------------------------------------------
    def fault(self, kind: str) -> dict:
        shard = self.rng.choice(sorted(self.boxes))
        p = self.primary(shard)
        hold = round(self.rng.uniform(0.5, 4.0), 2)
        record = {"kind": kind, "shard": shard, "target": p.name, "hold_s": hold}
        others = [n for n in self.nodes if n is not p]
        if kind == "kill9":
            p.kill9()
            time.sleep(hold)  # the fault's length, not synchronisation
            p.start()
        elif kind == "kill9_fast_restart":
            p.kill9()
            p.start()
        elif kind in ("sigstop_primary", "sigstop_spare"):
            target = p if kind == "sigstop_primary" else (self.spare(shard) or others[0])
            record["target"] = target.name
            target.signal(signal.SIGSTOP)
            try:
                time.sleep(hold)
            finally:
                target.signal(signal.SIGCONT)
        elif kind == "primary_cut_from_zk":
            self.net.cut_from_zookeeper(p, self.ensemble)
            time.sleep(hold + 2)
            self.net.heal()
        elif kind == "primary_isolated":
            self.net.cut_from_zookeeper(p, self.ensemble)
            for o in others:
                self.net.cut(p, o)
            time.sleep(hold + 2)
            self.net.heal()
        elif kind == "primary_spare_cut":
            s = self.spare(shard) or others[0]
            record["target"] = f"{p.name}|{s.name}"
            self.net.cut(p, s)
            time.sleep(hold)
            self.net.heal()
        elif kind == "primary_spare_flapping":
            s = self.spare(shard) or others[0]
            record["target"] = f"{p.name}|{s.name}"
            for _ in range(self.rng.randint(4, 12)):
                self.net.cut(p, s)
                time.sleep(self.rng.uniform(0.1, 0.5))
                self.net.heal()
                time.sleep(self.rng.uniform(0.1, 0.5))
        elif kind == "coordinator_killed":
            i = self.rng.randrange(len(self.cluster.coordinators))
            record["target"] = f"coord{i}"
            c = self.cluster.coordinators[i]
            c.send_signal(signal.SIGKILL)
            c.wait(10)
            time.sleep(hold)
            self.restart_coordinator(i)
        elif kind == "zookeeper_server_killed":
            victim = self.rng.choice(self.ensemble.servers)
            record["target"] = f"zk{victim.myid}"
            victim.stop(signal.SIGKILL)
            time.sleep(hold)
            victim.start(self.ensemble.servers, self.ensemble.tick_ms)
            wait_for(victim.ok, 30, what="the ZooKeeper server back")
        elif kind == "switchover":
            s = self.spare(shard)
            if s is None:
                record["skipped"] = "no in-sync spare"
            else:
                record["target"] = f"{p.name}->{s.name}"
                r = subprocess.run(
                    [
                        os.path.join(ROOT, "failover-scripts", "switchover"),
                        "--zk",
                        self.ensemble.connect,
                        "--root",
                        self.cluster.root,
                        "--shard",
                        str(shard),
                        "--to",
                        s.name,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                record["switchover_rc"] = r.returncode
        return record

    def restart_coordinator(self, i: int) -> None:
        self.cluster.coordinators[i].start()  # the same config and log

    def heal_all(self) -> None:
        self.net.heal()
        for n in self.nodes:
            if n.proc.poll() is not None:
                n.start()
        for i, c in enumerate(self.cluster.coordinators):
            if c.poll() is not None:
                self.restart_coordinator(i)

    # -- the run ---------------------------------------------------------------------
    def run(self, faults: int, max_seconds: float) -> dict:
        t0 = time.monotonic()
        wait_for(
            lambda: all(s.acknowledged() >= 50 for s in self.senders.values()), 60, what="load"
        )
        for i in range(faults):
            if time.monotonic() - t0 > max_seconds:
                break
            kind = self.rng.choice(KINDS)
            started = time.monotonic()
            record = self.fault(kind)
            self.heal_all()
            wait_for(
                self.settled,
                120,
                interval=0.2,
                what=f"the cluster settled after fault {i} ({kind})",
            )
            record["settled_after_s"] = round(time.monotonic() - started, 2)
            record["index"] = i
            self.log.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
        for s in self.senders.values():
            s.stop(300)
        wait_for(self.settled, 120, interval=0.2, what="the cluster settled at the end")
        result = {
            "faults": len(self.log),
            "kinds": {k: sum(r["kind"] == k for r in self.log) for k in KINDS},
            "seconds": round(time.monotonic() - t0, 1),
            "shards": {},
        }
        for shard, address in self.boxes.items():
            stored = stored_counters(
                pop3_messages(self.primary(shard).pop3, address, PASSWORD), f"c{shard}"
            )
            t = tally(self.senders[shard], stored)
            result["shards"][shard] = {
                k: (v if isinstance(v, int) else len(v)) for k, v in t.items()
            }
            result["shards"][shard]["examples"] = {
                k: t[k][:10] for k in ("lost", "twice", "after_451") if t[k]
            }
        for k in ("acknowledged", "lost", "twice", "after_451", "rfc1047", "given_up"):
            result[k] = sum(s[k] for s in result["shards"].values())
        return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faults", type=int, default=20)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--dir", help="working directory (default: a new temporary one, removed after a clean run)"
    )
    p.add_argument("--max-seconds", type=float, default=3600)
    o = p.parse_args(argv)
    seed = o.seed if o.seed is not None else random.SystemRandom().randrange(1 << 30)
    directory = Path(o.dir or tempfile.mkdtemp(prefix="chaos-"))
    directory.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(directory, seed)
    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit(143)
    )  # clean up (rules, cgroups, processes) on kill
    try:
        chaos.start()
        result = chaos.run(o.faults, o.max_seconds)
    finally:
        chaos.stop()
    result["seed"], result["dir"] = seed, str(directory)
    print(json.dumps(result, indent=1))
    ok = not (result["lost"] or result["twice"] or result["after_451"] or result["given_up"])
    if ok and not o.dir:
        shutil.rmtree(directory, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

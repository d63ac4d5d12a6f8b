"""A ZooKeeper ensemble on loopback from the system's ZooKeeper (Debian: `zookeeper`).

Used by ``mailctl local up`` and by the tests (kazoo's own harness fails with
current pyOpenSSL). Each server gets a data directory with its ``myid`` and a
``zoo.cfg``; ``start`` returns once every server answers ``ruok``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

JAR = "/usr/share/java/zookeeper.jar"
CLIENT_PORT, PEER_PORT, ELECTION_PORT = 2181, 2888, 3888


class ZooKeeperError(Exception):
    pass


@dataclass
class ZkServer:
    myid: int
    host: str
    directory: str
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{CLIENT_PORT}"

    def config(self, peers: list[ZkServer], tick_ms: int) -> str:
        lines = [
            f"tickTime={tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.directory}",
            f"clientPort={CLIENT_PORT}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,mntr",
            "maxSessionTimeout=60000",
            f"minSessionTimeout={2 * tick_ms}",
        ]
        if len(peers) > 1:
            lines += [f"server.{p.myid}={p.host}:{PEER_PORT}:{ELECTION_PORT}" for p in peers]
        return "\n".join(lines) + "\n"

    def start(self, peers: list[ZkServer], tick_ms: int) -> subprocess.Popen:
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "myid"), "w") as f:
            f.write(f"{self.myid}\n")
        cfg = os.path.join(self.directory, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(self.config(peers, tick_ms))
        env = dict(os.environ, ZOO_LOG_DIR=self.directory)
        with open(os.path.join(self.directory, "zookeeper.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "java",
                    "-Xmx256m",
                    "-Dzookeeper.log.dir=" + self.directory,
                    "-cp",
                    f"{JAR}:/usr/share/java/*",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    cfg,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return self.proc

    def ok(self) -> bool:
        """True when the server answers and serves (a quorum member or standalone)."""
        try:
            with socket.create_connection((self.host, CLIENT_PORT), timeout=1) as s:
                s.sendall(b"srvr")
                reply = s.recv(4096)
        except OSError:
            return False
        return b"Mode: " in reply

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def check_installed() -> None:
    if not os.path.exists(JAR):
        raise ZooKeeperError(
            f"{JAR} not found: install ZooKeeper with `apt-get install -y zookeeper`"
        )


class Ensemble:
    def __init__(self, directory: str, hosts: list[str], tick_ms: int = 250):
        self.servers = [
            ZkServer(i + 1, h, os.path.join(directory, f"zk{i + 1}")) for i, h in enumerate(hosts)
        ]
        self.tick_ms = tick_ms

    @property
    def connect(self) -> str:
        return ",".join(s.address for s in self.servers)

    def start(self, timeout: float = 60.0) -> None:
        check_installed()
        for s in self.servers:
            s.start(self.servers, self.tick_ms)
        deadline = time.monotonic() + timeout
        while not all(s.ok() for s in self.servers):
            for s in self.servers:
                if s.proc is not None and s.proc.poll() is not None:
                    raise ZooKeeperError(
                        f"ZooKeeper server {s.myid} exited; see {s.directory}/zookeeper.log"
                    )
            if time.monotonic() > deadline:
                raise ZooKeeperError(
                    f"ZooKeeper ensemble {self.connect} not serving after {timeout:.0f}s"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

"""Fixtures: real mail node processes on loopback, with their logs dumped on failure."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "example.test"
PASSWORD = "correct horse"


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


_ips = itertools.count()


def loopback_ip() -> str:
    """A fresh 127.x.y.z per node, so fixed ports never collide between tests or runs."""
    n = next(_ips)
    return f"127.{200 + os.getpid() % 50}.{(os.getpid() // 50) % 250}.{10 + n % 240}"


def toml_value(v) -> str:
    if isinstance(v, dict):  # an inline table; JSON's object syntax is not TOML
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


@dataclass
class Node:
    directory: str
    ip: str
    extra: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # A cgroup v2 directory the process joins before it runs (tests/partition.py): a
    # socket belongs to the cgroup its creator was in, so this must precede any socket.
    cgroup: str | None = None

    @property
    def config(self) -> str:
        return os.path.join(self.directory, "node.toml")

    @property
    def log(self) -> str:
        return os.path.join(self.directory, "node.log")

    @property
    def data_dir(self) -> str:
        return os.path.join(self.directory, "data")

    name = property(lambda self: os.path.basename(self.directory))
    grpc = property(lambda self: f"{self.ip}:7070")
    smtp = property(lambda self: (self.ip, 2525))
    pop3 = property(lambda self: (self.ip, 1110))
    http = property(lambda self: f"{self.ip}:8080")
    submission = property(lambda self: (self.ip, 5870))
    submission_tls = property(lambda self: (self.ip, 4650))

    def journal_dir(self, shard: int = 0) -> str:
        return os.path.join(self.data_dir, "shards", str(shard), "journal")

    def write_config(self) -> None:
        sections = {
            "node": {
                "name": self.name,
                "data_dir": "data",
                "hostname": "mx.example.test",
                "domains": [DOMAIN],
                "shards": 2,
            },
            "smtp": {"listen": f"{self.ip}:2525", "max_message_size": 1_000_000},
            "pop3": {"listen": f"{self.ip}:1110", "auth_failure_delay": 0.3},
            "http": {"listen": f"{self.ip}:8080"},
            "grpc": {"listen": f"{self.ip}:7070"},
            "store": {"checkpoint_interval": 1.0},
            "replication": {
                "secret_file": os.path.join(os.path.dirname(self.directory), "cluster.secret")
            },
        }
        for key, value in self.extra.items():
            section, _, name = key.partition(".")
            if isinstance(value, str):
                value = value.replace("{ip}", self.ip)  # per-node listeners in shared settings
            sections.setdefault(section, {})[name] = value
        lines = []
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, wait: bool = True) -> None:
        self.write_config()
        log = open(self.log, "ab")
        argv = [sys.executable, "-m", "mailnode.cli", "--config", self.config]
        if self.cgroup:  # join, then exec (same pid); no preexec_fn: tests run threads
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup, *argv]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        if wait:
            wait_for(self._ready, 30, what=f"node at {self.ip} to be healthy")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"node exited with {self.proc.returncode}:\n{self.read_log()[-3000:]}"
            )
        return self.health() is not None

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://{self.http}/health", timeout=2) as r:
                return json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=5) as r:
            return r.read().decode()

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def shards(self) -> dict:
        return self.health()["shards"]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def mailctl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [sys.executable, "-m", "mailctl", "--config", self.config, *args],
            capture_output=True,
            text=True,
            timeout=60,
            input=input,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"mailctl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.mailctl("user", "add", address, "--password", password)

    def read_log(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def make_node(tmp_path, request):
    nodes: list[Node] = []

    secret = tmp_path / "cluster.secret"
    if not secret.exists():
        secret.write_text("test-cluster-secret-0123456789\n")

    def make(**extra) -> Node:
        d = tmp_path / f"node{len(nodes)}"
        d.mkdir()
        node = Node(str(d), loopback_ip(), extra)
        nodes.append(node)
        return node

    yield make
    failed = any(
        getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed
        for w in ("setup", "call")
    )
    for node in nodes:
        node.stop()
        if failed:
            sys.stderr.write(
                f"\n----- log of node {node.ip} ({node.log}) -----\n{node.read_log()[-20000:]}\n"
            )


@pytest.fixture
def node(make_node):
    """A running node with two shards and users alice and bob."""
    n = make_node()
    n.start()
    n.add_user(f"alice@{DOMAIN}")
    n.add_user(f"bob@{DOMAIN}")
    return n


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory):
    """A real 3-server ZooKeeper ensemble on loopback, shared by the cluster tests."""
    from coordinator.zkserver import Ensemble

    block = f"127.{240 + os.getpid() % 10}.{os.getpid() // 10 % 250}"
    e = Ensemble(str(tmp_path_factory.mktemp("zk")), [f"{block}.{i}" for i in (1, 2, 3)])
    e.start()
    yield e
    e.stop()


@pytest.fixture
def cluster(ensemble, make_node, tmp_path):
    from clustertools import Cluster

    c = Cluster(ensemble, make_node, tmp_path)
    yield c
    c.stop()

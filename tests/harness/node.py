"""Node: a real `mailnode` process on a loopback address of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from harness import DOMAIN, PASSWORD, processes, toml
from harness.mailctl import mailctl
from harness.wait import wait_for


@dataclass
class Node:
    directory: str
    ip: str
    extra: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # A cgroup v2 directory the process joins before it runs (harness/partition.py): a
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
    imap = property(lambda self: (self.ip, 1143))
    imaps = property(lambda self: (self.ip, 1993))
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
            "imap": {"listen": f"{self.ip}:1143", "auth_failure_delay": 0.3},
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
        toml.write(self.config, sections)

    def start(self, wait: bool = True) -> None:
        self.write_config()
        argv = [sys.executable, "-m", "mailnode.cli", "--config", self.config]
        if self.cgroup:  # join, then exec (same pid); no preexec_fn: tests run threads
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup, *argv]
        self.proc = processes.spawn(
            f"node {self.name} {self.ip}", argv, self.log, cwd=self.directory
        )
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
        """mailctl against this node's config."""
        return mailctl("--config", self.config, *args, check=check, input=input, timeout=60)

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.mailctl("user", "add", address, "--password", password)

    def read_log(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

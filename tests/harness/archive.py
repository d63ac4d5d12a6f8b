"""Archive: a `mailnode archive` process on its own loopback address, with mTLS; and
what tests ask of one (everything shipped, a node restored from it)."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request

from harness import addresses, processes, toml
from harness.wait import wait_for


class Archive:
    """A `mailnode archive` process on its own loopback address, with mTLS."""

    def __init__(self, directory, certs: dict | None):
        self.dir = directory
        self.ip = addresses.node_ip()
        self.address = f"{self.ip}:7171"
        self.certs = certs
        self.proc = None
        settings = {
            "name": "archive",
            "data_dir": "data",
            "listen": self.address,
            "http": f"{self.ip}:8181",
            "segment_size": 65536,
        }
        if certs:
            settings.update(
                {
                    "tls_ca": certs["ca"][0],
                    "tls_cert": certs["archive"][0],
                    "tls_key": certs["archive"][1],
                }
            )
        toml.write(directory / "archive.toml", {"archive": settings})

    @property
    def log(self):
        return self.dir / "archive.log"

    def start(self) -> None:
        self.proc = processes.spawn(
            f"archive {self.ip}",
            [
                sys.executable,
                "-m",
                "mailnode.cli",
                "archive",
                "--config",
                str(self.dir / "archive.toml"),
            ],
            self.log,
        )
        wait_for(self.healthy, 20, what="the archive to serve")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"archive exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.ip}:8181/health", timeout=2) as r:
                return json.load(r)["status"] == "ok"
        except OSError:
            return False

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def node_settings(self, **extra) -> dict:
        s = {"archive.address": self.address, **extra}
        if self.certs:
            s.update(
                {
                    "archive.tls_ca": self.certs["ca"][0],
                    "archive.tls_cert": self.certs["node"][0],
                    "archive.tls_key": self.certs["node"][1],
                }
            )
        return s

    def end_lsn(self, node, shard: int) -> int:
        rows = json.loads(node.mailctl("archive", "status", "--json").stdout)
        return next((r["end_lsn"] for r in rows if r["shard"] == shard), 0)


def shipped_all(archive, node, shard: int) -> bool:
    return archive.end_lsn(node, shard) == node.shards()[str(shard)]["committed_lsn"]


def restored_node(make_node, archive, *args: str, shards: int = 2):
    """A new node whose data directory is rebuilt from the archive (mailctl restore), started."""
    node = make_node(**archive.node_settings())
    node.write_config()
    r = node.mailctl("restore", *args)
    assert "replays the journal" in r.stdout, r.stdout
    node.start()
    return node

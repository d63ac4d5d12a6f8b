"""The one loopback allocation: every address a test listens on comes from here.

A run owns blocks of 127.0.0.0/8 derived from its pid, so fixed ports never collide
between tests, nor between runs side by side:

    node_ip()          127.{200..249}.x.{10..249}: one fresh address per process or
                       server of its own (node, archive, remote MX, DNS server)
    block("local")     127.{150..199}.x: the prefix for `mailctl local up --base-address`
    block("zookeeper") 127.{240..249}.x: ZooKeeper servers (see zookeeper_ips)
"""

from __future__ import annotations

import itertools
import os

# kind -> (first second octet, how many second octets the kind spreads over)
_BLOCKS = {"node": (200, 50), "local": (150, 50), "zookeeper": (240, 10)}

_node_ips = itertools.count()
_zookeeper_sets = itertools.count()


def block(kind: str) -> str:
    """This run's 127.a.b prefix for a kind of address: "node", "local" or "zookeeper"."""
    first, spread = _BLOCKS[kind]
    pid = os.getpid()
    return f"127.{first + pid % spread}.{pid // spread % 250}"


def node_ip() -> str:
    """A fresh 127.x.y.z per node (or other single server), never handed out twice in a run."""
    n = next(_node_ips)
    return f"{block('node')}.{10 + n % 240}"


def zookeeper_ips(servers: int = 3) -> list[str]:
    """Addresses for one ZooKeeper ensemble (.1-.3 for the first, then .4-.6, ...)."""
    k = next(_zookeeper_sets)
    return [f"{block('zookeeper')}.{k * servers + i}" for i in range(1, servers + 1)]

"""Which node, admin service, ZooKeeper ensemble or archive a command talks to.

Everything here reads the common options and returns what it found; nothing is
stored back into ``args``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from coordinator.model import connect
from devtools import localcluster
from mailctl.common import CliError
from mailctl.restore import archive_channel
from mailnode import config as configmod
from mailnode.admin.client import AdminClient
from mailnode.users import shard_of
from mailnode.wire import SecretFileError, read_secret, token_path


class Node(NamedTuple):
    name: str
    grpc: str  # the admin service's address
    data_dir: str  # where its admin token is


def cluster_dir(args) -> str | None:
    return args.dir or os.environ.get("MAILCLUSTER_DIR")


def node_targets(args) -> list[Node]:
    """The nodes named by --dir (every node of a local cluster) or --config (that node)."""
    if args.config:
        cfg = configmod.load(args.config)
        return [Node(cfg.node.name, cfg.grpc.listen, cfg.node.data_dir)]
    directory = cluster_dir(args)
    if not directory:
        raise CliError("say which cluster: --dir DIR (a local cluster) or --config node.toml")
    state = localcluster.load_state(directory)
    if state is None:
        raise CliError(
            f"{directory}: no local cluster here (no local.json); run `mailctl local up --dir {directory}`"
        )
    return [Node(n["name"], n["grpc"], n["data_dir"]) for n in state["nodes"]]


def node_target(args, name: str | None = None) -> Node:
    """The node called ``name``, or the first one named by --dir/--config."""
    targets = node_targets(args)
    if name:
        targets = [t for t in targets if t.name == name]
        if not targets:
            raise CliError(f"no node named {name}")
    return targets[0]


def admin_for(node: Node) -> AdminClient:
    """A client of the node's admin service, with the token from its data directory."""
    try:
        token = read_secret(token_path(node.data_dir))
    except SecretFileError as e:
        raise CliError(f"cannot read the admin token {e}") from None
    return AdminClient(node.grpc, token)


def zk_target(args) -> tuple[str, str] | None:
    """(ensemble, root) from --zk, or from the local cluster's map, or None (standalone)."""
    if args.zk:
        return args.zk, args.root
    directory = cluster_dir(args)
    state = localcluster.load_state(directory) if directory else None
    if state and state.get("zookeeper"):
        return state["zookeeper"], state.get("root", "/mailcluster")
    return None


def zookeeper(target: tuple[str, str]):
    """``with zookeeper(target) as store``: the cluster's Coordination on a session of its own."""
    return connect(*target, timeout=15)


def primary_node(target: tuple[str, str], address: str) -> str:
    """The node that is primary of the address's shard: user changes are its journal records."""
    with zookeeper(target) as store:
        cluster = store.snapshot()
    return _live_primary(cluster, shard_of(address, cluster.config["shards"]), f" of {address}")


def shard_primaries(target: tuple[str, str]) -> dict[int, str]:
    """shard id -> its primary node, for every shard (one look at the map)."""
    with zookeeper(target) as store:
        cluster = store.snapshot()
    return {n: _live_primary(cluster, n) for n in range(cluster.config["shards"])}


def _live_primary(cluster, n: int, of: str = "") -> str:
    info = cluster.shards.get(n)
    if info is None or info.primary not in cluster.members:
        raise CliError(f"shard {n}{of} has no live primary right now; try again shortly")
    return info.primary


def archive_target(args, address: str | None):
    """A channel to the archive: ``address`` (--archive), else the [archive] section of the
    node's configuration (--config, or a local cluster's first node)."""
    config = args.config
    directory = cluster_dir(args)
    if not config and directory:  # a local cluster: its nodes' [archive] settings
        state = localcluster.load_state(directory)
        config = state["nodes"][0].get("config") if state else None
    cfg = configmod.load(config) if config else None
    address = address or (cfg.archive.address if cfg else "")
    if not address:
        raise CliError(
            "say which archive: --archive HOST:PORT, or a --config whose [archive] address is set"
        )
    tls, name = None, "archive"
    if cfg is not None and cfg.archive.tls_ca:
        tls, name = (
            (cfg.archive.tls_ca, cfg.archive.tls_cert, cfg.archive.tls_key),
            cfg.archive.server_name,
        )
    return archive_channel(address, tls, name)

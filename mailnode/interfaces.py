"""What the node's components need of each other, as narrow structural types.

Components take one of these instead of "the node", so a reader sees what each
one uses, mypy checks that ``Node`` provides it, and a unit test can pass a
small stand-in. ``Node`` (mailnode/node.py) is the one place that wires them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailnode.cluster.router import Router
    from mailnode.config import Config
    from mailnode.frontend.imap import ImapFrontEnd
    from mailnode.frontend.pop3 import Mailboxes
    from mailnode.replication.roles import RoleManager
    from mailnode.shard import Shard


class ClusterView(Protocol):
    """The node's view of the cluster: the ZooKeeper agent, or ``Standalone``."""

    clustered: bool  # the one place that says whether this node is in a cluster
    connected: bool

    def primary_address(self, n: int) -> str | None: ...
    def assigned_spares(self, n: int) -> list[str] | None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class ShardMap(Protocol):
    """This node: its name, its shards, which shard holds an address, and the secret
    its node-to-node calls carry."""

    name: str
    shards: dict[int, Shard]
    domains: frozenset[str]
    cluster_secret: str
    cluster_metadata: tuple[tuple[str, str], ...]

    def shard_id(self, address: str) -> int: ...
    def shard_for(self, address: str) -> Shard: ...
    def user_exists(self, address: str) -> bool: ...


class Peer(ShardMap, Protocol):
    """What node-to-node code (replication, roles, shipping, the agent) uses."""

    config: Config
    advertise: str
    agent: ClusterView
    roles: RoleManager


class AgentNode(Peer, Protocol):
    """What the ZooKeeper agent uses: a Peer, and the router it tells of a moved primary."""

    router: Router


class FrontEnd(ShardMap, Protocol):
    """What the SMTP, submission, POP3, IMAP and delivery code uses."""

    config: Config
    hostname: str
    agent: ClusterView
    router: Router
    mailboxes: Mailboxes
    imap: ImapFrontEnd

"""Where a recipient's mail goes: this cluster (another shard), a transport-map
next hop or smarthost, or the domain's MX hosts (dnspython; A/AAAA fallback)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from mailnode.config import parse_address
from mailnode.interfaces import ShardMap

log = logging.getLogger(__name__)


class RouteError(Exception):
    """No next hop: ``permanent`` bounces (the domain does not exist), otherwise defer."""

    def __init__(self, reply: str, permanent: bool):
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent


@dataclass(frozen=True)
class Destination:
    """A group of recipients that share one delivery attempt."""

    kind: str  # "cluster" (a mailbox of another shard), "relay" (a fixed next hop) or "mx"
    key: str  # the domain or the next hop "host:port": concurrency is limited per key
    shard: int = -1
    hop: tuple[str, int] | None = None


def _dns_server(value: str) -> tuple[str, int]:
    """host[:port]: an IPv4 address or name with an optional port, a bare IPv6 address,
    or [IPv6]:port; port 53 when none is given."""
    if value.startswith("[") and value.endswith("]"):
        return value[1:-1], 53
    if value.startswith("[") or value.count(":") == 1:
        return parse_address(value, "[delivery] dns_servers")
    return value, 53  # no colon, or several (an IPv6 address without a port)


class NextHops:
    def __init__(self, node: ShardMap, cfg):
        self.node = node
        self.mx_port = cfg.mx_port
        # Fixed next hops ("host:port", never an MX lookup); config.py has checked them and
        # lower-cased the domains.
        self.smarthost = (
            parse_address(cfg.smarthost, "[delivery] smarthost") if cfg.smarthost else None
        )
        self.transport = {
            domain: parse_address(hop, f"[delivery] transport {domain!r}")
            for domain, hop in cfg.transport.items()
        }
        self.resolver = dns.asyncresolver.Resolver(configure=not cfg.dns_servers)
        if cfg.dns_servers:
            host, port = _dns_server(cfg.dns_servers[0])
            self.resolver.nameservers = [host]
            self.resolver.port = port
        self.resolver.lifetime = cfg.dns_timeout

    def destination(self, rcpt: str) -> Destination:
        domain = rcpt.rpartition("@")[2].lower()
        if domain in self.node.domains:
            return Destination(
                "cluster", f"shard {self.node.shard_id(rcpt)}", self.node.shard_id(rcpt)
            )
        hop = self.transport.get(domain) or self.transport.get("*") or self.smarthost
        if hop is not None:
            return Destination("relay", f"{hop[0]}:{hop[1]}", hop=hop)
        return Destination("mx", domain)

    async def hosts(self, dest: Destination) -> list[tuple[str, int, str]]:
        """Next hops to try in order, as (address, port, name); RouteError when there are none."""
        if dest.hop is not None:
            return [(dest.hop[0], dest.hop[1], dest.hop[0])]
        domain = dest.key
        try:
            answer = await self.resolver.resolve(domain, "MX")
            mxs = sorted(answer, key=lambda r: r.preference)
            names = [str(r.exchange).rstrip(".") for r in mxs]
            if names == [""]:  # RFC 7505 null MX: the domain accepts no mail
                raise RouteError(
                    f"550 5.1.10 {domain} does not accept mail (null MX)", permanent=True
                )
        except dns.resolver.NXDOMAIN:
            raise RouteError(f"550 5.1.2 {domain}: domain not found", permanent=True) from None
        except dns.resolver.NoAnswer:
            names = [domain]  # RFC 5321 5.1: no MX, the domain itself (A/AAAA)
        except dns.exception.DNSException as e:
            raise RouteError(
                f"451 4.4.3 {domain}: MX lookup failed: {e.__class__.__name__}", permanent=False
            ) from None
        hosts: list[tuple[str, int, str]] = []
        for name in names:
            hosts.extend((addr, self.mx_port, name) for addr in await self._addresses(name))
        if not hosts:
            raise RouteError(
                f"451 4.4.4 {domain}: no address for its mail hosts {', '.join(names)}",
                permanent=False,
            )
        return hosts

    async def _addresses(self, name: str) -> list[str]:
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(name, rdtype)
                out.extend(r.address for r in answer)
            except dns.exception.DNSException:
                continue
        if not out:  # a literal address as exchange, or /etc/hosts in a resolver-less setup
            try:
                socket.inet_pton(socket.AF_INET, name)
                out.append(name)
            except OSError:
                pass
        return out

"""Next-hop selection (mailnode/delivery/routes.py): the cluster's own domains, the
transport map and smarthost, and MX lookups answered by a fake resolver (no network)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import dns.exception
import dns.name
import dns.resolver
import pytest

from mailnode.delivery.routes import Destination, NextHops, RouteError

HOSTED = "example.test"


class FakeNode:
    domains = frozenset({HOSTED, "other.test"})

    def shard_id(self, address: str) -> int:
        return len(address.partition("@")[0]) % 4


class FakeResolver:
    """Answers from a table: (name, rdtype) -> records, or an exception to raise.
    Anything not in the table is NXDOMAIN, like a real resolver for an unknown name."""

    def __init__(self, table: dict):
        self.table = table
        self.asked: list[tuple[str, str]] = []

    async def resolve(self, name, rdtype):
        self.asked.append((name, rdtype))
        answer = self.table.get((name, rdtype), dns.resolver.NXDOMAIN())
        if isinstance(answer, Exception):
            raise answer
        return answer


def mx(preference: int, exchange: str):
    name = dns.name.root if exchange == "." else dns.name.from_text(exchange)
    return SimpleNamespace(preference=preference, exchange=name)


def a(*addresses):
    return [SimpleNamespace(address=x) for x in addresses]


def config(**kw):
    values = {
        "mx_port": 2525,
        "smarthost": "",
        "transport": {},
        "dns_servers": ["192.0.2.53"],  # never /etc/resolv.conf: nothing here may depend on it
        "dns_timeout": 3.0,
    }
    values.update(kw)
    return SimpleNamespace(**values)


def router(table=None, **kw) -> NextHops:
    r = NextHops(FakeNode(), config(**kw))
    r.resolver = FakeResolver(table or {})
    return r


def hosts(r: NextHops, rcpt: str):
    return asyncio.run(r.hosts(r.destination(rcpt)))


def refusal(r: NextHops, rcpt: str) -> RouteError:
    with pytest.raises(RouteError) as e:
        hosts(r, rcpt)
    return e.value


# -- destination ----------------------------------------------------------------------------


def test_a_hosted_domain_goes_to_the_recipients_shard_in_this_cluster():
    d = router().destination("abc@Example.TEST")
    assert d == Destination("cluster", "shard 3", 3)


def test_the_cluster_wins_over_a_transport_entry_and_the_smarthost():
    r = router(transport={HOSTED: "relay.example:25"}, smarthost="smart.example:587")
    assert r.destination("ab@example.test").kind == "cluster"


def test_a_transport_entry_names_the_next_hop_of_its_domain():
    r = router(transport={"remote.example": "relay.example:2526"}, smarthost="smart.example:587")
    assert r.destination("x@REMOTE.example") == Destination(
        "relay", "relay.example:2526", hop=("relay.example", 2526)
    )


def test_the_wildcard_transport_entry_comes_before_the_smarthost():
    r = router(transport={"*": "star.example:26"}, smarthost="smart.example:587")
    assert r.destination("x@elsewhere.example").hop == ("star.example", 26)


def test_a_specific_transport_entry_beats_the_wildcard():
    r = router(transport={"*": "star.example:26", "remote.example": "relay.example:27"})
    assert r.destination("x@remote.example").hop == ("relay.example", 27)
    assert r.destination("x@other.example").hop == ("star.example", 26)


def test_the_smarthost_takes_all_other_remote_mail():
    r = router(transport={"remote.example": "relay.example:27"}, smarthost="[2001:db8::1]:587")
    assert r.destination("x@far.example") == Destination(
        "relay", "2001:db8::1:587", hop=("2001:db8::1", 587)
    )


def test_without_a_fixed_hop_the_domain_is_looked_up_by_mx():
    assert router().destination("x@Far.Example") == Destination("mx", "far.example")


def test_a_fixed_hop_is_used_without_any_lookup():
    r = router(smarthost="smart.example:587")
    assert hosts(r, "x@far.example") == [("smart.example", 587, "smart.example")]
    assert r.resolver.asked == []


# -- MX lookups ----------------------------------------------------------------------------


def test_mx_hosts_are_tried_in_preference_order_with_all_their_addresses():
    r = router(
        {
            ("far.example", "MX"): [mx(20, "b.far.example"), mx(5, "a.far.example")],
            ("a.far.example", "A"): a("192.0.2.1", "192.0.2.2"),
            ("a.far.example", "AAAA"): a("2001:db8::a"),
            ("b.far.example", "A"): a("192.0.2.20"),
            ("b.far.example", "AAAA"): dns.resolver.NoAnswer(),
        }
    )
    assert hosts(r, "x@far.example") == [
        ("192.0.2.1", 2525, "a.far.example"),
        ("192.0.2.2", 2525, "a.far.example"),
        ("2001:db8::a", 2525, "a.far.example"),
        ("192.0.2.20", 2525, "b.far.example"),
    ]


def test_an_mx_host_without_addresses_is_skipped_for_the_next_one():
    r = router(
        {
            ("far.example", "MX"): [mx(1, "dead.far.example"), mx(2, "live.far.example")],
            ("live.far.example", "A"): a("192.0.2.7"),
        }
    )
    assert hosts(r, "x@far.example") == [("192.0.2.7", 2525, "live.far.example")]


def test_no_mx_record_means_the_domain_itself_is_the_mail_host():
    r = router(
        {("far.example", "MX"): dns.resolver.NoAnswer(), ("far.example", "A"): a("192.0.2.9")}
    )
    assert hosts(r, "x@far.example") == [("192.0.2.9", 2525, "far.example")]


def test_a_null_mx_bounces_permanently():
    e = refusal(router({("far.example", "MX"): [mx(0, ".")]}), "x@far.example")
    assert e.permanent and e.reply == "550 5.1.10 far.example does not accept mail (null MX)"


def test_a_domain_that_does_not_exist_bounces_permanently():
    e = refusal(router({}), "x@nowhere.example")
    assert e.permanent and e.reply == "550 5.1.2 nowhere.example: domain not found"


@pytest.mark.parametrize(
    "error", [dns.exception.Timeout(), dns.resolver.NoNameservers(), dns.resolver.YXDOMAIN()]
)
def test_a_failed_mx_lookup_defers(error):
    e = refusal(router({("far.example", "MX"): error}), "x@far.example")
    assert not e.permanent
    assert e.reply == f"451 4.4.3 far.example: MX lookup failed: {type(error).__name__}"


def test_mx_hosts_without_any_address_defer_naming_them():
    r = router({("far.example", "MX"): [mx(1, "a.far.example"), mx(2, "b.far.example")]})
    e = refusal(r, "x@far.example")
    assert not e.permanent
    assert (
        e.reply
        == "451 4.4.4 far.example: no address for its mail hosts a.far.example, b.far.example"
    )


def test_an_ipv4_literal_as_exchange_is_used_as_its_own_address():
    r = router({("far.example", "MX"): [mx(1, "192.0.2.33")]})
    assert hosts(r, "x@far.example") == [("192.0.2.33", 2525, "192.0.2.33")]


# -- the resolver's configuration -------------------------------------------------------------


def test_a_configured_dns_server_without_port_is_asked_on_port_53():
    r = NextHops(FakeNode(), config(dns_servers=["192.0.2.53"], dns_timeout=4.5))
    assert r.resolver.nameservers == ["192.0.2.53"]
    assert r.resolver.port == 53 and r.resolver.lifetime == 4.5


def test_a_configured_dns_server_with_port_is_asked_there():
    r = NextHops(FakeNode(), config(dns_servers=["192.0.2.53:5353", "192.0.2.54"]))
    assert r.resolver.nameservers == ["192.0.2.53"] and r.resolver.port == 5353


def test_a_configured_ipv6_dns_server_without_port_is_asked_on_port_53():
    r = NextHops(FakeNode(), config(dns_servers=["::1"]))
    assert r.resolver.nameservers == ["::1"] and r.resolver.port == 53


@pytest.mark.parametrize(
    "server, host, port",
    [("2001:db8::53", "2001:db8::53", 53), ("[::1]", "::1", 53), ("[::1]:5353", "::1", 5353)],
)
def test_ipv6_dns_servers_with_and_without_a_port(server, host, port):
    r = NextHops(FakeNode(), config(dns_servers=[server]))
    assert r.resolver.nameservers == [host] and r.resolver.port == port

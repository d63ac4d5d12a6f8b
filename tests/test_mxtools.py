"""Self-test of the loopback remote-MX helpers (harness.mx, harness.certs)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl

import dns.asyncresolver
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest
from cryptography import x509
from harness.certs import make_certificate
from harness.mx import DnsServer, SinkServer, free_port

SINK_IP = "127.0.77.1"
DNS_IP = "127.0.77.2"
MESSAGE = b"From: a@here.test\r\nSubject: hi\r\n\r\n.leading dot survives\r\nmarker-42\r\n"


@pytest.fixture
def sink():
    with SinkServer(SINK_IP, free_port(SINK_IP)) as s:
        yield s


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"), "mx1.remote.test")


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def transaction(sink: SinkServer, rcpts: list[str]):
    """One transaction by hand: ([RCPT replies], DATA reply or None)."""
    with smtplib.SMTP(*sink.address, timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail("a@here.test")[0] == 250
        replies = [client.rcpt(r) for r in rcpts]
        data = client.data(MESSAGE) if any(code == 250 for code, _ in replies) else None
        return replies, data


def test_accept_records_exact_bytes(sink):
    with smtplib.SMTP(*sink.address, timeout=10) as client:
        assert client.sendmail("a@here.test", ["b@remote.test", "C@remote.test"], MESSAGE) == {}
        assert client.sendmail("a@here.test", ["d@remote.test"], MESSAGE + b"second\r\n") == {}
    first, second = sink.messages
    assert first.mail_from == "a@here.test"
    assert first.rcpt_tos == ["b@remote.test", "C@remote.test"]
    assert first.data == MESSAGE  # dot-unstuffed, CRLF kept, nothing added
    assert first.tls is False and first.peer[0].startswith("127.")
    assert second.rcpt_tos == ["d@remote.test"] and second.data.endswith(b"second\r\n")
    assert sink.count_with(b"marker-42") == 2 and sink.count_with(b"second") == 1
    # The Controller's readiness probe is not counted.
    assert (sink.attempts, sink.connections) == (2, 1)
    sink.reset()
    assert (sink.messages, sink.attempts, sink.connections) == ([], 0, 0)


@pytest.mark.parametrize(
    "mode, rcpt, data",
    [
        ("accept", (250, b"2.1.5 OK"), (250, b"2.0.0 OK queued")),
        ("tempfail", (451, b"4.3.0 try again later"), None),
        ("reject", (550, b"5.1.1 no such user"), None),
        ("tempfail_data", (250, b"2.1.5 OK"), (451, b"4.3.0 try again later")),
        ("reject_data", (250, b"2.1.5 OK"), (554, b"5.6.0 message rejected")),
    ],
)
def test_modes(sink, mode, rcpt, data):
    sink.mode = mode
    assert transaction(sink, ["b@remote.test"]) == ([rcpt], data)
    assert len(sink.messages) == (mode == "accept")
    assert sink.attempts == 1


def test_mode_changes_between_transactions_and_smtplib_sees_them(sink):
    sink.mode = "tempfail"
    with smtplib.SMTP(*sink.address, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@here.test", ["b@remote.test"], MESSAGE)
        assert refused.value.recipients == {"b@remote.test": (451, b"4.3.0 try again later")}
        client.rset()
        sink.mode = "reject_data"
        with pytest.raises(smtplib.SMTPDataError) as rejected:
            client.sendmail("a@here.test", ["b@remote.test"], MESSAGE)
        assert rejected.value.smtp_code == 554
        sink.mode = "accept"
        assert client.sendmail("a@here.test", ["b@remote.test"], MESSAGE) == {}
    assert len(sink.messages) == 1
    assert (sink.attempts, sink.connections) == (3, 1)
    with pytest.raises(ValueError):
        sink.mode = "bogus"


def test_rcpt_modes_override_mode(sink):
    sink.rcpt_modes["Bad@remote.test"] = "reject"
    sink.rcpt_modes["later@remote.test"] = "tempfail"
    replies, data = transaction(sink, ["ok@remote.test", "bad@remote.test", "later@remote.test"])
    assert [code for code, _ in replies] == [250, 550, 451] and data[0] == 250
    assert sink.messages[0].rcpt_tos == ["ok@remote.test"]
    sink.mode = "tempfail"
    sink.rcpt_modes["ok@remote.test"] = "accept"
    replies, _ = transaction(sink, ["ok@remote.test", "other@remote.test"])
    assert [code for code, _ in replies] == [250, 451]


def test_starttls(certificate):
    with SinkServer(SINK_IP, free_port(SINK_IP), tls_cert=certificate) as sink:
        with smtplib.SMTP(*sink.address, timeout=10) as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls")
            assert client.starttls(context=client_context())[0] == 220
            client.ehlo("client.test")
            assert not client.has_extn("starttls")
            client.sendmail("a@here.test", ["b@remote.test"], MESSAGE)
        # Opportunistic: plaintext still accepted.
        with smtplib.SMTP(*sink.address, timeout=10) as client:
            client.sendmail("a@here.test", ["c@remote.test"], MESSAGE)
        assert [(m.rcpt_tos, m.tls, m.data) for m in sink.messages] == [
            (["b@remote.test"], True, MESSAGE),
            (["c@remote.test"], False, MESSAGE),
        ]
        assert sink.connections == 2  # STARTTLS is not a new connection


def test_certificate_names(certificate):
    with open(certificate[0], "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx1.remote.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_stop_start_same_port(certificate):
    sink = SinkServer(SINK_IP, free_port(SINK_IP), tls_cert=certificate)
    sink.start()
    sink.start()  # idempotent
    port = sink.port
    try:
        # A session left open (after STARTTLS) while the MX goes down: stop() drops it.
        idle = smtplib.SMTP(*sink.address, timeout=10)
        idle.starttls(context=client_context())
        idle.ehlo("client.test")
        with smtplib.SMTP(*sink.address, timeout=10) as client:
            client.sendmail("a@here.test", ["b@remote.test"], MESSAGE)
        sink.stop()
        sink.stop()  # idempotent
        assert not sink.running
        with pytest.raises(smtplib.SMTPServerDisconnected):
            idle.noop()
        idle.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(sink.address, timeout=5).close()
        sink.start()
        assert sink.port == port
        with smtplib.SMTP(*sink.address, timeout=10) as client:
            client.sendmail("a@here.test", ["b@remote.test"], MESSAGE + b"again\r\n")
        # What a down/up cycle received is all still there.
        assert sink.count_with(b"marker-42") == 2 and sink.count_with(b"again") == 1
        assert sink.connections == 3
    finally:
        sink.stop()


def test_client_vanishing_is_fine(sink):
    with socket.create_connection(sink.address, timeout=10) as s:
        assert s.recv(1024).startswith(b"220 ")
        s.sendall(
            b"EHLO client.test\r\nMAIL FROM:<a@here.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\npartial"
        )
    with smtplib.SMTP(*sink.address, timeout=10) as client:
        client.sendmail("a@here.test", ["b@remote.test"], MESSAGE)
    assert [m.data for m in sink.messages] == [MESSAGE]


def test_busy_port_fails_at_once(sink):
    with pytest.raises(OSError):
        SinkServer(SINK_IP, sink.port).start()
    with pytest.raises(ValueError):
        SinkServer("192.0.2.1", 25)


# -- DNS -------------------------------------------------------------------


@pytest.fixture
def dns_server():
    with DnsServer(DNS_IP, free_port(DNS_IP)) as server:
        server.add("remote.test", "MX", "10 mx1.remote.test.")
        server.add("Remote.Test.", "MX", "20 mx2.remote.test")  # trailing dot optional
        server.add("mx1.remote.test", "A", "127.0.5.1", ttl=30)
        server.add("mx2.remote.test", "A", "127.0.5.2")
        yield server


def resolver_for(server: DnsServer) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 5
    return resolver


def test_dns_lookups(dns_server):
    async def lookups():
        resolver = resolver_for(dns_server)
        mx = await resolver.resolve("REMOTE.test", "MX")
        a = await resolver.resolve("mx1.remote.test.", "A")
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolver.resolve("nowhere.test", "MX")
        with pytest.raises(dns.resolver.NoAnswer):
            await resolver.resolve("mx1.remote.test", "MX")
        return mx, a

    mx, a = asyncio.run(lookups())
    # lower(): name compression may reuse the question's spelling ("REMOTE.test").
    assert sorted((r.preference, r.exchange.to_text().lower()) for r in mx) == [
        (10, "mx1.remote.test."),
        (20, "mx2.remote.test."),
    ]
    assert [r.address for r in a] == ["127.0.5.1"] and a.rrset.ttl == 30


def test_dns_flags_and_remove(dns_server):
    query = dns.message.make_query("mx1.remote.test", "A")
    reply = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=5)
    assert reply.flags & dns.flags.AA and reply.rcode() == dns.rcode.NOERROR
    dns_server.remove("mx1.remote.test", "A")
    reply = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    dns_server.remove("mx1.remote.test")
    reply = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=5)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    # Garbage is dropped, not fatal to the server.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"junk", dns_server.address)
    query = dns.message.make_query("remote.test", "MX")
    assert (
        len(dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=5).answer[0]) == 2
    )


def test_dns_restart():
    server = DnsServer(DNS_IP, free_port(DNS_IP))
    server.add("remote.test", "A", "127.0.5.9")
    query = dns.message.make_query("remote.test", "A")
    server.start()
    port = server.port
    server.stop()
    server.stop()
    server.start()
    try:
        assert server.port == port
        reply = dns.query.udp(query, server.host, port=server.port, timeout=5)
        assert reply.answer[0][0].address == "127.0.5.9"
    finally:
        server.stop()

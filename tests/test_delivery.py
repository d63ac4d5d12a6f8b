"""Outbound delivery against real loopback servers: retries, bounces, queue commands,
restarts, submission with AUTH under TLS, MX lookups through a real DNS server."""

from __future__ import annotations

import base64
import email
import json
import smtplib
import ssl
from email.policy import default as default_policy

import pytest
from harness import DOMAIN, PASSWORD
from harness.addresses import node_ip
from harness.certs import make_certificate
from harness.mail import pop3_messages
from harness.mx import DnsServer, SinkServer, free_port
from harness.wait import wait_for

ALICE = f"alice@{DOMAIN}"
FAST_RETRIES = {"delivery.retry_initial": 1.0, "delivery.retry_max": 1.0}


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def certificate(tmp_path):
    return make_certificate(tmp_path, "mx.example.test")


@pytest.fixture
def sink(make_node):
    """A remote MX on its own loopback address (not started: "down" until a test starts it)."""

    ip = node_ip()
    s = SinkServer(ip, free_port(ip))
    yield s
    s.stop()


@pytest.fixture
def mailer(make_node, certificate, sink):
    """make(**extra): a node with submission on, remote.test routed to the sink, user alice."""

    def make(**extra):
        n = make_node(
            **{
                "tls.cert": certificate[0],
                "tls.key": certificate[1],
                "submission.listen": "{ip}:5870",
                "submission.listen_tls": "{ip}:4650",
                "delivery.transport": {"remote.test": f"{sink.host}:{sink.port}"},
                **FAST_RETRIES,
                **extra,
            }
        )
        n.start()
        n.add_user(ALICE)
        return n

    return make


def submit(node, rcpts: list[str], data: bytes, sender: str = ALICE, user: str = ALICE) -> None:
    with smtplib.SMTP(*node.submission, timeout=30) as s:
        s.starttls(context=client_tls())
        s.login(user, PASSWORD)
        refused = s.sendmail(sender, rcpts, data)
        assert refused == {}


def queue(node, *args: str) -> list[dict]:
    return json.loads(node.mailctl("queue", "list", "--json", *args).stdout)


def mailbox(node, user: str = ALICE) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(m, policy=default_policy)
        for m in pop3_messages(node.pop3, user, PASSWORD)
    ]


def dsn_fields(msg) -> list[dict]:
    """The per-recipient blocks of a DSN's message/delivery-status part."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    status = next(p for p in msg.iter_parts() if p.get_content_type() == "message/delivery-status")
    return [dict(block.items()) for block in status.get_payload()[1:]]


def test_down_then_tempfail_then_accepted_is_delivered_exactly_once(mailer, sink):
    node = mailer()
    submit(node, ["bob@remote.test"], b"Subject: retry\r\n\r\nMARK-RETRY\r\n")
    # The MX is down: deferred, with the connection failure as the reason.
    wait_for(lambda: any(e["attempts"] >= 1 for e in queue(node)), 20, what="a deferred attempt")
    [entry] = queue(node)
    assert entry["recipients"] == ["bob@remote.test"] and entry["sender"] == ALICE
    assert "451 4.4.1" in entry["last_reply"]["bob@remote.test"]
    sink.mode = "tempfail"
    sink.start()
    wait_for(
        lambda: (
            sink.attempts >= 1
            and "451 4.3.0" in queue(node)[0]["last_reply"].get("bob@remote.test", "")
        ),
        20,
        what="a 4xx answer recorded",
    )
    assert sink.messages == []
    sink.mode = "accept"
    wait_for(lambda: sink.count_with(b"MARK-RETRY") == 1, 20, what="delivery once the MX accepts")
    wait_for(lambda: queue(node) == [], 10, what="the queue to empty")
    node.mailctl("queue", "flush", "--all")  # nothing left that could go twice
    assert sink.count_with(b"MARK-RETRY") == 1
    [m] = sink.messages
    assert m.mail_from == ALICE and m.rcpt_tos == ["bob@remote.test"]
    assert m.data.startswith(b"Received: from ") and b"with ESMTPSA id" in m.data
    assert mailbox(node) == []  # no DSN: it was delivered
    text = node.metrics()
    assert 'mailcluster_delivery_attempts_total{result="delivered"} 1.0' in text
    assert 'mailcluster_delivery_deferrals_total{destination="' in text
    wait_for(
        lambda: 'mailcluster_queue_messages{shard="0",state="deferred"} 0.0' in node.metrics(),
        10,
        what="the queue gauges to follow",
    )  # updated every second


def test_5xx_bounces_to_the_sender_read_over_pop3_and_a_null_sender_gets_none(mailer, sink):
    node = mailer(**{"submission.sender_must_match": False})
    sink.mode = "reject"
    sink.start()
    submit(node, ["bob@remote.test"], b"Subject: doomed\r\nMessage-ID: <doomed@x>\r\n\r\nbody\r\n")
    wait_for(lambda: len(mailbox(node)) == 1, 20, what="the DSN in alice's mailbox")
    [dsn] = mailbox(node)
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["Auto-Submitted"] == "auto-replied"
    [rcpt] = dsn_fields(dsn)
    assert rcpt["Final-Recipient"] == "rfc822; bob@remote.test"
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "5.1.1"
    assert "550 5.1.1" in rcpt["Diagnostic-Code"]
    headers = next(p for p in dsn.iter_parts() if p.get_content_type() == "text/rfc822-headers")
    assert "Message-ID: <doomed@x>" in headers.get_content()
    assert queue(node) == []
    # A null sender's message bounces without a DSN (no bounce of a bounce).
    with smtplib.SMTP(*node.submission, timeout=30) as s:
        s.starttls(context=client_tls())
        s.login(ALICE, PASSWORD)
        s.sendmail("<>", ["carol@remote.test"], b"Subject: from null\r\n\r\nx\r\n")
    wait_for(
        lambda: "no DSN for a null sender" in node.read_log(), 20, what="the null-sender bounce"
    )
    assert queue(node) == [] and len(mailbox(node)) == 1
    assert sink.messages == []


def test_lifetime_expiry_bounces_after_a_delay_warning(mailer, sink):
    node = mailer(**{"delivery.lifetime": 3.0, "delivery.delay_warning": 1.0})
    submit(node, ["bob@remote.test", "carol@remote.test"], b"Subject: late\r\n\r\nx\r\n")
    wait_for(lambda: len(mailbox(node)) == 2, 30, what="a delay warning and then a bounce")
    warning, bounce = sorted(mailbox(node), key=lambda m: "Undelivered" in m["Subject"])
    assert warning["Subject"].startswith("Delayed Mail")
    assert {b["Action"] for b in dsn_fields(warning)} == {"delayed"}
    fields = dsn_fields(bounce)
    assert sorted(b["Final-Recipient"] for b in fields) == [
        "rfc822; bob@remote.test",
        "rfc822; carol@remote.test",
    ]
    assert {b["Action"] for b in fields} == {"failed"} and {b["Status"] for b in fields} == {
        "5.4.7"
    }
    assert all("delivery time expired" in b["Diagnostic-Code"] for b in fields)
    assert queue(node) == []
    assert 'mailcluster_delivery_attempts_total{result="expired"} 2.0' in node.metrics()


def test_hold_release_delete(mailer, sink):
    node = mailer(**{"delivery.retry_initial": 60.0, "delivery.retry_max": 60.0})
    for tag in ("HELD", "FREE", "GONE", "REQ"):
        submit(node, ["bob@remote.test"], f"Subject: {tag}\r\n\r\nMARK-{tag}\r\n".encode())
    wait_for(
        lambda: len(queue(node)) == 4 and all(e["attempts"] == 1 for e in queue(node)),
        20,
        what="four deferred messages",
    )
    by_subject = {}
    for e in queue(node):
        shown = node.mailctl("queue", "show", e["queue_id"], "--json").stdout
        by_subject[json.loads(shown)["headers"].split("Subject: ")[1].split("\r\n")[0]] = e[
            "queue_id"
        ]
    held = node.mailctl("queue", "hold", by_subject["HELD"], by_subject["REQ"]).stdout
    assert held.startswith("held 2 message")
    assert node.mailctl("queue", "delete", by_subject["GONE"]).stdout.startswith(
        "deleted 1 message"
    )
    assert {e["queue_id"]: e["state"] for e in queue(node)} == {
        by_subject["HELD"]: "held",
        by_subject["REQ"]: "held",
        by_subject["FREE"]: "deferred",
    }
    sink.start()
    node.mailctl("queue", "flush", "--all")  # the retry would be a minute away
    wait_for(lambda: sink.count_with(b"MARK-FREE") == 1, 20, what="the free message delivered")
    wait_for(lambda: len(queue(node)) == 2, 10, what="only the held messages left")
    assert sink.count_with(b"MARK-HELD") == 0 and {e["state"] for e in queue(node)} == {"held"}
    node.mailctl("queue", "release", by_subject["HELD"])  # due since the flush: tried at once
    wait_for(lambda: sink.count_with(b"MARK-HELD") == 1, 20, what="the released message delivered")
    assert [e["queue_id"] for e in queue(node)] == [by_subject["REQ"]] and sink.count_with(
        b"MARK-REQ"
    ) == 0
    node.mailctl("queue", "requeue", by_subject["REQ"])  # released and tried now
    wait_for(lambda: sink.count_with(b"MARK-REQ") == 1, 20, what="the requeued message delivered")
    wait_for(lambda: queue(node) == [], 10, what="an empty queue")
    assert (
        sink.count_with(b"MARK-GONE") == 0 and mailbox(node) == []
    )  # deleted: no delivery, no DSN
    r = node.mailctl("queue", "hold", "NOSUCHID", check=False)
    assert r.returncode == 1 and "held 0 message" in r.stdout and "NOSUCHID" in r.stderr


def test_restart_in_the_middle_of_a_retry_schedule(mailer, sink):
    node = mailer(**{"delivery.retry_initial": 6.0, "delivery.retry_max": 6.0})
    submit(node, ["bob@remote.test"], b"Subject: r\r\n\r\nMARK-RESTART\r\n")
    wait_for(lambda: any(e["attempts"] == 1 for e in queue(node)), 20, what="one deferred attempt")
    node.kill9()
    sink.start()
    node.start()
    [entry] = queue(node)  # the schedule survived: same message, its attempt counted
    assert entry["attempts"] == 1 and entry["recipients"] == ["bob@remote.test"]
    wait_for(lambda: sink.count_with(b"MARK-RESTART") == 1, 20, what="delivery after the restart")
    wait_for(lambda: queue(node) == [], 10, what="an empty queue")
    # Confirmed by the remote's 250 and recorded: a second crash does not send it again.
    node.kill9()
    node.start()
    assert queue(node) == []
    node.mailctl("queue", "flush", "--all")
    assert sink.count_with(b"MARK-RESTART") == 1


def test_relay_refused_and_auth_only_under_tls(mailer, sink):
    node = mailer(**{"submission.rate_per_user": 2, "submission.rate_per_ip": 3})
    # The MX port relays for nobody and offers no AUTH.
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        s.ehlo()
        assert "auth" not in s.esmtp_features
        s.mail(ALICE)
        code, text = s.rcpt("bob@remote.test")
        assert code == 554 and text.startswith(b"5.7.1")
        code, _ = s.docmd(
            "AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        )
        assert code >= 500
    # Submission before STARTTLS: no AUTH offered, AUTH and MAIL refused.
    with smtplib.SMTP(*node.submission, timeout=30) as s:
        s.ehlo()
        assert "auth" not in s.esmtp_features and "starttls" in s.esmtp_features
        code, text = s.docmd(
            "AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        )
        assert code == 530 and text.startswith(b"5.7.0")
        code, _ = s.docmd("MAIL FROM:<x@remote.test>")
        assert code == 530
        # Under TLS but not authenticated: no relaying either.
        s.starttls(context=client_tls())
        s.ehlo()
        assert s.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        code, text = s.docmd(f"MAIL FROM:<{ALICE}>")
        assert code == 530 and text.startswith(b"5.7.0")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "wrong password")
        assert e.value.smtp_code == 535
    with smtplib.SMTP(*node.submission, timeout=30) as s:
        s.starttls(context=client_tls())
        s.login(ALICE, PASSWORD)
        code, text = s.mail(f"mallory@{DOMAIN}")
        assert code == 553 and text.startswith(b"5.7.1")
        s.rset()
        s.sendmail(ALICE, ["bob@remote.test"], b"Subject: 1\r\n\r\n1\r\n")
        s.sendmail(ALICE, ["bob@remote.test"], b"Subject: 2\r\n\r\n2\r\n")
        code, text = s.mail(ALICE)  # over the limit of 2 per hour
        assert code == 450 and text.startswith(b"4.7.1") and ALICE.encode() in text
    bob = f"bob@{DOMAIN}"
    node.add_user(bob)
    with smtplib.SMTP(
        *node.submission, timeout=30
    ) as s:  # same address: the third from it is the last
        s.starttls(context=client_tls())
        s.login(bob, PASSWORD)
        s.sendmail(bob, ["carol@remote.test"], b"Subject: 3\r\n\r\n3\r\n")
        code, text = s.mail(bob)
        assert code == 450 and text.startswith(b"4.7.1") and bob.encode() not in text
    text = node.metrics()
    assert 'mailcluster_submission_rate_limited_total{limit="user"} 1.0' in text
    assert 'mailcluster_submission_rate_limited_total{limit="ip"} 1.0' in text
    assert "Traceback" not in node.read_log()


def test_tls_handshakes_with_test_certificates(mailer, sink, certificate, tmp_path):
    node = mailer()
    (tmp_path / "sink").mkdir()
    remote = SinkServer(
        sink.host, sink.port, tls_cert=make_certificate(tmp_path / "sink", "sink.test")
    )
    remote.start()
    try:
        # Implicit TLS on 465, the client verifying our certificate against the test CA.
        verify = ssl.create_default_context(cafile=certificate[0])
        verify.check_hostname = False  # the test certificate names mx.example.test, we dial 127.x
        with smtplib.SMTP_SSL(*node.submission_tls, context=verify, timeout=30) as s:
            s.ehlo()
            assert (
                s.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
                and "starttls" not in s.esmtp_features
            )
            s.login(ALICE, PASSWORD)
            s.sendmail(
                ALICE, ["bob@remote.test", f"alice@{DOMAIN}"], b"Subject: tls\r\n\r\nMARK-TLS\r\n"
            )
        # Outbound: the remote offers STARTTLS, so the engine uses it.
        wait_for(lambda: remote.count_with(b"MARK-TLS") == 1, 20, what="delivery over STARTTLS")
        assert remote.messages[0].tls is True
        # The local recipient got it at once, stored on her shard; one copy.
        [stored] = pop3_messages(node.pop3, ALICE, PASSWORD)
        assert b"MARK-TLS" in stored and b"with ESMTPSA" in stored
    finally:
        remote.stop()


def test_mx_lookup_through_dns(make_node, certificate, tmp_path):

    dns_ip, mx_ip = node_ip(), node_ip()
    port = free_port(mx_ip)
    with DnsServer(dns_ip, free_port(dns_ip)) as dns, SinkServer(mx_ip, port) as backup:
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("remote.test", "MX", "20 mx2.remote.test.")
        dns.add(
            "mx1.remote.test", "A", "127.0.0.2"
        )  # nothing listens there: the backup MX takes it
        dns.add("mx2.remote.test", "A", mx_ip)
        dns.add("bare.test", "A", mx_ip)  # no MX: the domain's own address (RFC 5321 5.1)
        node = make_node(
            **{
                "tls.cert": certificate[0],
                "tls.key": certificate[1],
                "delivery.dns_servers": [f"{dns.host}:{dns.port}"],
                "delivery.mx_port": port,
                **FAST_RETRIES,
            }
        )
        node.extra["submission.listen"] = "{ip}:5870"
        node.start()
        node.add_user(ALICE)
        submit(
            node,
            ["bob@remote.test", "eve@bare.test", "x@nxdomain.test"],
            b"Subject: dns\r\n\r\nMARK-DNS\r\n",
        )
        wait_for(
            lambda: backup.count_with(b"MARK-DNS") == 2,
            20,
            what="delivery via the MX and the A record",
        )
        assert sorted(r for m in backup.messages for r in m.rcpt_tos) == [
            "bob@remote.test",
            "eve@bare.test",
        ]
        wait_for(
            lambda: len(mailbox(node)) == 1, 20, what="a DSN for the domain that does not exist"
        )
        [rcpt] = dsn_fields(mailbox(node)[0])
        assert rcpt["Final-Recipient"] == "rfc822; x@nxdomain.test" and rcpt["Status"] == "5.1.2"


def test_bad_delivery_config_names_file_and_key(make_node):
    node = make_node(**{"delivery.transport": {"remote.test": "no-port-here"}})
    node.write_config()
    r = node.mailctl("queue", "list", check=False)
    assert r.returncode == 1
    assert (
        "[delivery] transport" in r.stderr and "remote.test" in r.stderr and node.config in r.stderr
    )


def test_cluster_outbound_is_queued_on_the_users_shard_and_delivered_once_after_failover(
    cluster, sink, certificate
):
    from mailnode.users import shard_of

    cluster.start(
        **{
            "tls.cert": certificate[0],
            "tls.key": certificate[1],
            "submission.listen": "{ip}:5870",
            "delivery.transport": {"remote.test": f"{sink.host}:{sink.port}"},
            **FAST_RETRIES,
        }
    )
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    other = next(n for n in cluster.nodes if n is not primary)

    def rcpt_code() -> int:
        with smtplib.SMTP(*other.smtp, timeout=30) as s:
            s.ehlo()
            s.mail("x@remote.test")
            return s.rcpt(ALICE)[0]

    assert rcpt_code() == 550  # unknown, and remembered as unknown for a few seconds
    primary.add_user(ALICE)
    wait_for(lambda: rcpt_code() == 250, 15, what="the negative RCPT cache to expire")
    submit(other, ["bob@remote.test"], b"Subject: c\r\n\r\nMARK-CLUSTER\r\n")
    # Queued on alice's shard (whatever node took the submission), seen from any node.
    wait_for(lambda: any(e["attempts"] >= 1 for e in queue(other)), 20, what="a deferred attempt")
    [entry] = queue(cluster.nodes[-1])
    assert entry["shard"] == shard
    primary.kill9()
    wait_for(lambda: cluster.primary_of(shard) is not primary, 30, what="a new primary")
    sink.start()
    wait_for(lambda: sink.count_with(b"MARK-CLUSTER") == 1, 30, what="delivery by the new primary")
    wait_for(lambda: queue(other) == [], 20, what="an empty queue")
    assert (
        sink.count_with(b"MARK-CLUSTER") == 1
    )  # the spares, holding the same queue, never sent it


def test_dsn_for_non_ascii_addresses_is_a_global_delivery_status():
    from mailnode.delivery import dsn

    data = dsn.build(
        reporting_mta="mx.example.test",
        queue_id="Q1",
        sender="jörg@example.test",
        arrival_ns=1_700_000_000_000_000_000,
        original=b"Subject: hi\r\n\r\nbody\r\n",
        recipients=[("zoë@exämple.test", "550 5.1.1 nö such user", "127.0.0.5:25")],
    )
    msg = dsn.parse(data)
    assert msg.get_param("report-type") == "global-delivery-status"
    assert msg["To"] == "jörg@example.test" and data.count(b"\n") == data.count(b"\r\n")
    # RFC 6533: the fields in UTF-8, here base64-encoded.
    body = data.split(b"Content-Type: message/global-delivery-status")[1].split(b"\r\n\r\n", 1)[1]
    fields = base64.b64decode(body.split(b"\r\n--")[0]).decode("utf-8")
    assert "Final-Recipient: rfc822; zoë@exämple.test" in fields and "Status: 5.1.1" in fields

"""SMTP in, POP3 out, against a real node process with real clients."""

from __future__ import annotations

import poplib
import smtplib
import time

import pytest
from harness import DOMAIN, PASSWORD
from harness.mail import RawSMTP, body_of, pop3_messages
from harness.wait import wait_for

ALICE, BOB, CAROL = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"


def mailbox(node, user, **kw) -> list[bytes]:
    return pop3_messages(node.pop3, user, **kw)


def wait_count(node, user, n: int) -> list[bytes]:
    def enough():
        msgs = mailbox(node, user)
        return msgs if len(msgs) >= n else None

    return wait_for(enough, 20, what=f"{n} messages for {user}")


def test_round_trip_is_byte_exact(node):
    msg = (
        b"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: bytes\r\n\r\n"
        b".a line that starts with a dot\r\n..two dots\r\n.\r\n8-bit: \xc3\xa9\xe2\x82\xac\r\n"
        b"trailing spaces   \r\n\r\n"
    )
    with smtplib.SMTP(*node.smtp) as s:
        _code, caps = s.ehlo("client.test")
        for ext in (
            b"PIPELINING",
            b"8BITMIME",
            b"SMTPUTF8",
            b"ENHANCEDSTATUSCODES",
            b"SIZE 1000000",
        ):
            assert ext in caps
        assert s.sendmail("sender@remote.test", [ALICE], msg, mail_options=["BODY=8BITMIME"]) == {}
    [stored] = wait_count(node, ALICE, 1)
    assert body_of(stored) == msg
    assert stored.startswith(b"Received: from client.test ([127.")
    assert b"by mx.example.test (mailcluster) with ESMTP id " in stored.split(b"\r\n\r\n")[0]


def test_smtputf8_address_and_empty_message(node):
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        c.send("MAIL FROM:<üser@remote.test> SMTPUTF8\r\n".encode())
        assert c.reply()[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd(".")  # a message of no bytes at all
        assert code == 250 and text.startswith("2.0.0 Ok: queued as ")
    [stored] = wait_count(node, ALICE, 1)
    assert body_of(stored) == b""
    assert b"with UTF8SMTP id" in stored


def test_pipelined_multi_recipient_over_both_shards(node):
    node.add_user(CAROL)
    body = b"Subject: pipelined\r\n\r\nhello all\r\n"
    with RawSMTP(node.smtp) as c:
        assert c.cmd("EHLO pipe.test")[0] == 250
        # One write for the whole envelope, as RFC 2920 allows.
        c.send(
            f"MAIL FROM:<p@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n"
            f"RCPT TO:<nobody@{DOMAIN}>\r\nRCPT TO:<{CAROL}>\r\n"
            f"RCPT TO:<{ALICE.upper()}>\r\nDATA\r\n".encode()  # named twice: one copy
        )
        replies = [c.reply() for _ in range(7)]
        assert [r[0] for r in replies] == [250, 250, 250, 550, 250, 250, 354]
        assert replies[3][1].startswith("5.1.1")
        c.send(body + b".\r\nQUIT\r\n")
        code, text = c.reply()
        assert code == 250, text
        assert c.reply()[0] == 221
    for user in (ALICE, BOB, CAROL):
        [stored] = wait_count(node, user, 1)
        assert body_of(stored) == body
    shards = {
        int(line.split('shard="')[1][0])
        for line in node.metrics().splitlines()
        if line.startswith("mailcluster_deliveries_total{") and not line.endswith(" 0.0")
    }
    assert shards == {0, 1}, "the three users should spread over both shards"


def test_unknown_user_and_relay_are_refused(node):
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
        code, text = c.cmd(f"RCPT TO:<nobody@{DOMAIN}>")
        assert (code, text[:5]) == (550, "5.1.1")
        code, text = c.cmd("RCPT TO:<someone@elsewhere.test>")
        assert (code, text[:5]) == (554, "5.7.1") and "Relay access denied" in text
        code, text = c.cmd("RCPT TO:<someone@elsewhere.test@example.test>")
        assert code >= 500
        assert c.cmd("DATA")[0] == 503  # no valid recipient
    assert 'mailcluster_smtp_rejected_total{reason="relay_denied"} 1.0' in node.metrics()


def test_size_limit(node):
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        code, text = c.cmd("MAIL FROM:<a@remote.test> SIZE=2000000")
        assert (code, text[:5]) == (552, "5.3.4")
        assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        line = b"x" * 998 + b"\r\n"
        c.send(line * 1100 + b".\r\n")  # 1.1 MB, over the 1 MB limit
        code, text = c.reply()
        assert (code, text[:5]) == (552, "5.3.4")
        # The session goes on and the next message is fine.
        assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
        assert c.reply()[0] == 250
    msgs = wait_count(node, ALICE, 1)
    assert len(msgs) == 1 and b"Subject: small" in msgs[0]


@pytest.mark.parametrize(
    "payload",
    [
        # Postfix-style smuggling: a bare-LF "end of data" followed by a second transaction.
        b"Subject: first\r\n\r\nbody\n.\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
        b"Subject: first\r\n\r\nbody\r\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
        b"Subject: first\r\n\r\nbody\r.\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
    ],
    ids=["lf-dot-crlf", "crlf-dot-lf", "cr-dot-crlf"],
)
def test_smuggling_is_refused_whole(node, payload):
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@remote.test>")
        c.cmd(f"RCPT TO:<{ALICE}>")
        assert c.cmd("DATA")[0] == 354
        c.send(payload)
        code, text = c.reply()
        assert (code, text[:5]) == (550, "5.5.2"), text
        assert c.cmd("NOOP")[0] == 250  # nothing else was read as a command
        # A clean message afterwards proves the store is reachable, then nothing else came.
        c.cmd("MAIL FROM:<a@remote.test>")
        c.cmd(f"RCPT TO:<{ALICE}>")
        c.cmd("DATA")
        c.send(b"Subject: clean\r\n\r\nok\r\n.\r\n")
        assert c.reply()[0] == 250
    assert len(wait_count(node, ALICE, 1)) == 1
    assert mailbox(node, BOB) == []


def test_long_lines_garbage_and_disconnects(node):
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        code, text = c.cmd("NOOP " + "x" * 3000)
        assert code == 500 and text.startswith("5.5.")
        code, text = c.cmd("\x00\x01garbage")
        assert code == 500
        c.cmd("MAIL FROM:<a@remote.test>")
        c.cmd(f"RCPT TO:<{ALICE}>")
        c.cmd("DATA")
        c.send(b"Subject: long\r\n\r\n" + b"y" * 1500 + b"\r\n.\r\n")
        code, text = c.reply()
        assert (code, text[:5]) == (550, "5.5.6")
        assert c.cmd("NOOP")[0] == 250
    # Disconnect in the middle of DATA: nothing is stored.
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@remote.test>")
        c.cmd(f"RCPT TO:<{ALICE}>")
        c.cmd("DATA")
        c.send(b"Subject: cut\r\n\r\nhalf a message")
    # The node still serves, and the cut message never appears.
    with smtplib.SMTP(*node.smtp) as s:
        s.sendmail("a@remote.test", [ALICE], b"Subject: after\r\n\r\nfine\r\n")
    msgs = wait_count(node, ALICE, 1)
    assert len(msgs) == 1 and b"Subject: after" in msgs[0]
    assert node.proc.poll() is None


def test_pop3_dele_is_journaled_and_survives_restart(node):
    with smtplib.SMTP(*node.smtp) as s:
        for i in range(3):
            s.sendmail("a@remote.test", [ALICE], f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
    wait_count(node, ALICE, 3)
    p = poplib.POP3(*node.pop3, timeout=10)
    p.user(ALICE)
    p.pass_(PASSWORD)
    uids = [line.split()[1] for line in p.uidl()[1]]
    p.dele(2)
    p.quit()
    left = mailbox(node, ALICE)
    assert [b"m0" in left[0], b"m2" in left[1], len(left)] == [True, True, 2]
    node.kill9()
    node.start()
    p = poplib.POP3(*node.pop3, timeout=10)
    p.user(ALICE)
    p.pass_(PASSWORD)
    assert [line.split()[1] for line in p.uidl()[1]] == [uids[0], uids[2]]
    p.quit()


def test_pop3_disconnect_without_quit_keeps_mail_and_sessions_exclude(node):
    with smtplib.SMTP(*node.smtp) as s:
        s.sendmail("a@remote.test", [ALICE], b"Subject: keep\r\n\r\nx\r\n")
    wait_count(node, ALICE, 1)
    first = poplib.POP3(*node.pop3, timeout=10)
    first.user(ALICE)
    first.pass_(PASSWORD)
    first.dele(1)
    second = poplib.POP3(*node.pop3, timeout=10)
    second.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"IN-USE"):
        second.pass_(PASSWORD)
    second.close()
    first.rset()  # the refused second login did not disturb the first session
    assert first.stat()[0] == 1 and b"keep" in b"\r\n".join(first.retr(1)[1])
    first.dele(1)
    first.close()  # no QUIT: the deletion must not happen
    assert len(wait_for(lambda: _try_mailbox(node, ALICE), 10, what="lock released")) == 1


def _try_mailbox(node, user):
    try:
        return mailbox(node, user)
    except poplib.error_proto:
        return None


def test_pop3_wrong_password_is_delayed(node):
    p = poplib.POP3(*node.pop3, timeout=10)
    p.user(ALICE)
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto, match="AUTH"):
        p.pass_("wrong password")
    assert time.monotonic() - t0 >= 0.3
    p.close()
    assert "mailcluster_pop3_login_failures_total 1.0" in node.metrics()


def test_metrics_and_health(node):
    with smtplib.SMTP(*node.smtp) as s:
        s.sendmail("a@remote.test", [ALICE, BOB], b"Subject: m\r\n\r\nx\r\n")
    wait_count(node, BOB, 1)
    text = node.metrics()
    for name in (
        "mailcluster_smtp_messages_accepted_total 1.0",
        "mailcluster_commit_seconds_bucket",
        "mailcluster_journal_fsync_batch_records_bucket",
        'mailcluster_journal_bytes{shard="0"}',
        'mailcluster_journal_segments{shard="1"}',
        "mailcluster_deliveries_total",
        "mailcluster_pop3_sessions_total 1.0",
    ):
        assert name in text, name
    h = node.health()
    assert h["status"] == "ok" and set(h["shards"]) == {"0", "1"}


def test_user_lifecycle_is_journaled(node):
    r = node.mailctl("user", "add", ALICE, "--password", "another pw", check=False)
    assert r.returncode == 1 and "user exists" in r.stderr
    r = node.mailctl(
        "user", "add", "Bad Address@example.test", "--password", "whatever1", check=False
    )
    assert r.returncode == 1 and "dot-atom" in r.stderr
    r = node.mailctl("user", "add", "x@elsewhere.test", "--password", "whatever1", check=False)
    assert r.returncode == 1 and "not a domain of this cluster" in r.stderr
    node.mailctl("user", "passwd", ALICE, "--password-stdin", input="new password 1\n")
    node.mailctl("user", "del", BOB)
    listed = node.mailctl("user", "list", "--json").stdout
    assert ALICE in listed and BOB not in listed
    node.kill9()
    node.start()
    with RawSMTP(node.smtp) as c:
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@remote.test>")
        assert c.cmd(f"RCPT TO:<{BOB}>")[0] == 550
        assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert pop3_messages(node.pop3, ALICE, "new password 1") == []
    with pytest.raises(poplib.error_proto):
        pop3_messages(node.pop3, ALICE, PASSWORD)
    assert "correct horse" not in node.read_log() and "new password 1" not in node.read_log()

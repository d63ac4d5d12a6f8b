"""IMAP in a cluster: sessions through different nodes of one mailbox see each other,
IDLE learns of mail that came in through any node within a second, and a kill -9 of
the primary mid-APPEND and mid-MOVE loses no acknowledged message or flag, with
UIDs, UIDVALIDITY and modseqs unchanged after the failover (QRESYNC resyncs)."""

from __future__ import annotations

import imaplib
import re
import smtplib
import time

import pytest
from harness import DOMAIN
from harness.certs import make_certificate
from harness.imap import client, login, settings
from harness.wait import wait_for

from mailnode.users import shard_of

ALICE = f"alice@{DOMAIN}"
SHARD = shard_of(ALICE, 2)


@pytest.fixture
def cert(tmp_path):
    return make_certificate(tmp_path, "mx.test")


@pytest.fixture
def icluster(cluster, cert):
    cluster.start(**settings(cert))
    cluster.primary_of(SHARD).add_user(ALICE)
    return cluster


def others(cluster, node):
    return [n for n in cluster.nodes if n is not node]


def send(node, tag: str, n: int = 1) -> None:
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        for i in range(n):
            s.sendmail(
                "x@remote.test", [ALICE], f"Subject: {tag} {i}\r\n\r\n{tag} {i}\r\n".encode()
            )


def reconnect(node, cert: str, deadline: float = 30.0):
    """A logged-in imapclient, retrying while the shard has no primary (as a client does)."""

    def attempt():
        try:
            return client(node, ALICE, cert)
        except Exception:
            return None

    return wait_for(attempt, deadline, interval=0.2, what="an IMAP login after the failover")


def picture(c) -> dict:
    """Every folder's UIDVALIDITY and its messages' UIDs, flags and modseqs."""
    out = {}
    for _, _, name in c.list_folders():
        sel = c.select_folder(name, readonly=True)
        msgs = c.fetch(c.search(), ["UID", "FLAGS", "MODSEQ"]) if sel[b"EXISTS"] else {}
        out[name] = (
            sel[b"UIDVALIDITY"],
            sorted((u, tuple(sorted(v[b"FLAGS"])), v[b"MODSEQ"][0]) for u, v in msgs.items()),
        )
    return out


def test_two_nodes_one_mailbox_idle_and_qresync_after_failover(icluster, cert):
    primary = icluster.primary_of(SHARD)
    far, third = others(icluster, primary)
    send(third, "before", 3)
    near = client(primary, ALICE, cert[0])  # served in the primary's process
    piped = client(far, ALICE, cert[0])  # its bytes piped to the primary
    wait_for(lambda: near.select_folder("INBOX")[b"EXISTS"] == 3, 20, what="3 messages")
    piped.enable("QRESYNC")
    sel = piped.select_folder("INBOX")
    uidvalidity = sel[b"UIDVALIDITY"]
    near.add_flags([2], [b"\\Answered"])
    piped.noop()
    assert piped.fetch([2], ["FLAGS"])[2][b"FLAGS"] == (b"\\Answered",)
    # IDLE through one node learns of mail accepted by another within a second.
    latencies = []
    for i in range(5):
        piped.idle()
        t0 = time.monotonic()
        send(third, f"idle{i}")
        got = piped.idle_check(timeout=5)
        latencies.append(time.monotonic() - t0)
        piped.idle_done()
        assert any(r[1] == b"EXISTS" for r in got), got
    assert max(latencies) < 1.0, latencies
    piped.add_flags([1], [b"\\Seen", b"$Keep"])
    modseq = piped.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
    near.delete_messages([3])
    near.expunge()
    want = picture(near)
    primary.kill9()
    # The piped session learns the primary is gone: a clean BYE, or a closed connection.
    with pytest.raises((imaplib.IMAP4.abort, OSError, imaplib.IMAP4.error)):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            piped.noop()
            time.sleep(0.2)  # not synchronisation: a client's NOOP cadence
    for gone in (near, piped):  # their server is dead: close the sockets only
        gone.shutdown()
    again = reconnect(far, cert[0])
    assert picture(again) == want
    again.logout()
    again = reconnect(far, cert[0])
    again.enable("QRESYNC")  # before any SELECT, as imapclient insists
    typ, _ = again._imap._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert typ == "OK"
    vanished = again._imap.untagged_responses.get("VANISHED", [])
    assert any(b"(EARLIER) 3" in v for v in vanished), vanished
    again.logout()


def _close(c) -> None:
    """Close a client's socket without a LOGOUT (its server may be gone)."""
    if c is not None:
        try:
            c.shutdown()
        except OSError:
            pass


def _appender(node, cert: str, start: int, count: int, log: list) -> None:
    """APPEND messages one by one, retrying a refused or cut one on a new connection
    (as a mail client does); ``log`` gets (number, acknowledged)."""
    c = None
    i = start
    deadline = time.monotonic() + 90
    while i < start + count and time.monotonic() < deadline:
        try:
            if c is None:
                c = login(node, ALICE, cert)
            typ, _ = c.append(
                "Archive",
                "(\\Flagged)",
                None,
                f"Subject: ap {i}\r\nX-N: {i}\r\n\r\n{i}\r\n".encode(),
            )
            log.append((i, typ == "OK"))
            if typ == "OK":
                i += 1
        except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
            log.append((i, False))
            _close(c)
            c = None
            time.sleep(0.2)  # a client's back-off before reconnecting
    if c is not None:
        c.logout()


def test_kill9_primary_mid_append_and_mid_move_loses_nothing(icluster, cert):
    import threading

    primary = icluster.primary_of(SHARD)
    far = others(icluster, primary)[0]
    send(far, "mv", 40)
    c = client(far, ALICE, cert[0])
    wait_for(lambda: c.select_folder("INBOX")[b"EXISTS"] == 40, 30, what="40 messages")
    c.add_flags([1, 2, 3], [b"\\Seen"])
    log: list = []
    t = threading.Thread(target=_appender, args=(far, cert[0], 0, 60, log))
    t.start()
    moved_ok = []
    killed = False
    for uid in range(1, 41):
        if uid == 15:
            primary.kill9()
            killed = True
        try:
            c.move([uid], "Trash")
            moved_ok.append(uid)
        except Exception:
            _close(c)
            c = reconnect(far, cert[0])
            c.select_folder("INBOX")
    t.join(120)
    assert killed and not t.is_alive()
    _close(c)
    c = reconnect(far, cert[0])
    inbox = c.select_folder("INBOX")[b"EXISTS"]
    trash = c.select_folder("Trash")
    trash_n = trash[b"EXISTS"]
    # Every message is in exactly one of the two folders; each acknowledged MOVE held.
    assert inbox + trash_n == 40, (inbox, trash_n)
    subjects = c.fetch(c.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if trash_n else {}
    in_trash = {
        int(re.search(rb"mv (\d+)", v[b"BODY[HEADER.FIELDS (SUBJECT)]"]).group(1)) + 1
        for v in subjects.values()
    }
    assert set(moved_ok) <= in_trash
    flags = {u: v[b"FLAGS"] for u, v in c.fetch(c.search(), ["FLAGS"]).items()} if trash_n else {}
    seen_moved = [u for u in (1, 2, 3) if u in moved_ok]
    assert sum(1 for f in flags.values() if b"\\Seen" in f) >= len(seen_moved)
    # APPENDs: each acknowledged one is there; only an unanswered one may be twice.
    c.select_folder("Archive")
    got = c.fetch(c.search(), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (X-N)]"])
    numbers = [int(v[b"BODY[HEADER.FIELDS (X-N)]"].split()[1]) for v in got.values()]
    acked = {i for i, ok_ in log if ok_}
    unanswered = {i for i, ok_ in log if not ok_}
    assert unanswered and acked == set(range(60)), (sorted(unanswered), len(acked))
    assert acked <= set(numbers), f"lost {sorted(acked - set(numbers))}"
    dups = {n for n in numbers if numbers.count(n) > 1}
    assert dups <= unanswered, dups
    assert all(b"\\Flagged" in v[b"FLAGS"] for v in got.values())
    c.logout()


def test_stale_reads_serve_a_spares_copy_read_only_while_no_primary(cluster, cert):
    cluster.start(**settings(cert), **{"imap.stale_reads": True, "frontend.hold_timeout": 2.0})
    primary = cluster.primary_of(SHARD)
    primary.add_user(ALICE)
    send(primary, "stale", 2)
    spare = next(n for n in others(cluster, primary) if cluster.spare_in_sync(n, SHARD))
    c = client(spare, ALICE, cert[0])
    wait_for(lambda: c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 2, 20, what="2")
    c.logout()
    cluster.mailctl("pause")  # no failover: the shard stays without a primary
    primary.kill9()
    c = reconnect(spare, cert[0])
    typ, data = c._imap._simple_command("SELECT", "INBOX")  # read-write asked for
    assert typ == "OK" and b"[READ-ONLY]" in data[0], (typ, data)
    assert c.select_folder("INBOX", readonly=True)[b"EXISTS"] == 2
    got = c.fetch(c.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"] for v in got.values()) == [
        b"Subject: stale 0\r\n\r\n",
        b"Subject: stale 1\r\n\r\n",
    ]
    typ, data = c._imap.create("Elsewhere")
    assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
    c.noop()  # the session lives on after a refused change
    c.logout()
    cluster.mailctl("resume")

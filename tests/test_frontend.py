"""Any node accepts mail for any mailbox: front ends route to shard primaries and hold
through a failover, so that a sender never sees an error."""

from __future__ import annotations

import json
import smtplib

from harness import DOMAIN, PASSWORD
from harness.cluster import Cluster
from harness.load import accepted_numbers, start_load, stored_load_numbers
from harness.mail import body_of, pop3_messages
from harness.wait import wait_for

from mailnode.users import shard_of

USERS = [f"user{i}@{DOMAIN}" for i in range(6)]


def add_users(cl: Cluster) -> None:
    for user in USERS:
        primary = cl.primary_of(shard_of(user, 2))
        primary.add_user(user)


def test_every_node_takes_mail_for_every_shard_and_serves_pop3(cluster):
    cluster.start()
    add_users(cluster)
    assert {shard_of(u, 2) for u in USERS} == {0, 1}
    for node in cluster.nodes:
        with smtplib.SMTP(*node.smtp, timeout=60) as s:
            for user in USERS:
                s.sendmail(
                    "x@remote.test",
                    [user],
                    f"Subject: via-{node.name}\r\n\r\nhi {user}\r\n".encode(),
                )
            # One message for recipients of both shards: 250 only once both committed.
            s.sendmail(
                "x@remote.test", USERS, f"Subject: all-via-{node.name}\r\n\r\nall\r\n".encode()
            )
            code, text = s.rcpt(f"nobody@{DOMAIN}") if s.mail("x@remote.test") else (0, b"")
            assert code == 550 and text.startswith(b"5.1.1")
            s.rset()
    for user in USERS:
        for node in cluster.nodes:  # POP3 through every node
            subjects = sorted(
                m.split(b"\r\n\r\n")[0].split(b"Subject: ")[1].decode()
                for m in (body_of(x) for x in pop3_messages(node.pop3, user, PASSWORD))
            )
            assert subjects == sorted(
                [f"via-{n.name}" for n in cluster.nodes]
                + [f"all-via-{n.name}" for n in cluster.nodes]
            )
    text = cluster.nodes[0].metrics()
    assert "mailcluster_frontend_routed_total" in text


def test_pop3_deletions_through_another_node_are_committed_by_the_primary(cluster):
    cluster.start()
    add_users(cluster)
    user = USERS[0]
    primary = cluster.primary_of(shard_of(user, 2))
    other = next(n for n in cluster.nodes if n is not primary)
    with smtplib.SMTP(*other.smtp, timeout=60) as s:
        for i in range(3):
            s.sendmail("x@remote.test", [user], f"Subject: m{i}\r\n\r\nx\r\n".encode())
    assert len(pop3_messages(other.pop3, user, PASSWORD, delete=True)) == 3
    assert pop3_messages(primary.pop3, user, PASSWORD) == []


def test_kill9_primary_while_sending_through_another_node_gives_no_error(cluster, tmp_path):
    cluster.start()
    add_users(cluster)
    user = USERS[0]
    shard = shard_of(user, 2)
    primary = cluster.primary_of(shard)
    front = next(
        n
        for n in cluster.nodes
        if n is not primary
        and not any(r["node"] == n.name for r in cluster.status() if r["shard"] == shard)
    )
    proc, log = start_load(front, tmp_path, user, 0, 800, "fe")
    wait_for(lambda: len(accepted_numbers(log)) >= 200, 60, what="200 acked through the front node")
    primary.kill9()
    out, _ = proc.communicate(timeout=180)
    result = json.loads(out)
    assert result["accepted"] == 800 and result["tempfail"] == 0 and result["errors"] == 0, result
    new = cluster.primary_of(shard)
    numbers = stored_load_numbers(new, user, "fe")
    assert sorted(numbers) == sorted(set(numbers)) == sorted(set(accepted_numbers(log)))
    assert "mailcluster_frontend_held_total" in front.metrics()


def test_pop3_session_through_another_node_survives_a_primary_failover_cleanly(cluster):
    import poplib

    cluster.start()
    add_users(cluster)
    user = USERS[0]
    shard = shard_of(user, 2)
    primary = cluster.primary_of(shard)
    front = next(n for n in cluster.nodes if n is not primary)
    with smtplib.SMTP(*front.smtp, timeout=60) as s:
        for i in range(4):
            s.sendmail("x@remote.test", [user], f"Subject: m{i}\r\n\r\nx\r\n".encode())
    p = poplib.POP3(*front.pop3, timeout=60)
    p.user(user)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 4
    p.dele(1)
    primary.kill9()
    wait_for(lambda: cluster.primary_of(shard) is not primary, 30, what="failover")
    # The session's mailbox lock lived on the dead primary: QUIT gets a clean -ERR
    # (deletions not committed), never a traceback or a hung connection.
    try:
        p.quit()
        quit_ok = True
    except poplib.error_proto as e:
        assert b"-ERR" in e.args[0]
        quit_ok = False
    finally:
        p.close()
    left = pop3_messages(front.pop3, user, PASSWORD)
    # Nothing committed is lost; the uncommitted DELE may or may not have been applied.
    assert len(left) == (3 if quit_ok else 4)
    assert front.health()["status"] == "ok"  # the front end goes on serving
    if not quit_ok:  # an expected failure: one warning line in the log, no traceback
        assert "expunge of 1 messages" in front.read_log() and "Traceback" not in front.read_log()

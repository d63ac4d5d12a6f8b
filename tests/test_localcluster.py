"""`mailctl local up|status|down`: the README's first command, end to end."""

from __future__ import annotations

import imaplib
import json
import os
import signal
import smtplib
import ssl

import pytest
from harness import DOMAIN, PASSWORD
from harness.cluster import LocalCluster
from harness.mail import body_of, pop3_messages
from harness.mailctl import mailctl
from harness.wait import wait_for

from mailnode.users import shard_of


def addr(hostport: str) -> tuple[str, int]:
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def local_cluster(tmp_path):
    """A directory for `mailctl local up` and this run's local address block: (dir, base)."""
    c = LocalCluster(tmp_path / "cluster")
    yield c.dir, c.base
    c.stop()


def test_local_up_serves_mail_with_tls_and_resumes(local_cluster):
    d, base = local_cluster
    up = json.loads(
        mailctl(
            "local",
            "up",
            "--dir",
            d,
            "--json",
            "--base-address",
            base,
            "--nodes",
            "1",
            "--shards",
            "1",
        ).stdout
    )
    [node] = up["nodes"]
    assert set(node) == {
        "name",
        "pid",
        "smtp",
        "submission",
        "submission_tls",
        "pop3",
        "imap",
        "imap_tls",
        "http",
        "grpc",
    }
    assert node["smtp"].startswith(base + ".")
    mailctl("--dir", d, "user", "add", f"alice@{DOMAIN}", "--password", PASSWORD)
    users = json.loads(mailctl("--dir", d, "user", "list", "--json").stdout)
    assert users == [{"address": f"alice@{DOMAIN}", "shard": 0}]

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    msg = b"Subject: over tls\r\n\r\nsecret\r\n"
    with smtplib.SMTP(*addr(node["smtp"])) as s:
        s.starttls(context=ctx)
        s.sendmail("x@remote.test", [f"alice@{DOMAIN}"], msg)
    got = wait_for(
        lambda: pop3_messages(addr(node["pop3"]), f"alice@{DOMAIN}", tls=True), 20, what="mail"
    )
    assert body_of(got[0]) == msg and b"with ESMTPS id" in got[0]
    with imaplib.IMAP4_SSL(*addr(node["imap_tls"]), ssl_context=ctx, timeout=30) as im:
        im.login(f"alice@{DOMAIN}", PASSWORD)
        assert im.select("INBOX") == ("OK", [b"1"])
        assert im.fetch("1", "(BODY.PEEK[])")[1][0][1] == got[0]  # the same stored bytes
    note = b"Subject: note to self\r\n\r\nsubmitted\r\n"
    with smtplib.SMTP_SSL(*addr(node["submission_tls"]), context=ctx) as s:
        s.login(f"alice@{DOMAIN}", PASSWORD)
        s.sendmail(f"alice@{DOMAIN}", [f"alice@{DOMAIN}"], note)
    got = wait_for(
        lambda: len(pop3_messages(addr(node["pop3"]), f"alice@{DOMAIN}", tls=True)) == 2,
        20,
        what="the submitted message",
    )
    assert json.loads(mailctl("--dir", d, "queue", "list", "--json").stdout) == []
    # The local remote site (mTLS with the cluster's own CA) holds the journal.
    committed = json.loads(mailctl("--dir", d, "status", "--json").stdout)["shards"][0][
        "committed_lsn"
    ]
    wait_for(
        lambda: (
            json.loads(mailctl("--dir", d, "archive", "status", "--json").stdout)[0]["end_lsn"]
            == committed
        ),
        20,
        what="the archive to hold the journal",
    )

    st = json.loads(mailctl("local", "status", "--dir", d, "--json").stdout)
    assert st["nodes"][0]["alive"] is True
    status = json.loads(mailctl("--dir", d, "status", "--json").stdout)
    assert status["shards"][0]["users"] == 1 and status["shards"][0]["committed_lsn"] > 0

    assert "node1" in mailctl("local", "down", "--dir", d).stdout
    r = mailctl("local", "status", "--dir", d, check=False)
    assert r.returncode == 1 and "False" in r.stdout

    # Re-running up on the same directory resumes its data.
    mailctl("local", "up", "--dir", d, "--base-address", base, "--nodes", "1", "--shards", "1")
    got = pop3_messages(addr(node["pop3"]), f"alice@{DOMAIN}", tls=True)
    assert sorted(body_of(m) for m in got) == sorted([msg, note])


def test_mailctl_errors_are_one_line(local_cluster, tmp_path):
    d, _ = local_cluster
    r = mailctl("--dir", d, "user", "add", "x@example.test", "--password", "whatever1", check=False)
    assert r.returncode == 1 and "no local cluster here" in r.stderr and "Traceback" not in r.stderr
    r = mailctl("journal", "verify", str(tmp_path / "nope"), check=False)
    assert r.returncode == 1 and "no such journal directory" in r.stderr


def test_local_cluster_with_zookeeper_fails_over(local_cluster):
    d, base = local_cluster
    up = json.loads(mailctl("local", "up", "--dir", d, "--json", "--base-address", base).stdout)
    assert (
        len(up["nodes"]) == 3
        and len(up["coordinators"]) == 2
        and up["zookeeper"].count(":2181") == 3
    )
    mailctl("--dir", d, "user", "add", f"alice@{DOMAIN}", "--password", PASSWORD)
    rows = json.loads(mailctl("--dir", d, "status", "--json").stdout)["members"]
    shard = shard_of(f"alice@{DOMAIN}", 2)
    primary = next(r for r in rows if r["shard"] == shard and r["role"] == "primary")
    msg = b"Subject: clustered\r\n\r\nhello\r\n"
    with smtplib.SMTP(*addr(primary["smtp"])) as s:
        s.sendmail("x@remote.test", [f"alice@{DOMAIN}"], msg)
    pid = next(n["pid"] for n in up["nodes"] if n["name"] == primary["node"])
    os.kill(pid, signal.SIGKILL)

    def new_primary():
        rows = json.loads(mailctl("--dir", d, "status", "--json").stdout)["members"]
        return next(
            (
                r
                for r in rows
                if r["shard"] == shard
                and r["role"] == "primary"
                and r["alive"]
                and r["node"] != primary["node"]
            ),
            None,
        )

    new = wait_for(new_primary, 30, what="failover in the local cluster")
    pop3 = next(n["pop3"] for n in up["nodes"] if n["name"] == new["node"])
    assert [body_of(m) for m in pop3_messages(addr(pop3), f"alice@{DOMAIN}", tls=True)] == [msg]
    assert "session expired" in mailctl("--dir", d, "history").stdout

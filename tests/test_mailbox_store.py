"""The shard index with real nodes: folder and flag records (through mailctl mailbox)
come back exactly after kill -9, a failover, a snapshot bootstrap, a backup and a
point-in-time restore; POP3 reads from the index; quotas refuse with 452 4.2.2;
a Dovecot passwd-file imports; store verify and rebuild."""

from __future__ import annotations

import contextlib
import json
import os
import poplib
import shutil
import smtplib
import time

import pytest
from harness import DOMAIN, PASSWORD
from harness.archive import restored_node, shipped_all
from harness.wait import wait_for

from mailnode.admin.client import AdminClient
from mailnode.users import shard_of
from mailnode.wire import read_secret, token_path

ALICE = f"alice@{DOMAIN}"
SHARD = shard_of(ALICE, 2)
SPECIAL_DIRS = {".Archive", ".Drafts", ".Junk", ".Sent", ".Trash"}  # made with the user


def send(node, n: int, tag: str, rcpt: str = ALICE, body: str = "") -> None:
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        for i in range(n):
            text = f"Subject: {tag} {i}\r\n\r\n{tag} {i}\r\n{body}"
            s.sendmail("x@remote.test", [rcpt], text.encode())


def mailbox(node, *args: str) -> dict:
    return json.loads(node.mailctl("mailbox", ALICE, *args, "--json").stdout)


def picture(node) -> dict:
    """Folders (UIDVALIDITY, UIDNEXT, modseq, subscription) and every folder's messages
    (UID, flags, modseq, size): what an IMAP client would see."""
    folders = mailbox(node, "folders")["folders"]
    return {
        "folders": folders,
        "messages": {f["name"]: mailbox(node, "messages", f["name"])["messages"] for f in folders},
    }


def work_the_mailbox(node) -> None:
    """Every kind of mailbox record, on a mailbox with 6 messages."""
    wait_for(lambda: len(mailbox(node, "messages")["messages"]) == 6, 20, what="6 messages")
    node.mailctl("mailbox", ALICE, "create", "Keep")
    node.mailctl("mailbox", ALICE, "create", "Lists/python")
    node.mailctl("mailbox", ALICE, "subscribe", "Keep")
    node.mailctl("mailbox", ALICE, "flags", "INBOX", "add", "1-3", "\\Seen")
    node.mailctl("mailbox", ALICE, "flags", "INBOX", "add", "2", "\\Flagged", "$Important")
    node.mailctl("mailbox", ALICE, "flags", "INBOX", "remove", "3", "\\Seen")
    node.mailctl("mailbox", ALICE, "move", "INBOX", "2", "Keep")
    node.mailctl("mailbox", ALICE, "copy", "INBOX", "1,4", "Lists/python")
    node.mailctl("mailbox", ALICE, "expunge", "INBOX", "5")
    node.mailctl("mailbox", ALICE, "rename", "Lists", "Old")


def check_worked(pic: dict) -> None:
    """What work_the_mailbox leaves, whoever computed it."""
    names = [f["name"] for f in pic["folders"]]
    # The SPECIAL-USE folders every new user gets, and what the test made.
    assert names == [
        "Archive",
        "Drafts",
        "INBOX",
        "Junk",
        "Keep",
        "Old",
        "Old/python",
        "Sent",
        "Trash",
    ]
    inbox = {m["uid"]: m for m in pic["messages"]["INBOX"]}
    assert sorted(inbox) == [1, 3, 4, 6]
    assert inbox[1]["flags"] == ["\\Seen"] and inbox[3]["flags"] == []
    [moved] = pic["messages"]["Keep"]
    assert moved["uid"] == 1 and moved["flags"] == ["$Important", "\\Flagged", "\\Seen"]
    assert [m["uid"] for m in pic["messages"]["Old/python"]] == [1, 2]
    archive = next(f for f in pic["folders"] if f["name"] == "Keep")
    assert archive["subscribed"] and archive["uidnext"] == 2


def maildir_names(node, shard: int = SHARD) -> dict[str, list[str]]:
    """The files of alice's Maildir++ folders (INBOX is ".")."""
    box = os.path.join(node.data_dir, "shards", str(shard), "maildir", DOMAIN, "_alice")
    out = {}
    for d in sorted(os.listdir(box)):
        if d == "." or d.startswith("."):
            path = os.path.join(box, d)
            if os.path.isdir(os.path.join(path, "cur")):
                out[d] = sorted(
                    os.listdir(os.path.join(path, "cur")) + os.listdir(os.path.join(path, "new"))
                )
    out["."] = sorted(os.listdir(os.path.join(box, "cur")) + os.listdir(os.path.join(box, "new")))
    return out


def test_folders_and_flags_survive_kill9_and_a_rebuild_and_verify_clean(make_node):
    node = make_node()
    node.start()
    node.add_user(ALICE)
    send(node, 6, "kill")
    work_the_mailbox(node)
    before = picture(node)
    check_worked(before)
    files = maildir_names(node)
    # Maildir++ as Dovecot reads it: flags in the names, folders as dot-directories.
    assert set(files) == {".", ".Keep", ".Old", ".Old.python"} | SPECIAL_DIRS
    assert sum(n.endswith(":2,S") for n in files["."]) == 1  # UID 1
    assert [n.rpartition(":2,")[2] for n in files[".Keep"]] == ["FS"]

    node.kill9()
    node.start()
    assert picture(node) == before
    r = node.mailctl("store", "verify", "--shard", str(SHARD))
    assert "1 mailboxes, 7 messages: ok" in r.stdout  # 4 + 1 + 2
    # POP3 lists the INBOX from the index: UIDL is the Maildir name, stable.
    pop = poplib.POP3(*node.pop3, timeout=10)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    uidl = [line.split()[1].decode() for line in pop.uidl()[1]]
    pop.quit()
    assert uidl == [m["name"] for m in before["messages"]["INBOX"]]

    r = node.mailctl("store", "rebuild", "--shard", str(SHARD))
    assert "rebuilt from the journal" in r.stdout
    assert picture(node) == before and maildir_names(node) == files
    # A file someone removed behind the index's back is reported, with the exit status.
    gone = os.path.join(
        node.data_dir,
        "shards",
        str(SHARD),
        "maildir",
        DOMAIN,
        "_alice",
        ".Keep",
        "cur",
        files[".Keep"][0],
    )
    os.unlink(gone)
    r = node.mailctl("store", "verify", "--shard", str(SHARD), check=False)
    assert r.returncode == 1 and "Keep: UID 1" in r.stdout and "no file" in r.stdout


def test_folders_and_flags_follow_a_failover_and_a_snapshot_bootstrap(make_node):
    a = make_node()
    a.start()
    a.add_user(ALICE)
    a.add_user(f"bob@{DOMAIN}")
    send(a, 6, "fo")
    work_the_mailbox(a)
    before = picture(a)
    # Over 1 MiB of journal: a new spare starts from a snapshot (the index copied).
    send(a, 300, "filler", rcpt=f"bob@{DOMAIN}", body=("x" * 78 + "\r\n") * 50)
    b = make_node(**{"replication.follow": a.grpc})
    b.start()

    def in_sync() -> bool:
        rows = json.loads(a.mailctl("status", "--json").stdout)["shards"]
        return all(any(p["in_sync"] for p in r["spares"]) for r in rows)

    wait_for(in_sync, 60, what="the new spare in sync")
    a.mailctl("mailbox", ALICE, "flags", "INBOX", "add", "4", "\\Answered")  # after the snapshot
    want = picture(a)
    a.kill9()
    for shard in (0, 1):
        b.mailctl("shard", "promote", "--shard", str(shard))
    assert "installed snapshot" in b.read_log()
    got = picture(b)
    assert got == want
    check_worked(before)
    assert [f["uidvalidity"] for f in got["folders"]] == [
        f["uidvalidity"] for f in before["folders"]
    ]
    assert got["messages"]["INBOX"][2]["flags"] == ["\\Answered"]  # UID 4


def test_folders_and_flags_come_back_from_a_backup_and_a_point_in_time(
    make_node, archive, tmp_path
):
    node = make_node(**archive.node_settings())
    node.start()
    node.add_user(ALICE)
    send(node, 6, "pitr")
    work_the_mailbox(node)
    worked = picture(node)
    backup = tmp_path / "backup"
    node.mailctl("backup", "--shard", str(SHARD), str(backup), "--json")
    wait_for(lambda: shipped_all(archive, node, SHARD), 20, what="shipping")
    cut = time.time()
    time.sleep(0.01)  # not a wait: the cut is a wall-clock instant between two records, not a wait
    node.mailctl("mailbox", ALICE, "delete", "Keep")
    node.mailctl("mailbox", ALICE, "flags", "INBOX", "replace", "1", "\\Deleted")
    wait_for(lambda: shipped_all(archive, node, SHARD), 20, what="shipping")
    after = picture(node)
    assert after != worked

    pitr = restored_node(make_node, archive, "--until", f"{cut:.6f}")
    assert picture(pitr) == worked
    full = restored_node(make_node, archive, "--shard", str(SHARD), "--base", str(backup))
    assert picture(full) == after
    alone = make_node()  # the backup alone is a shard directory: index and Maildir as backed up
    os.makedirs(os.path.join(alone.data_dir, "shards"))
    shutil.copytree(backup, os.path.join(alone.data_dir, "shards", str(SHARD)))
    alone.start()
    assert picture(alone) == worked


def test_quotas_refuse_with_452_and_bulk_import_takes_dovecot_hashes(make_node, tmp_path):
    node = make_node()
    node.start()
    node.add_user(ALICE)
    node.mailctl("user", "quota", ALICE, "--messages", "3")
    send(node, 3, "q")
    wait_for(lambda: len(mailbox(node, "messages")["messages"]) == 3, 20, what="3 messages")
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        s.ehlo()
        s.mail("x@remote.test")
        code, text = s.rcpt(ALICE)
    assert code == 452 and b"4.2.2" in text and b"3 messages of 3" in text
    shown = json.loads(node.mailctl("user", "show", ALICE, "--json").stdout)
    assert shown["messages"] == 3 and shown["quota_messages"] == 3
    metrics = node.metrics()
    assert "mailcluster_quota_refusals_total" in metrics
    node.mailctl("mailbox", ALICE, "expunge", "INBOX", "1")
    send(node, 1, "room")  # room again: accepted

    # A domain default, checked at DATA with the message's size; a user's own setting wins.
    node.mailctl("user", "quota", f"@{DOMAIN}", "--storage", "1K")
    bob = f"bob@{DOMAIN}"
    node.add_user(bob)
    big = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 20
    with smtplib.SMTP(*node.smtp, timeout=30) as s, pytest.raises(smtplib.SMTPDataError) as refused:
        s.sendmail("x@remote.test", [bob], big)
    assert refused.value.smtp_code == 452 and b"4.2.2" in refused.value.smtp_error
    node.mailctl("user", "quota", bob, "--storage", "1M")
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        s.sendmail("x@remote.test", [bob], big)  # accepted now

    # Import: Dovecot's passwd-file format, hashes as they are; bad lines by number.
    bad = tmp_path / "bad.passwd"
    bad.write_text(f"carol@{DOMAIN}:{{PLAIN}}secret\nnot-an-address:{{SSHA512}}xx\n")
    r = node.mailctl("user", "import", str(bad), check=False)
    assert r.returncode == 1 and "bad.passwd:1:" in r.stderr and "bad.passwd:2:" in r.stderr
    assert "nothing imported" in r.stderr
    good = tmp_path / "users.passwd"
    sha512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/"
    lines = [
        f"user{i}@{DOMAIN}:{{SHA512-CRYPT}}{sha512}::::::userdb_quota_rule=*:storage=1M"
        for i in range(3000)
    ]
    good.write_text("\n".join(lines) + "\n")
    r = node.mailctl("user", "import", str(good))
    assert "3000 users: 3000 added, 0 updated, 0 unchanged" in r.stdout
    r = node.mailctl("user", "import", str(good))  # idempotent
    assert "0 added, 0 updated, 3000 unchanged" in r.stdout
    shown = json.loads(node.mailctl("user", "show", f"user7@{DOMAIN}", "--json").stdout)
    assert shown["quota_bytes"] == 1024 * 1024
    # The listing comes in pages (a million users do not fit one gRPC reply).
    with AdminClient(node.grpc, read_secret(token_path(node.data_dir))) as admin:
        listed = [u.address for u in admin.list_users(page=700)]
    assert listed == sorted(set(listed)) and {ALICE, bob} <= set(listed)
    assert {f"user{i}@{DOMAIN}" for i in range(3000)} <= set(listed) and len(listed) == 3002
    with contextlib.closing(poplib.POP3(*node.pop3, timeout=10)) as pop:
        pop.user(f"user7@{DOMAIN}")  # the imported hash logs in
        assert pop.pass_("password").startswith(b"+OK")
        pop.quit()

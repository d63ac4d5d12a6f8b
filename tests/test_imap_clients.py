"""IMAP on a node with real mail programs, end to end: curl (imap:// and imaps://),
fetchmail in IMAP mode, and mutt driven on a tmux screen. Mail arrives by SMTP; what
each program did is checked both in its own output and on the server with imaplib."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import smtplib
import ssl

import pytest
from harness import DOMAIN, PASSWORD
from harness.certs import make_certificate
from harness.imap import login, ok, settings
from harness.mail import body_of
from harness.muas import Tmux, need, report, run
from harness.wait import wait_for

ALICE = f"alice@{DOMAIN}"
CERT_NAME = "mx.test"  # the certificate's name (and 127.0.0.1); nodes are other IPs


@pytest.fixture
def cert(tmp_path):
    return make_certificate(tmp_path, CERT_NAME)


@pytest.fixture
def inode(make_node, cert):
    n = make_node(**settings(cert))
    n.start()
    n.add_user(ALICE)
    return n


def message(tag: str, i: int, rcpt: str = ALICE) -> bytes:
    return (
        f"From: X <x@remote.test>\r\nTo: {rcpt}\r\nSubject: {tag} {i}\r\n"
        f"Date: Mon, 02 Mar 2026 10:0{i % 10}:00 +0000\r\n"
        f"Message-ID: <{tag}.{i}@remote.test>\r\n\r\n"
        f"body of {tag} {i}\r\nsecond line of {tag} {i}\r\n"
    ).encode()


def send(node, tag: str, n: int, first: int = 0) -> list[bytes]:
    """n messages delivered by SMTP; the bytes sent, in order."""
    sent = [message(tag, i) for i in range(first, first + n)]
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        for m in sent:
            s.sendmail("x@remote.test", [ALICE], m)
    return sent


def count(node, cert: str, mailbox: str = "INBOX") -> int:
    c = login(node, ALICE, cert)
    try:
        st = ok(c.status(mailbox, "(MESSAGES)"))[0]
        return int(re.search(rb"MESSAGES (\d+)", st).group(1))
    finally:
        c.logout()


def wait_count(node, cert: str, n: int, mailbox: str = "INBOX") -> None:
    wait_for(lambda: count(node, cert, mailbox) == n, 20, what=f"{n} messages in {mailbox}")


def contents(node, cert: str, mailbox: str) -> list[tuple[int, str, bytes]]:
    """(uid, flags, whole message) of every message of a mailbox, by UID."""
    c = login(node, ALICE, cert)
    try:
        ok(c.select(mailbox, readonly=True))
        out = []
        data = ok(c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])"))
        for item in data:
            if isinstance(item, tuple):
                meta = item[0].decode()
                uid = int(re.search(r"UID (\d+)", meta).group(1))
                flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1)
                out.append((uid, flags, item[1]))
        return sorted(out)
    finally:
        c.logout()


def subject(msg: bytes) -> str:
    m = re.search(rb"^Subject: (.*?)\r?$", msg, re.M)
    return m.group(1).decode() if m else "?"


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def m_text(m: bytes) -> bytes:
    """The text of a message (after the blank line)."""
    return m.split(b"\r\n\r\n", 1)[1]


# -- curl -----------------------------------------------------------------------------
def test_curl_lists_fetches_searches_and_appends(inode, cert, tmp_path):
    curl = need("curl")
    ip = inode.ip
    sent = send(inode, "curl", 3)
    wait_count(inode, cert[0], 3)
    base = f"imaps://{CERT_NAME}:1993"
    common = [
        curl,
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--cacert",
        cert[0],
        # The certificate names mx.test: curl connects to the node's IP under that name,
        # so the certificate is verified in full (chain and host name).
        "--resolve",
        f"{CERT_NAME}:1993:{ip}",
        "--resolve",
        f"{CERT_NAME}:1143:{ip}",
        "--user",
        f"{ALICE}:{PASSWORD}",
    ]

    def curl_ok(*args: str) -> bytes:
        p = run([*common, *args], timeout=40)
        assert p.returncode == 0, report(p)
        return p.stdout

    # LIST "" * (after AUTHENTICATE PLAIN with SASL-IR): every folder of a new account.
    listing = curl_ok(f"{base}/").decode()
    names = {line.rsplit(" ", 1)[-1].strip('"') for line in listing.splitlines()}
    assert names == {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}, listing
    assert all(line.startswith("* LIST (") for line in listing.splitlines()), listing
    # A URL with a mailbox and nothing else: LIST "INBOX" * (reference INBOX).
    assert "INBOX" in curl_ok(f"{base}/INBOX").decode()

    # UID FETCH n BODY[]: the bytes sent, behind the Received: header the node adds.
    for uid, m in enumerate(sent, 1):
        got = curl_ok(f"{base}/INBOX;UID={uid}")
        assert body_of(got) == m, (uid, got)
    # A section, and a message by its sequence number (FETCH 3 BODY[]).
    assert curl_ok(f"{base}/INBOX;UID=2;SECTION=TEXT") == m_text(sent[1])
    assert body_of(curl_ok(f"{base}/INBOX;MAILINDEX=3")) == sent[2]
    header = curl_ok(f"{base}/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)")
    assert header == b"Subject: curl 0\r\n\r\n", header
    # Fetching a message never read sets \Seen (BODY[] without PEEK).
    flags = {uid: f for uid, f, _ in contents(inode, cert[0], "INBOX")}
    assert all("\\Seen" in f for f in flags.values()), flags

    # SEARCH: a query in the URL, and custom commands on the selected mailbox.
    assert curl_ok(f"{base}/INBOX?SUBJECT%20curl") == b"* SEARCH 1 2 3\r\n"
    assert curl_ok(f"{base}/INBOX", "-X", 'SEARCH SUBJECT "curl 1"') == b"* SEARCH 2\r\n"
    assert curl_ok(f"{base}/INBOX", "-X", "UID SEARCH SUBJECT curl") == b"* SEARCH 1 2 3\r\n"
    assert curl_ok(f"{base}/INBOX", "-X", "SEARCH SUBJECT nothing-like-it") == b"* SEARCH\r\n"
    out = curl_ok(f"{base}/INBOX", "-X", "UID STORE 3 +FLAGS (\\Flagged)")
    assert re.match(rb"\* 3 FETCH \(.*FLAGS \([^)]*\\Flagged", out), out
    assert curl_ok(f"{base}/INBOX", "-X", "UID SEARCH FLAGGED") == b"* SEARCH 3\r\n"

    # Upload: APPEND Sent (\Seen) {n}, a synchronising literal.
    draft = (
        b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
        b"Subject: uploaded by curl\r\n\r\nhello from curl\r\n"
    )
    path = tmp_path / "draft.eml"
    path.write_bytes(draft)
    curl_ok("--upload-file", str(path), f"{base}/Sent")
    stored = contents(inode, cert[0], "Sent")
    assert [(uid, m) for uid, _, m in stored] == [(1, draft)], stored
    assert "\\Seen" in stored[0][1], stored
    # Appending to a mailbox that does not exist: refused (NO [TRYCREATE]), exit non-zero.
    p = run([*common, "--upload-file", str(path), f"{base}/Nowhere"], timeout=40)
    assert p.returncode != 0, report(p)

    # STARTTLS on 1143, required (--ssl-reqd): the same listing.
    starttls = curl_ok("--ssl-reqd", f"imap://{CERT_NAME}:1143/").decode()
    assert {line.rsplit(" ", 1)[-1].strip('"') for line in starttls.splitlines()} == names
    # Without TLS the node advertises LOGINDISABLED: curl cannot log in.
    p = run([*common, f"imap://{CERT_NAME}:1143/"], timeout=40)
    assert p.returncode != 0 and p.stdout == b"", report(p)
    # A wrong password: login denied (curl's 67).
    bad = [a if a != f"{ALICE}:{PASSWORD}" else f"{ALICE}:wrong" for a in common]
    p = run([*bad, f"{base}/"], timeout=40)
    assert p.returncode == 67, report(p)


# -- fetchmail ------------------------------------------------------------------------
def fingerprint(cert: str) -> str:
    """The certificate's MD5 fingerprint as fetchmail writes it (AA:BB:...)."""
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    h = hashlib.md5(der, usedforsecurity=False).hexdigest().upper()
    return ":".join(h[i : i + 2] for i in range(0, len(h), 2))


def fetchmail_rc(
    home, cert: str, ip: str, out, *, port: int, ssl: bool, keep: bool, pin: bool = False
) -> str:
    """A .fetchmailrc (mode 0600, as fetchmail demands) for one IMAP poll. The node's
    certificate is trusted as its own CA (sslcertfile, sslcertck) under the name it
    carries (sslcommonname: fetchmail checks the name against the address it dials,
    even with `poll NAME via IP`), or with pin, by its fingerprint alone."""
    if pin:
        trust = f'no sslcertck sslfingerprint "{fingerprint(cert)}"'
    else:
        trust = f'sslcertck sslcertfile "{cert}" sslcommonname "{CERT_NAME}"'
    lines = [
        "set no bouncemail",
        f"poll {ip} protocol IMAP port {port}",
        f'  user "{ALICE}" password "{PASSWORD}"',
        # ssl: TLS from the start; sslproto without ssl: STARTTLS, required.
        f'  {"ssl " if ssl else ""}sslproto "TLS1.2+" {trust}',
        "  keep" if keep else "  no keep fetchall",
        # One file per message (fetchmail runs the MDA once per message, with sh).
        f'  mda "cat > $(mktemp {out}/msg.XXXXXX)"',
    ]
    rc = os.path.join(home, f"fetchmailrc-{port}{'-pin' if pin else ''}")
    with open(rc, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(rc, 0o600)
    return rc


def fetchmail(home, rc: str) -> tuple[int, str, str]:
    """Run fetchmail once: (exit code, its whole verbose log, a report for messages)."""
    exe = need("fetchmail")
    env = {**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home), "LC_ALL": "C"}
    p = run(
        [exe, "-f", rc, "--nodetach", "--nosyslog", "-v", "--pidfile", f"{home}/fetchmail.pid"],
        timeout=60,
        env=env,
    )
    # 0: mail retrieved; 1: no mail; anything else an error.
    assert p.returncode in (0, 1), report(p)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), report(p)


def delivered(out) -> list[bytes]:
    found = []
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name), "rb") as f:
            found.append(f.read())
    return found


def check_delivered(files: list[bytes], sent: list[bytes], log: str) -> None:
    """Each message sent is one file: fetchmail's Received: on top of the node's, then
    the message as sent (with LF line ends: fetchmail strips CR for an MDA)."""
    assert len(files) == len(sent), (len(files), log)
    by_subject = {subject(f): f for f in files}
    for m in sent:
        got = by_subject.get(subject(m))
        assert got is not None, (subject(m), sorted(by_subject), log)
        assert lf(got).endswith(lf(m)), (got, m)
        head = lf(got)[: -len(lf(m))]
        assert head.startswith(b"Received: ") and b" with IMAP (fetchmail-" in head, got
        assert re.search(rb"\nReceived: .*\n\s+by mx\.example\.test ", head), got


def test_fetchmail_imap_keep_then_fetch_and_delete(inode, cert, tmp_path):
    need("fetchmail")
    home = tmp_path / "home"
    home.mkdir()
    sent = send(inode, "fetchmail", 3)
    wait_count(inode, cert[0], 3)

    # 1. TLS on 1993, keep: every message delivered, all left on the server as \Seen.
    out1 = tmp_path / "out1"
    out1.mkdir()
    rc = fetchmail_rc(home, cert[0], inode.ip, out1, port=1993, ssl=True, keep=True)
    code, log, rep = fetchmail(home, rc)
    assert code == 0, rep
    assert re.search(r"3 messages for \S+ at", log), rep
    assert len(re.findall(r"IMAP> A\d+ STORE \d+ \+FLAGS \(\\Seen\)", log)) == 3, rep
    check_delivered(delivered(out1), sent, rep)
    kept = contents(inode, cert[0], "INBOX")
    assert [body_of(m) for _, _, m in kept] == sent, (kept, rep)
    assert all("\\Seen" in f and "\\Deleted" not in f for _, f, _ in kept), (kept, rep)
    # Again, trusting the certificate by its fingerprint this time: nothing unseen, so
    # nothing fetched (exit 1: no mail).
    rc = fetchmail_rc(home, cert[0], inode.ip, out1, port=1993, ssl=True, keep=True, pin=True)
    code, log, rep = fetchmail(home, rc)
    assert code == 1 and len(delivered(out1)) == 3, rep
    assert "fingerprints match" in log and re.search(r"3 messages \(3 seen\) for", log), rep
    assert count(inode, cert[0]) == 3, rep

    # 2. STARTTLS on 1143 (sslproto without ssl), no keep, fetchall: the 3 kept and
    # 2 new ones, each flagged \Deleted and expunged after its delivery.
    more = send(inode, "fetchmail", 2, first=3)
    wait_count(inode, cert[0], 5)
    out2 = tmp_path / "out2"
    out2.mkdir()
    rc = fetchmail_rc(home, cert[0], inode.ip, out2, port=1143, ssl=False, keep=False)
    code, log, rep = fetchmail(home, rc)
    assert code == 0, rep
    assert re.search(r"IMAP> A\d+ STARTTLS", log), rep
    assert re.search(r"5 messages (\(\d+ seen\) )?for \S+ at", log), rep
    check_delivered(delivered(out2), sent + more, rep)
    assert len(re.findall(r"IMAP> A\d+ STORE \d+ \+FLAGS \(\\Seen \\Deleted\)", log)) == 5, rep
    assert re.search(r"IMAP> A\d+ EXPUNGE", log), rep
    assert count(inode, cert[0]) == 0, (contents(inode, cert[0], "INBOX"), rep)
    # A last run finds the mailbox empty.
    code, log, rep = fetchmail(home, rc)
    assert code == 1 and len(delivered(out2)) == 5, rep
    assert re.search(r"No mail for \S+ at", log), rep


# -- mutt -----------------------------------------------------------------------------
MUTTRC = """\
set folder="imaps://alice%40example.test@{ip}:1993/"
set spoolfile="+INBOX"
set imap_user="{user}"
set imap_pass="{password}"
set certificate_file="{certs}"
set ssl_verify_host=no
set ssl_force_tls=yes
set header_cache=""
set message_cachedir=""
set imap_check_subscribed=yes
set imap_passive=no
set imap_idle=yes
set mail_check=60
set timeout=1
set sort=mailbox-order
set index_format="%4C [%S] %s"
set status_format="STATUS %f msgs=%m del=%d"
set pager_index_lines=0
set pager_stop=yes
set markers=no
set wait_key=no
set beep=no
set help=no
set move=no
set quit=yes
set confirmappend=no
set confirmcreate=no
set delete=ask-yes
set tmpdir="{tmp}"
"""


def row(screen: str, number: int) -> str | None:
    """The index line of message number (its %C) as "status|subject", or None. The
    status (%S): N new, - read, D deleted."""
    m = re.search(rf"^\s*{number} \[(.)\] (.*?)\s*$", screen, re.M)
    return f"{m.group(1)}|{m.group(2)}" if m else None


def mutt_imap_log(home) -> list[str] | None:
    """mutt's IMAP dialogue from its -d 3 debug log ("4> a0001 CMD", "4< * ..."; lines
    it pipelined have no prefix), or None from a mutt built without debugging."""
    try:
        with open(os.path.join(home, ".muttdebug0"), errors="replace") as f:
            log = f.read()
    except OSError:
        return None
    return [
        m.group(2)
        for line in log.splitlines()
        if (m := re.match(r"(\[[^]]*\] )?(\d+[<>] .*|a\d+ .*)", line))
    ]


def mutt_dialogue(home, lines: int = 80) -> str:
    imap = mutt_imap_log(home)
    if imap is None:
        return "(no debug log: this mutt is built without debugging)"
    tail = (line[:240] for line in imap[-lines:])
    return "--- mutt's IMAP dialogue (.muttdebug0) ---\n" + "\n".join(tail)


def last_command(imap: list[str], before: int | None = None) -> str:
    """The last line mutt sent (a command, or IDLE's DONE) before a position."""
    sent = [line for line in imap[:before] if re.match(r"(\d+> |a\d+ )", line)]
    return sent[-1] if sent else ""


def mutt_idling(home) -> bool:
    """Whether mutt sits in IDLE (its last command IDLE, the server's + since)."""
    imap = mutt_imap_log(home)
    if imap is None:
        return True  # cannot tell: the test then relies on the screen alone
    if not re.search(r"> a\d+ IDLE$", last_command(imap)):
        return False
    idle = max(i for i, line in enumerate(imap) if re.search(r"> a\d+ IDLE$", line))
    return any(line.startswith(tuple(f"{d}< +" for d in range(10))) for line in imap[idle:])


def test_mutt_reads_deletes_saves_and_copies_on_a_tmux_screen(inode, cert, tmp_path):
    need("mutt")
    need("tmux")
    home = tmp_path / "mutthome"
    home.mkdir()
    # mutt trusts a certificate found in certificate_file (no prompt to accept it).
    certs = home / "certificates"
    shutil.copyfile(cert[0], certs)
    muttrc = home / "muttrc"
    muttrc.write_text(
        MUTTRC.format(ip=inode.ip, user=ALICE, password=PASSWORD, certs=certs, tmp=home)
    )
    send(inode, "mutt", 4)
    wait_count(inode, cert[0], 4)

    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMUX_TMPDIR": str(home),
    }
    tmux = Tmux(str(home), "mutt", env)
    try:
        tmux.start(f"mutt -n -d 3 -F {shlex.quote(str(muttrc))}")
        screen = tmux.wait(
            lambda s: all(row(s, i + 1) == f"N|mutt {i}" for i in range(4)),
            "the index with 4 new messages",
        )
        assert "STATUS =INBOX msgs=4" in screen or "msgs=4" in screen, screen

        # New mail while mutt waits in IDLE: the server pushes * 5 EXISTS, it shows up.
        wait_for(lambda: mutt_idling(home), 20, what="mutt to go IDLE")
        send(inode, "mutt", 1, first=4)
        tmux.wait(lambda s: row(s, 5) == "N|mutt 4", "the 5th message to show up", 30)
        imap = mutt_imap_log(home)
        if imap is not None:
            exists = next(i for i, line in enumerate(imap) if line.endswith("< * 5 EXISTS"))
            assert re.search(r"> a\d+ IDLE$", last_command(imap, exists)), imap[-40:]

        # 1: open it (Enter), read its body, back to the index (q): it is read.
        tmux.keys("1", "Enter")  # jump to message 1
        tmux.keys("Enter")
        tmux.wait(
            lambda s: "body of mutt 0" in s and "second line of mutt 0" in s,
            "the pager with message 1's body",
        )
        tmux.keys("q")
        tmux.wait(lambda s: row(s, 1) == "-|mutt 0", "message 1 read in the index")

        # 2: delete it (d): marked D.
        tmux.keys("2", "Enter")
        tmux.keys("d")
        tmux.wait(lambda s: row(s, 2) == "D|mutt 1", "message 2 marked deleted")

        # 3: save it to =Archive (s): copied there, marked deleted here.
        tmux.keys("3", "Enter")
        tmux.keys("s")
        tmux.wait(lambda s: "Save to mailbox" in s, "the save prompt")
        tmux.keys("C-u")  # clear the suggested folder
        tmux.type("=Archive")
        tmux.keys("Enter")
        tmux.wait(lambda s: row(s, 3) == "D|mutt 2", "message 3 saved (and marked deleted)")

        # 4: copy it to =Archive (C): copied there, kept here.
        tmux.keys("4", "Enter")
        tmux.keys("C")
        tmux.wait(lambda s: "Copy to mailbox" in s, "the copy prompt")
        tmux.keys("C-u")
        tmux.type("=Archive")
        tmux.keys("Enter")
        wait_count(inode, cert[0], 2, "Archive")

        # Sync ($): mutt asks to purge the two deleted; yes.
        tmux.keys("$")
        tmux.wait(lambda s: "Purge 2 deleted messages?" in s, "the purge prompt")
        tmux.keys("y")
        screen = tmux.wait(
            lambda s: row(s, 3) == "N|mutt 4" and "mutt 1" not in s and "mutt 2" not in s,
            "the index after the sync (3 messages)",
        )
        assert row(screen, 1) == "-|mutt 0" and row(screen, 2) == "N|mutt 3", screen

        # Into =Archive (c): mutt sees the saved and the copied message there.
        tmux.keys("c")
        tmux.wait(lambda s: "Open mailbox" in s, "the change-folder prompt")
        tmux.keys("C-u")
        tmux.type("=Archive")
        tmux.keys("Enter")
        tmux.wait(
            lambda s: "=Archive" in s and {row(s, 1), row(s, 2)} == {"N|mutt 2", "N|mutt 3"},
            "the Archive index with messages 3 and 4",
        )
        tmux.keys("q")
        status = tmux.exit_status()
        last = tmux.screen()
        assert status == 0, (status, last)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{mutt_dialogue(home)}") from None
    finally:
        tmux.kill()

    inbox = contents(inode, cert[0], "INBOX")
    assert [subject(m) for _, _, m in inbox] == ["mutt 0", "mutt 3", "mutt 4"], (inbox, last)
    flags = {subject(m): f for _, f, m in inbox}
    assert "\\Seen" in flags["mutt 0"], flags
    assert "\\Seen" not in flags["mutt 3"] and "\\Deleted" not in flags["mutt 3"], flags
    archive = contents(inode, cert[0], "Archive")
    assert sorted(subject(m) for _, _, m in archive) == ["mutt 2", "mutt 3"], archive
    assert all(body_of(m) == message("mutt", int(subject(m)[-1])) for _, _, m in archive)
    assert all("\\Deleted" not in f for _, f, _ in archive), archive

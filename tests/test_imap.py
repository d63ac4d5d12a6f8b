"""IMAP on a node, with Python's imaplib and imapclient: the protocol matrix
(each extension), concurrent sessions, IDLE, and bad input answered with a code."""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import socket
import ssl
import time

import pytest
from harness import DOMAIN, PASSWORD
from harness.certs import make_certificate
from harness.imap import client, login, ok, settings, tls_context
from harness.wait import wait_for

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


@pytest.fixture
def cert(tmp_path):
    return make_certificate(tmp_path, "mx.test")


@pytest.fixture
def inode(make_node, cert):
    n = make_node(**settings(cert))
    n.start()
    n.add_user(ALICE)
    n.add_user(BOB)
    return n


def send(node, n: int, tag: str, rcpt: str = ALICE) -> None:
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        for i in range(n):
            s.sendmail(
                "x@remote.test",
                [rcpt],
                f"From: X <x@remote.test>\r\nTo: {rcpt}\r\nSubject: {tag} {i}\r\n"
                f"Message-ID: <{tag}.{i}@remote.test>\r\n\r\nbody of {tag} {i}\r\n".encode(),
            )


def name_of(line: bytes | str) -> str:
    """The mailbox name of a LIST/LSUB line (an atom or a quoted string)."""
    text = line.decode() if isinstance(line, bytes) else line
    return text.rsplit(" ", 1)[1].strip('"')


def refused(result: tuple, code: str) -> None:
    """A tagged NO with this response code (imaplib returns NO, raises only for BAD)."""
    typ, data = result
    assert typ == "NO" and f"[{code}".encode() in data[0], (typ, data)


def exists(c: imaplib.IMAP4) -> int:
    return int(ok(c.select("INBOX"))[0])


def test_authentication_only_under_tls_and_wrong_passwords_refused(inode, cert):
    c = imaplib.IMAP4(*inode.imap, timeout=30)
    caps = c.capabilities
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps
    with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED"):
        c.login(ALICE, PASSWORD)
    c.starttls(tls_context(cert[0]))
    caps = ok(c.capability())[0].decode().split()
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
        c.login(ALICE, "wrong password")
    typ, data = c.login(ALICE, PASSWORD)
    assert typ == "OK" and b"IMAP4rev2" in data[0]
    c.logout()
    # SASL PLAIN with an initial response (SASL-IR) on the TLS port.
    s = imaplib.IMAP4_SSL(*inode.imaps, ssl_context=tls_context(cert[0]), timeout=30)
    typ, _ = s.authenticate("PLAIN", lambda _: f"\0{BOB}\0{PASSWORD}".encode())
    assert typ == "OK"
    assert int(ok(s.select("INBOX"))[0]) == 0
    s.logout()


def test_select_fetch_store_search_expunge(inode, cert):
    send(inode, 3, "basic")
    c = login(inode, ALICE, cert[0])
    wait_for(lambda: exists(c) == 3, 20, what="3 messages")
    typ, data = c.select("INBOX")
    assert typ == "OK"
    assert re.match(r"\d+", c.response("UIDVALIDITY")[1][0].decode())
    assert c.response("UIDNEXT")[1] == [b"4"]
    data = ok(c.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    subjects = [d[1].strip() for d in data if isinstance(d, tuple)]
    assert subjects == [f"Subject: basic {i}".encode() for i in range(3)]
    meta = data[0][0].decode()
    assert "UID 1" in meta and "FLAGS ()" in meta
    size = int(re.search(r"RFC822.SIZE (\d+)", meta).group(1))
    whole = ok(c.fetch("1", "(BODY.PEEK[])"))[0][1]
    assert len(whole) == size and whole.endswith(b"body of basic 0\r\n")
    # Reading without PEEK sets \Seen, and the FETCH response says so.
    read = ok(c.fetch("2", "(BODY[TEXT])"))
    assert b"FLAGS (\\Seen)" in b" ".join(x[0] if isinstance(x, tuple) else x for x in read)
    assert b"\\Seen" in ok(c.fetch("2", "(FLAGS)"))[0]
    ok(c.store("1", "+FLAGS", "(\\Flagged $Label1)"))
    assert ok(c.search(None, "FLAGGED"))[0] == b"1"
    assert ok(c.search(None, "UNSEEN"))[0] == b"1 3"
    assert ok(c.search(None, "SUBJECT", '"basic 2"'))[0] == b"3"
    assert ok(c.search(None, "KEYWORD", "$Label1"))[0] == b"1"
    assert ok(c.search(None, "OR", "FLAGGED", "SEEN"))[0] == b"1 2"
    assert ok(c.search("UTF-8", "BODY", "basic"))[0] == b"1 2 3"
    assert ok(c.uid("SEARCH", None, "UID", "2:*"))[0] == b"2 3"
    envelope = ok(c.fetch("3", "(ENVELOPE)"))[0].decode()
    assert '"basic 2"' in envelope and '"<basic.2@remote.test>"' in envelope
    structure = ok(c.fetch("3", "(BODYSTRUCTURE)"))[0].decode()
    assert '("TEXT" "PLAIN"' in structure.upper()
    ok(c.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"2"]
    assert ok(c.search(None, "ALL"))[0] == b"1 2"
    assert ok(c.uid("SEARCH", None, "ALL"))[0] == b"1 3"
    # What IMAP changed is what the store holds (the journal's records applied).
    listing = inode.mailctl("mailbox", ALICE, "messages", "--json").stdout
    assert '"uid": 2' not in listing and "$Label1" in listing
    c.logout()


def test_folders_special_use_list_status_subscribe(inode, cert):
    c = login(inode, ALICE, cert[0])
    lines = [x.decode() for x in ok(c.list('""', "*"))]
    names = {name_of(line): line for line in lines}
    assert set(names) == {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}
    assert "\\Sent" in names["Sent"] and "\\Trash" in names["Trash"]
    assert "\\Archive" in names["Archive"] and "\\Junk" in names["Junk"]
    assert "\\Drafts" in names["Drafts"]
    ok(c.create("Projects/2026"))
    ok(c.create("Caf\u00e9".encode("utf-7").replace(b"+", b"&").decode()))  # mUTF-7: Caf&AOk-
    lines = [x.decode() for x in ok(c.list('""', "%"))]
    assert any(name_of(line) == "Projects" and "\\HasChildren" in line for line in lines)
    assert any("Caf&AOk-" in line for line in lines)
    assert not any("2026" in line for line in lines)
    ok(c.rename("Projects", "Work"))
    lines = [x.decode() for x in ok(c.list('""', "Work/*"))]
    assert [name_of(line) for line in lines] == ["Work/2026"]
    refused(c.create("Work"), "ALREADYEXISTS")
    refused(c.select("Nowhere"), "NONEXISTENT")
    ok(c.subscribe("Work"))
    lsub = [x.decode() for x in ok(c.lsub('""', "*"))]
    assert "Work" in [name_of(line) for line in lsub]
    assert "Sent" in [name_of(line) for line in lsub]  # made subscribed
    ok(c.unsubscribe("Work"))
    assert "Work" not in [name_of(x) for x in ok(c.lsub('""', "*"))]
    send(inode, 2, "status")
    wait_for(lambda: b"MESSAGES 2" in ok(c.status("INBOX", "(MESSAGES)"))[0], 20, what="2 messages")
    st = ok(c.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)"))[0]
    assert b"UNSEEN 2" in st and b"UIDNEXT 3" in st and b"SIZE " in st
    ok(c.delete("Work/2026"))
    refused(c.delete("INBOX"), "CANNOT")
    names = [name_of(x) for x in ok(c.list('""', "*"))]
    assert "Work/2026" not in names and "Work" in names
    c.logout()


def test_append_uidplus_copy_move(inode, cert):
    c = login(inode, ALICE, cert[0])
    msg = b"From: alice@example.test\r\nSubject: draft\r\n\r\nhello\r\n"
    when = imaplib.Time2Internaldate(time.mktime((2025, 3, 4, 5, 6, 7, 0, 0, -1)))
    typ, data = c.append("Sent", "(\\Seen $Sent)", when, msg)
    assert typ == "OK"
    m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
    assert m and m.group(2) == b"1"
    refused(c.append("Nowhere", None, None, msg), "TRYCREATE")
    ok(c.select("Sent"))
    meta = ok(c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE)"))[0].decode()
    assert "\\Seen" in meta and "$Sent" in meta and f"RFC822.SIZE {len(msg)}" in meta
    assert "04-Mar-2025" in meta
    assert ok(c.fetch("1", "(BODY.PEEK[])"))[0][1] == msg
    # On disk: Maildir++ .Sent/cur with the S flag.
    box = os.path.join(inode.data_dir, "shards")
    found = [
        f
        for root, _, files in os.walk(box)
        for f in files
        if root.endswith(os.path.join(".Sent", "cur"))
    ]
    assert len(found) == 1 and found[0].endswith(":2,S")
    send(inode, 3, "cm")
    ok(c.select("INBOX"))
    wait_for(lambda: exists(c) == 3, 20, what="3 messages")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0]
    _uidvalidity, src, dst = re.search(rb"COPYUID (\d+) (\S+) (\S+)\]", data[0]).groups()
    assert src == b"1:2" and dst == b"1:2"
    typ, data = c._simple_command("UID", "MOVE", "3", "Trash")
    assert typ == "OK"
    assert c.untagged_responses.get("EXPUNGE") == [b"3"]
    assert b"COPYUID" in b" ".join(c.untagged_responses.get("OK", []))
    assert int(ok(c.select("Trash"))[0]) == 1
    assert int(ok(c.select("Archive"))[0]) == 2
    assert int(ok(c.select("INBOX"))[0]) == 2
    c.logout()


def test_condstore_qresync_enable_id_namespace_quota(inode, cert):
    send(inode, 4, "cs")
    c = client(inode, ALICE, cert[0])
    assert b"QRESYNC" in c.capabilities() and b"IDLE" in c.capabilities()
    assert c.enable("QRESYNC") == [b"QRESYNC"]
    wait_for(lambda: c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 4, 20, what="4 msgs")
    sel = c.select_folder("INBOX")
    uidvalidity, modseq0 = sel[b"UIDVALIDITY"], sel[b"HIGHESTMODSEQ"]
    got = c.fetch(c.search(), ["MODSEQ"])
    assert all(v[b"MODSEQ"][0] <= modseq0 for v in got.values())
    c.add_flags([2], [b"\\Seen"])
    changed = c.fetch(c.search(), ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq0}"])
    assert list(changed) == [2]
    high = changed[2][b"MODSEQ"][0]
    # A conditional STORE on an older modseq fails for that message: MODIFIED.
    typ, data = c._imap.uid("STORE", "2", f"(UNCHANGEDSINCE {modseq0})", "+FLAGS", "(\\Flagged)")
    assert typ == "OK" and c._imap.untagged_responses.pop("MODIFIED") == [b"2"], data
    c.delete_messages([3])
    c.expunge()
    c.unselect_folder()
    # QRESYNC: what changed since modseq0, with VANISHED (EARLIER) for the expunge.
    typ, _ = c._imap._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {modseq0}))")
    assert typ == "OK"
    vanished = c._imap.untagged_responses.get("VANISHED", [])
    assert any(b"(EARLIER) 3" in v for v in vanished), vanished
    fetches = b" ".join(
        x if isinstance(x, bytes) else x[0] for x in c._imap.untagged_responses.get("FETCH", [])
    )
    assert b"UID 2" in fetches and b"MODSEQ (%d)" % high in fetches, fetches
    ident = c.id_({"name": "pytest"})
    ident = ident[0] if len(ident) == 1 else ident  # imapclient wraps the list once
    assert dict(zip(ident[::2], ident[1::2], strict=True))[b"name"] == b"mailcluster", ident
    assert c.namespace().personal == (("", "/"),)
    inode.mailctl("user", "quota", ALICE, "--messages", "4", "--storage", "1000000")
    _roots, quotas = c.get_quota_root("INBOX")
    q = {x.resource: (x.usage, x.limit) for x in quotas}
    assert q["MESSAGE"] == (3, 4) and q["STORAGE"][1] == 976
    c.append("INBOX", b"Subject: one more\r\n\r\nfits\r\n")
    with pytest.raises(Exception, match="OVERQUOTA"):
        c.append("INBOX", b"Subject: too many\r\n\r\nover\r\n")
    c.logout()


def test_concurrent_sessions_see_each_others_changes_and_idle_wakes(inode, cert):
    send(inode, 2, "cc")
    a = client(inode, ALICE, cert[0])
    b = client(inode, ALICE, cert[0])
    wait_for(lambda: a.select_folder("INBOX")[b"EXISTS"] == 2, 20, what="2 messages")
    b.select_folder("INBOX")
    a.add_flags([1], [b"\\Flagged"])
    b.noop()
    assert b.fetch([1], ["FLAGS"])[1][b"FLAGS"] == (b"\\Flagged",)
    b.idle()
    t0 = time.monotonic()
    send(inode, 1, "idle")
    got = b.idle_check(timeout=5)
    latency = time.monotonic() - t0
    b.idle_done()
    assert (3, b"EXISTS") in got and latency < 2.0, (got, latency)
    a.select_folder("INBOX")
    a.delete_messages([1])
    a.expunge()
    _, updates = b.noop()
    assert (1, b"EXPUNGE") in updates, updates
    assert b.search(["ALL"]) == [2, 3]  # imapclient searches by UID
    a.logout()
    b.logout()


def _raw(node, cert: str) -> ssl.SSLSocket:
    s = socket.create_connection(node.imaps, timeout=10)
    t = tls_context(cert).wrap_socket(s)
    t.recv(4096)  # the greeting
    return t


def _ask(t: ssl.SSLSocket, data: bytes) -> bytes:
    t.sendall(data)
    out = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = t.recv(65536)
        if not chunk:
            break
        out += chunk
        if re.search(rb"(^|\r\n)([^*\s]\S* (OK|NO|BAD)|\* BAD)[^\r\n]*\r\n$", out):
            break
    return out


def test_bad_input_gets_a_tagged_bad_or_no_with_a_code(inode, cert):
    t = _raw(inode, cert[0])
    for garbage, expect in [
        (b"\r\n", rb"\* BAD \[CLIENTBUG\]"),
        (b"a1 FROB\r\n", rb"a1 BAD \[CLIENTBUG\]"),
        (b"a2 SELECT\r\n", rb"a2 (BAD|NO) \["),
        (b"a3 FETCH 1 (FLAGS)\r\n", rb"a3 BAD \[CLIENTBUG\]"),  # not selected
        (b"a4 LOGIN {9999999999999999999999}\r\n", rb"(a4|\*) BAD \[CLIENTBUG\]"),
        (b'a5 LOGIN "unterminated\r\n', rb"a5 BAD \[CLIENTBUG\]"),
        (b"\x00\xff\xfe garbage (((\r\n", rb"BAD \[CLIENTBUG\]"),
    ]:
        got = _ask(t, garbage)
        assert re.search(expect, got), (garbage, got)
        assert b"Traceback" not in got
    got = _ask(t, f'a6 LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    assert b"a6 OK" in got
    got = _ask(t, b"a7 SELECT INBOX\r\n")
    assert b"a7 OK" in got
    for garbage, expect in [
        (b"a8 FETCH 99 (FLAGS)\r\n", rb"a8 BAD \[CLIENTBUG\]"),
        (b"a9 FETCH 1:* (FROB)\r\n", rb"a9 BAD \[CLIENTBUG\]"),
        (b"b1 STORE 1:* +FLAGS (\\Bogus)\r\n", rb"b1 (BAD|NO) \["),
        (b"b2 SEARCH CHARSET KOI8-R TEXT x\r\n", rb"b2 NO \[BADCHARSET"),
        (b"b3 UID FETCH 1:* (BODY[1.2.3.HEADER.FIELDS (]\r\n", rb"b3 BAD \[CLIENTBUG\]"),
    ]:
        got = _ask(t, garbage)
        assert re.search(expect, got), (garbage, got)
    got = _ask(t, b"b4 NOOP\r\n")
    assert b"b4 OK" in got  # the session survived all of it
    t.close()
    assert "Traceback" not in inode.read_log()


def _session(node, cert: str) -> ssl.SSLSocket:
    t = _raw(node, cert)
    assert b"a0 OK" in _ask(t, f'a0 LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    return t


def test_extensions_over_the_wire_rev2_esearch_binary_literal_plus_utf8_list_status(inode, cert):
    send(inode, 3, "wire")
    t = _session(inode, cert[0])
    wait_for(lambda: b"MESSAGES 3" in _ask(t, b"s STATUS INBOX (MESSAGES)\r\n"), 20, what="mail")
    # LITERAL+: no continuation request; BINARY: literal8 upload.
    msg = (
        b"Subject: plus\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
    )
    got = _ask(t, b"a1 APPEND Drafts (\\Draft) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"+ " not in got and re.search(rb"a1 OK \[APPENDUID \d+ 1\]", got), got
    assert b"a2 OK" in _ask(t, b"a2 SELECT Drafts\r\n")
    got = _ask(t, b"a3 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n")
    assert b"BINARY[1] {11}\r\nhello world" in got and b"BINARY.SIZE[1] 11" in got, got
    # ESEARCH (RFC 4731) with RETURN, and IMAP4rev2 after ENABLE: ESEARCH always, no RECENT.
    assert b"a4 OK" in _ask(t, b"a4 SELECT INBOX\r\n")
    got = _ask(t, b"a5 SEARCH RETURN (MIN MAX COUNT) ALL\r\n")
    assert b'* ESEARCH (TAG "a5") MIN 1 MAX 3 COUNT 3' in got, got
    got = _ask(t, b"a6 UID SEARCH RETURN (ALL) SUBJECT wire\r\n")
    assert b'* ESEARCH (TAG "a6") UID ALL 1:3' in got, got
    got = _ask(t, b"a7 ENABLE IMAP4rev2\r\n")  # RFC 5161: not while a mailbox is selected
    assert b"a7 BAD [CLIENTBUG]" in got, got
    assert b"a7b OK" in _ask(t, b"a7b UNSELECT\r\n")
    got = _ask(t, b"a7c ENABLE IMAP4rev2 UTF8=ACCEPT\r\n")
    assert b"* ENABLED IMAP4REV2 UTF8=ACCEPT" in got, got
    got = _ask(t, b"a8 SELECT INBOX\r\n")
    assert b"RECENT" not in got and b'* LIST () "/" INBOX' in got, got
    got = _ask(t, b"a8b SELECT INBOX\r\n")  # the implicit close is said (RFC 9051 7.1)
    assert got.startswith(b"* OK [CLOSED]"), got
    got = _ask(t, b"a9 SEARCH UNSEEN\r\n")
    assert b'* ESEARCH (TAG "a9") ALL 1:3' in got, got
    # UTF8=ACCEPT: folder names as UTF-8, not modified UTF-7.
    assert b"b1 OK" in _ask(t, 'b1 CREATE "Caf\u00e9"\r\n'.encode())
    got = _ask(t, b'b2 LIST "" "Caf*" RETURN (STATUS (MESSAGES UIDNEXT SIZE))\r\n')
    assert '"/" "Caf\u00e9"'.encode() in got or '"/" Caf\u00e9'.encode() in got, got
    assert b"* STATUS" in got and b"MESSAGES 0" in got and b"UIDNEXT 1" in got, got
    got = _ask(t, b'b3 LIST (SPECIAL-USE) "" "*"\r\n')
    assert got.count(b"* LIST") == 5 and b"\\Junk" in got and b"INBOX" not in got, got
    # UID EXPUNGE removes only the named \Deleted messages; UNSELECT expunges nothing.
    assert b"b4 OK" in _ask(t, b"b4 STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n")
    got = _ask(t, b"b5 UID EXPUNGE 2\r\n")
    assert b"* VANISHED 2" in got or b"* 2 EXPUNGE" in got, got
    assert b"b6 OK" in _ask(t, b"b6 UNSELECT\r\n")
    got = _ask(t, b"b7 STATUS INBOX (MESSAGES DELETED)\r\n")
    assert b"MESSAGES 2 DELETED 1" in got, got
    got = _ask(t, b"b8 NAMESPACE\r\n")
    assert b'* NAMESPACE (("" "/")) NIL NIL' in got, got
    t.close()


def test_review_regressions_order_rename_patterns_limits_and_expunged_fetch(inode, cert):
    send(inode, 5, "rr")
    a = _session(inode, cert[0])
    b = _session(inode, cert[0])
    wait_for(lambda: b"MESSAGES 5" in _ask(a, b"s STATUS INBOX (MESSAGES)\r\n"), 20, what="5")
    assert b"x1 OK" in _ask(a, b"x1 SELECT INBOX\r\n")
    assert b"y1 OK" in _ask(b, b"y1 SELECT INBOX\r\n")
    # Another session expunges message 5 and new mail arrives: EXPUNGE, then EXISTS.
    _ask(b, b"y2 STORE 5 +FLAGS.SILENT (\\Deleted)\r\n")
    assert b"y3 OK" in _ask(b, b"y3 EXPUNGE\r\n")
    send(inode, 1, "late")
    wait_for(lambda: b"MESSAGES 5" in _ask(b, b"y4 STATUS INBOX (MESSAGES)\r\n"), 20, what="5")
    got = _ask(a, b"x2 NOOP\r\n")
    assert got.index(b"* 5 EXPUNGE") < got.index(b"* 5 EXISTS"), got
    # A message expunged meanwhile: the FETCH says so with a code, no internal error.
    _ask(b, b"y5 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n")
    _ask(b, b"y6 EXPUNGE\r\n")
    got = _ask(a, b"x3 FETCH 1 (INTERNALDATE BODY.PEEK[])\r\n")
    assert b"x3 NO [EXPUNGEISSUED]" in got, got
    assert b"x3b OK" in _ask(a, b"x3b NOOP\r\n")
    # RENAME, then a new folder under the old name: an EXPUNGE of the session that
    # selected the first one never touches the second.
    assert b"z1 OK" in _ask(b, b"z1 CREATE Work\r\n")
    assert b"z2 OK" in _ask(b, b"z2 COPY 1:2 Work\r\n")
    assert b"x4 OK" in _ask(a, b"x4 SELECT Work\r\n")
    _ask(a, b"x5 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n")
    assert b"z3 OK" in _ask(b, b"z3 RENAME Work Old\r\n")
    assert b"z4 OK" in _ask(b, b"z4 CREATE Work\r\n")
    assert b"z5 OK" in _ask(b, b"z5 COPY 1:2 Work\r\n")
    assert b"x6 OK" in _ask(a, b"x6 EXPUNGE\r\n")
    assert b"MESSAGES 2" in _ask(b, b"z6 STATUS Work (MESSAGES)\r\n")
    assert b"MESSAGES 1" in _ask(b, b"z7 STATUS Old (MESSAGES)\r\n")
    # A pattern that backtracks a regex for minutes is answered at once.
    assert b"z8 OK" in _ask(b, b"z8 CREATE " + b"a" * 40 + b"\r\n")
    t0 = time.monotonic()
    got = _ask(b, b'z9 LIST "" "' + b"*a" * 30 + b'X"\r\n')
    assert b"z9 OK" in got and time.monotonic() - t0 < 2.0, got
    # A deleted level with folders below it is listed \Noselect (RFC 3501 6.3.8).
    assert b"w1 OK" in _ask(b, b"w1 CREATE Lists/py\r\n")
    assert b"w2 OK" in _ask(b, b"w2 DELETE Lists\r\n")
    got = _ask(b, b'w3 LIST "" %\r\n')
    assert b'* LIST (\\Noselect \\HasChildren) "/" Lists' in got, got
    # Oversized literals get a tagged answer; before login a literal is small.
    got = _ask(b, b"w4 APPEND INBOX {99999999}\r\n")
    assert got.startswith(b"w4 BAD [TOOBIG]"), got
    raw = _raw(inode, cert[0])
    got = _ask(raw, b"v1 LOGIN {60000000}\r\n")
    assert got.startswith(b"v1 BAD [TOOBIG]"), got
    for s in (a, b, raw):
        s.close()

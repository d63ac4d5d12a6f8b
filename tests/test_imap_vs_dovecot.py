"""mailnode.imap.message against Dovecot: the corpus in tests/data/imap_corpus goes into a
private Dovecot's Maildir, and for every message ENVELOPE, BODYSTRUCTURE, BODY,
RFC822.SIZE, BODY[section] for the sections below and every part, and BINARY[part] and
BINARY.SIZE[part] for every leaf part must be the bytes ParsedMessage gives.

Where we differ from Dovecot on purpose, DIFFERENCES says so per message and item, and
the test checks that the difference is still there (so a stale entry is noticed).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailnode.imap.message import ParsedMessage

CORPUS = Path(__file__).parent / "data" / "imap_corpus"
DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "corpus", "corpus-password"

# Sections fetched from every message, on top of every part's N and N.MIME (and, for a
# message/rfc822 part, N.HEADER, N.TEXT and N.HEADER.FIELDS).
SECTIONS = [
    "",
    "HEADER",
    "TEXT",
    "1",
    "1.MIME",
    "2.1",
    "HEADER.FIELDS (FROM SUBJECT)",
    "HEADER.FIELDS.NOT (FROM SUBJECT)",
    "HEADER.FIELDS (DATE MESSAGE-ID CONTENT-TYPE)",
    "9",
    "1.9.MIME",
]

# (message, item) -> why our bytes differ from Dovecot's there.
DIFFERENCES: dict[tuple[str, str], str] = {
    # Both only decode a Content-Transfer-Encoding: Dovecot's BINARY takes the field
    # even without MIME-Version or Content-Type (its own BODYSTRUCTURE then says 7bit
    # per RFC 2045), so it base64-decodes plain text; we go by what BODYSTRUCTURE says.
    ("02-no-content-type.eml", "BINARY[1]"): "encoding ignored without MIME",
    ("02-no-content-type.eml", "BINARY.SIZE[1]"): "encoding ignored without MIME",
    # Two Content-Transfer-Encoding fields: BODYSTRUCTURE (Dovecot's and ours) reports
    # the first, Dovecot's BINARY decodes by the last; ours by the first.
    ("24-duplicate-headers.eml", "BINARY[1]"): "first of two encodings",
    ("24-duplicate-headers.eml", "BINARY.SIZE[1]"): "first of two encodings",
    # Invalid quoted-printable ("=ZZ", a final "="): Dovecot fails the FETCH, we keep
    # the invalid octets as they are.
    ("14-quoted-printable.eml", "BINARY[1]"): "lenient quoted-printable",
    ("14-quoted-printable.eml", "BINARY.SIZE[1]"): "lenient quoted-printable",
    # A header without an empty line whose last line has no line end: Dovecot ends
    # HEADER.FIELDS with an empty line (HEADER_FILTER_ADD_MISSING_EOH) unless a field it
    # returns is that last line; then it only ends that line. We always add both.
    ("16-no-separator.eml", "BODY[HEADER.FIELDS (FROM SUBJECT)]"): "empty line always",
    # Dovecot finds BINARY.SIZE of all parts at once, so part 5's unknown encoding fails
    # it for every part; we size each part by itself.
    **{
        ("26-odd-content-types.eml", f"BINARY.SIZE[{n}]"): "sized per part" for n in (1, 2, 3, 4, 6)
    },
}
# Messages whose MIME tree is deeper than our MAX_DEPTH (20; Dovecot's is 100): the parts
# below the limit are opaque for us, so their structure and sections differ.
DEEPER_THAN_OUR_LIMIT = {"22-deep-nesting.eml"}


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.eml"))


def crlf_view(raw: bytes) -> bytes:
    """The message as Dovecot serves a bare-LF file: a CR before every LF without one."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


# -- a private Dovecot -----------------------------------------------------------------
def _wait_for_dovecot() -> None:
    """Another process may be installing Dovecot: wait for it, then install it ourselves."""
    deadline = time.monotonic() + 300
    while not os.path.exists(DOVECOT) and time.monotonic() < deadline:
        time.sleep(5)
    if not os.path.exists(DOVECOT):
        subprocess.run(["apt-get", "install", "-y", "dovecot-imapd"], check=True, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dovecot:
    """A running private Dovecot: its IMAP port and its log (for failure messages)."""

    port: int
    log: Path

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        conn.login(USER, PASSWORD)
        typ, _ = conn.select("INBOX", readonly=True)
        assert typ == "OK"
        return conn


def _config(top: Path, port: int) -> str:
    """Dovecot's configuration: everything under `top`, IMAP on 127.0.0.1:`port`. Run
    as root, mail is accessed as nobody (Dovecot refuses uid 0 for mail)."""
    if os.geteuid() == 0:
        internal, login, mail = "dovecot", "dovenull", pwd.getpwnam("nobody")
    else:
        me = pwd.getpwuid(os.geteuid())
        internal = login = me.pw_name
        mail = me
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {top}/run
state_dir = {top}/state
log_path = {top}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{top}/mail/%u
mail_uid = {mail.pw_uid}
mail_gid = {mail.pw_gid}
passdb {{
  driver = passwd-file
  args = {top}/passwd
}}
userdb {{
  driver = passwd-file
  args = {top}/passwd
  default_fields = uid={mail.pw_uid} gid={mail.pw_gid} home={top}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def _fill_maildir(maildir: Path, messages: list[Path]) -> None:
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i, path in enumerate(messages, 1):
        shutil.copyfile(path, maildir / "new" / f"1700000000.M{i}P1.corpus")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for p in [maildir.parent, maildir, *maildir.rglob("*")]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"Dovecot did not start listening on {port}:\n{text[-3000:]}")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    _wait_for_dovecot()
    # Not under pytest's tmp_path: Dovecot's unprivileged processes must traverse it.
    top = Path(tempfile.mkdtemp(prefix="dovecot-corpus-"))
    top.chmod(0o755)
    port = _free_port()
    (top / "dovecot.conf").write_text(_config(top, port))
    (top / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    maildir = top / "mail" / USER
    _fill_maildir(maildir, corpus())
    out = open(top / "stdout.log", "wb")
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(top / "dovecot.conf")], stdout=out, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_listening(proc, port, top / "dovecot.log")
        yield Dovecot(port, top / "dovecot.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        shutil.rmtree(top, ignore_errors=True)


# -- reading FETCH responses -----------------------------------------------------------
def _wire(data: list) -> bytes:
    """imaplib's pieces of one untagged response, put back together as sent."""
    out = bytearray()
    for piece in data:
        if isinstance(piece, tuple):
            out += piece[0] + b"\r\n" + piece[1]
        else:
            out += piece
    return bytes(out)


class _Reader:
    """Just enough of RFC 3501's response grammar to split a FETCH into its items."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _literal_end(self) -> int | None:
        m = re.compile(rb"~?\{(\d+)\}\r\n").match(self.data, self.pos)
        return None if m is None else m.end() + int(m[1])

    def skip_value(self) -> None:
        d = self.data
        if d[self.pos : self.pos + 1] == b"(":
            self.pos += 1
            while d[self.pos : self.pos + 1] != b")":
                if d[self.pos : self.pos + 1] == b" ":
                    self.pos += 1
                else:
                    self.skip_value()
            self.pos += 1
        elif d[self.pos : self.pos + 1] == b'"':
            self.pos += 1
            while d[self.pos : self.pos + 1] != b'"':
                self.pos += 2 if d[self.pos : self.pos + 1] == b"\\" else 1
            self.pos += 1
        elif (end := self._literal_end()) is not None:
            self.pos = end
        else:
            m = re.compile(rb"[^ ()]+").match(d, self.pos)
            assert m is not None, d[self.pos : self.pos + 40]
            self.pos = m.end()

    def string_value(self) -> bytes | None:
        start = self.pos
        self.skip_value()
        raw = self.data[start : self.pos]
        if raw == b"NIL":
            return None
        if raw.startswith(b'"'):
            return re.sub(rb"\\(.)", rb"\1", raw[1:-1])
        return raw[raw.index(b"\n") + 1 :]

    def name(self) -> bytes:
        m = re.compile(rb"[^ \[(]+(\[[^\]]*\])?(<\d+>)?").match(self.data, self.pos)
        assert m is not None
        self.pos = m.end()
        return m[0]

    def items(self) -> dict[str, bytes]:
        """The items of `N (NAME value ...)`: each value's bytes as sent."""
        m = re.compile(rb"\d+ \(").match(self.data)
        assert m is not None, self.data[:80]
        self.pos = m.end()
        out: dict[str, bytes] = {}
        while self.data[self.pos : self.pos + 1] != b")":
            name = self.name().decode()
            self.pos += 1  # SP
            start = self.pos
            self.skip_value()
            out[name] = self.data[start : self.pos]
            if self.data[self.pos : self.pos + 1] == b" ":
                self.pos += 1
        return out


def content(value: bytes) -> bytes | None:
    """The octets of a string value as sent (quoted, literal or literal8)."""
    return _Reader(value).string_value()


def fetch(conn: imaplib.IMAP4, seq: int, items: str) -> dict[str, bytes] | None:
    """The items of one FETCH, or None when Dovecot refuses it (e.g. invalid base64)."""
    try:
        typ, data = conn.fetch(str(seq), items)
    except imaplib.IMAP4.abort:
        return None
    if typ != "OK":
        return None
    return _Reader(_wire(data)).items()


# -- what to compare -------------------------------------------------------------------
def _section_args(spec: str) -> tuple[tuple[int, ...], str | None, tuple[str, ...]]:
    m = re.fullmatch(r"((?:\d+\.)*\d+)?\.?([A-Z.]*)(?: \((.*)\))?", spec)
    assert m is not None, spec
    part = tuple(int(n) for n in m[1].split(".")) if m[1] else ()
    return part, (m[2] or None), tuple(m[3].split()) if m[3] else ()


def _paths(pm: ParsedMessage) -> Iterator[tuple[tuple[int, ...], bool, bool]]:
    """(part number, is a message/rfc822, has no parts inside) of every part of our tree,
    numbered as RFC 3501 6.4.5 does (reading the private tree: no API lists parts)."""

    def in_message(message: Any, prefix: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Any]]:
        if message.multipart:
            for i, child in enumerate(message.children, 1):
                yield from numbered(child, (*prefix, i))
        else:  # a non-multipart message's part 1 is its body
            yield from numbered(message, (*prefix, 1))

    def numbered(part: Any, number: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Any]]:
        yield number, part
        if part.multipart:
            for i, child in enumerate(part.children, 1):
                yield from numbered(child, (*number, i))
        elif part.rfc822:
            yield from in_message(part.children[0], number)

    for number, part in in_message(pm._tree, ()):
        yield number, part.rfc822, not part.children


def expected(pm: ParsedMessage) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Our FETCH items for a message: (BODY items, BINARY items), Dovecot's names."""
    sections = list(SECTIONS)
    binaries = []
    for number, rfc822, leaf in _paths(pm):
        n = ".".join(map(str, number))
        sections += [n, n + ".MIME"]
        if rfc822:
            sections += [n + ".HEADER", n + ".TEXT", n + ".HEADER.FIELDS (SUBJECT)"]
        if leaf:
            binaries.append(n)
    body = {
        "ENVELOPE": pm.envelope(),
        "BODYSTRUCTURE": pm.bodystructure(True),
        "BODY": pm.bodystructure(False),
        "RFC822.SIZE": b"%d" % pm.size,
    }
    for spec in dict.fromkeys(sections):
        body[f"BODY[{spec}]"] = pm.section(*_section_args(spec))
    binary: dict[str, bytes] = {}
    for n in binaries:
        data = pm.binary(_section_args(n)[0])
        binary[f"BINARY[{n}]"] = b"NIL" if data is None else data
        binary[f"BINARY.SIZE[{n}]"] = b"NIL" if data is None else b"%d" % len(data)
    return body, binary


def dovecot_items(
    dc: Dovecot, conn: imaplib.IMAP4, seq: int, ours: dict[str, bytes]
) -> dict[str, bytes]:
    names = [n for n in ours if not n.startswith("BODY[")]
    peeks = [n.replace("BODY[", "BODY.PEEK[", 1) for n in ours if n.startswith("BODY[")]
    got = fetch(conn, seq, "(" + " ".join(names + peeks) + ")")
    assert got is not None, f"FETCH {seq} failed; see {dc.log}"
    return {k: (v if not k.startswith("BODY[") else content(v) or b"") for k, v in got.items()}


def dovecot_binary(dc: Dovecot, seq: int, name: str) -> bytes | None:
    """One BINARY item on a connection of its own (Dovecot may drop it on a bad part)."""
    conn = dc.connect()
    try:
        peek = name.replace("BINARY[", "BINARY.PEEK[", 1)
        got = fetch(conn, seq, f"({peek})")
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    if got is None:
        return None
    value = got[name]
    return value if name.startswith("BINARY.SIZE") else content(value)


@pytest.fixture(scope="module")
def sequence(dovecot: Dovecot) -> dict[str, int]:
    """Corpus file name -> its sequence number in Dovecot's INBOX."""
    conn = dovecot.connect()
    try:
        # As BODY[] serves it: CRLF line ends, NUL as 0x80.
        by_content = {crlf_view(p.read_bytes()).replace(b"\0", b"\x80"): p.name for p in corpus()}
        out = {}
        for seq in range(1, len(by_content) + 1):
            items = fetch(conn, seq, "(BODY.PEEK[])")
            assert items is not None
            out[by_content[content(items["BODY[]"]) or b""]] = seq
        return out
    finally:
        conn.logout()


def _ours(path: Path) -> ParsedMessage:
    """Dovecot serves a bare-LF file with CRLF and counts sizes that way; we serve the
    stored bytes. So a bare-LF file is compared in its CRLF view (test_imap_message.py
    checks that its structure is the same either way)."""
    return ParsedMessage(crlf_view(path.read_bytes()))


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_body_items_match_dovecot(dovecot: Dovecot, sequence: dict[str, int], path: Path) -> None:
    ours, _ = expected(_ours(path))
    conn = dovecot.connect()
    try:
        theirs = dovecot_items(dovecot, conn, sequence[path.name], ours)
    finally:
        conn.logout()
    _compare(path.name, ours, theirs)


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_binary_items_match_dovecot(dovecot: Dovecot, sequence: dict[str, int], path: Path) -> None:
    _, ours = expected(_ours(path))
    theirs = {}
    for name in ours:
        data = dovecot_binary(dovecot, sequence[path.name], name)
        theirs[name] = b"NIL" if data is None else data
    _compare(path.name, ours, theirs)


def _compare(message: str, ours: dict[str, bytes], theirs: dict[str, bytes]) -> None:
    mismatched = [n for n in ours if ours[n] != theirs.get(n)]
    if message in DEEPER_THAN_OUR_LIMIT:
        assert mismatched, f"{message} no longer differs from Dovecot"
        assert "ENVELOPE" not in mismatched and "RFC822.SIZE" not in mismatched
        return
    expected_differences = {item for (m, item) in DIFFERENCES if m == message and item in ours}
    unexpected = [n for n in mismatched if n not in expected_differences]
    details = "\n".join(
        f"{n}:\n  ours:    {ours[n]!r}\n  dovecot: {theirs.get(n)!r}" for n in unexpected
    )
    assert not unexpected, f"{message} differs from Dovecot:\n{details}"
    stale = expected_differences - set(mismatched)
    assert not stale, f"{message}: listed differences are gone: {sorted(stale)}"

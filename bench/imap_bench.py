#!/usr/bin/env python3
"""IMAP throughput and IDLE wake-up of one mail node against Dovecot, on the same data.

    .venv/bin/python bench/imap_bench.py [--clients 4] [--messages 1000] [--rounds 3]
        [--phase-seconds 20] [--idle-samples 50] [--dovecot-scheme ARGON2ID|PLAIN]
        [--dir DIR] [--keep] [--json]

Starts, on loopback, one `mailnode` (127.0.78.1; standalone, one shard, no
ZooKeeper: a client talks to one node, and a session runs on its shard's
primary, so one node is the whole IMAP path) with IMAP over TLS from the first
byte on 1993, and a private Dovecot (/usr/sbin/dovecot -F, 127.0.78.2, its own
base_dir, imaps on a free port, mail_location maildir, mail_fsync = optimized,
Dovecot's default). Both use the same self-signed certificate
(mailnode.tls.self_signed) and the benchmark's one client TLS context, so
they negotiate the same protocol and cipher (printed).

Passwords: ours stores Argon2id (argon2-cffi, m=64 MiB, t=3, p=4) and checks it
at every login; Dovecot gets an {ARGON2ID} hash from `doveadm pw` (m=64 MiB,
t=3, p=1) so that a login costs about the same on both (auth_cache_size = 0,
as ours has no cache). --dovecot-scheme PLAIN gives Dovecot {PLAIN} instead.

Data: CLIENTS users, each with the same MESSAGES messages (2-8 KiB, varied
headers, a quarter multipart/alternative, a quarter multipart/mixed with a
base64 attachment; deterministic), loaded by IMAP APPEND (CLIENTS connections at
once, each its own user; some with \\Seen/\\Answered, INTERNALDATE set) and
timed: "APPEND msg/s".

Then ROUNDS rounds, alternating which server goes first, of these phases; in
each, CLIENTS client processes (multiprocessing, fork: the benchmark's own GIL
does not limit it; imaplib over TLS), one user each, start together at a
barrier; a phase's rate is all clients' operations over the wall time from the
first start to the last end; the table has the median over the rounds:

- login+SELECT: connect (TLS handshake), LOGIN, SELECT INBOX, LOGOUT, in a loop
  (25 per client at most);
- FETCH headers: FETCH 1:N (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT
  DATE MESSAGE-ID)]), messages/s; the fields are compared with the appended;
- FETCH bodies: FETCH a:b BODY.PEEK[] of 200 messages (another 200 each time),
  messages/s and MB/s; every body is compared with what was appended;
- STORE single: UID STORE n +FLAGS.SILENT (\\Seen), one command per message, 200
  (another 200 each round; -FLAGS once the range wraps), ops/s;
- STORE 1:N: STORE 1:N +FLAGS (\\Flagged) then STORE 1:N -FLAGS (\\Flagged), in
  pairs (so every command changes every message), flag changes/s;
- SEARCH: UNSEEN, FROM "alice", SUBJECT "report", BODY "zanzibar",
  SINCE 1-Jul-2024, each its own phase, searches/s; results are checked against
  the generator's (UNSEEN: against the other server).

FETCH, STORE 1:N and SEARCH repeat until 1.5 s have passed (at least once, at most
500 times): a fast server's phase is not a few milliseconds of start-up noise.
Every loop is bounded by a count and by PHASE_SECONDS. Last, IDLE wake-up: one
client (a raw TLS socket; imaplib has no IDLE before 3.14) IDLEs on user 0's
INBOX, another APPENDs a message; the sample is the time from the APPEND's
tagged OK to the IDLE client reading the untagged EXISTS (negative when the
EXISTS came first; Dovecot waits 500 ms after a change it sees by inotify before it
tells IDLE sessions, NOTIFY_DELAY_MSECS in lib-storage/mailbox-watch.c, so its
figure is about that). For ours also by SMTP to the node (the real path): from the
250 after DATA to the EXISTS. IDLE_SAMPLES of each, p50/p99/max.

Server CPU seconds of each phase (the whole process tree: the node; Dovecot's
master with every imap, login and auth process) and the clients' are printed:
everything shares the machine's CPUs, so where the clients use most of them (Dovecot's
FETCH) Dovecot's figure is a floor and the ratio flatters ours. APPEND latency is
also measured alone (one client): as imaplib does it (wait for "+", then the literal
and the CRLF in two writes, Nagle on) and in one write with LITERAL+.

Targets (the issue): ours >= 0.5x Dovecot's throughput, IDLE wake-up p99 < 100 ms.
A phase that fails against a server prints its error in the table and the
benchmark carries on.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import imaplib
import json
import multiprocessing as mp
import os
import queue
import random
import re
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from node_bench import bucket_quantile, scrape  # noqa: E402  (bench/ is the script directory)
from store_bench import NodeProc  # noqa: E402

OURS_ADDRESS, DOVECOT_ADDRESS = "127.0.78.1", "127.0.78.2"
OURS_IMAPS = 1993
CLOSED_HOP = "127.0.78.9:9"
DOMAIN = "example.test"
PASSWORD = "bench-password"
DOVECOT = "/usr/sbin/dovecot"
HEADER_FETCH = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
BODIES, SINGLES = 200, 200  # messages per FETCH-bodies round, UID STOREs per round
SEARCHES = {
    "UNSEEN": "UNSEEN",
    "FROM alice": 'FROM "alice"',
    "SUBJECT report": 'SUBJECT "report"',
    "BODY zanzibar": 'BODY "zanzibar"',
    "SINCE 1-Jul-2024": "SINCE 1-Jul-2024",
}
# FETCH, STORE 1:N (pairs) and SEARCH repeat in a round until MIN_SECONDS have passed
# (at least once, at most REPEAT times, never past --phase-seconds): a fast server's
# phase is not a few milliseconds of process start-up noise.
MIN_SECONDS = 1.5
REPEAT = 500
LOGIN_COUNT = 25  # login+SELECT per client in a round, at most
MIB = 1024 * 1024


def user(i: int) -> str:
    return f"u{i}@{DOMAIN}"


# -- the messages ------------------------------------------------------------------------
SENDERS = [
    ("Alice Archer", "alice@north.test"),
    ("Bob Baker", "bob@south.test"),
    ("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?=", "juergen@east.test"),
    ("Carol Chen", "carol@west.test"),
    ("", "noreply@notify.example.org"),
    ("Dave Dunn", "dave.dunn@corp.test"),
    ("Eve Evans", "eve@example.net"),
]
_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "what more if no out so said up its about into than them can only other new some time "
    "could these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down "
    "should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take "
    "three meeting budget project deadline invoice schedule team update review draft plan "
    "server backup release migration customer contract office travel lunch holiday"
)
WORDS = _WORDS.split()
SUBJECTS = ["Weekly sync", "Invoice", "Lunch on Friday?", "Release notes", "Build failed"]
BASE_DATE = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
SINCE = dt.date(2024, 7, 1)


def _text(rnd: random.Random, size: int, magic: bool) -> str:
    words, n = [], 0
    while n < size:
        w = rnd.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    if magic:
        words.insert(rnd.randrange(len(words)), "Zanzibar")
    lines, line = [], ""
    for w in words:
        if len(line) + len(w) + 1 > 72:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def make_message(i: int, recipient: str) -> tuple[bytes, dict]:
    """Message i (deterministic) and what a search should find in it."""
    rnd = random.Random(i)
    name, addr = SENDERS[i % len(SENDERS)]
    when = BASE_DATE + dt.timedelta(days=i // 4)
    report = i % 5 == 0
    subject = (
        f"Quarterly report {i}" if report else f"{rnd.choice(SUBJECTS)} #{i} {rnd.choice(WORDS)}"
    )
    if i % 9 == 4:
        subject = "Re: " + subject
    magic = i % 7 == 3
    size = rnd.randint(2048, 8192)
    h = [
        "Return-Path: <" + addr + ">",
        f"Received: from mx{i % 3}.sender.test (mx{i % 3}.sender.test [192.0.2.{i % 250}])\r\n"
        f"\tby bench.example.test; {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"From: {name} <{addr}>" if name else f"From: {addr}",
        f"To: {recipient}",
        f"Subject: {subject}",
        f"Date: {(when - dt.timedelta(minutes=i % 50)).strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <m{i:06d}.{rnd.getrandbits(32):08x}@bench.test>",
    ]
    if i % 3 == 1:
        h.append("Cc: Team <team@north.test>, Frank <frank@south.test>")
    if i % 9 == 4:
        h.append(f"In-Reply-To: <m{i - 1:06d}@bench.test>")
        h.append(f"References: <m{max(i - 2, 0):06d}@bench.test> <m{i - 1:06d}@bench.test>")
    if i % 11 == 0:
        h.append("X-Priority: 1")
        h.append("List-Id: <announce.north.test>")
    h.append("MIME-Version: 1.0")
    kind = i % 4
    if kind in (0, 3):
        h.append("Content-Type: text/plain; charset=utf-8")
        h.append("Content-Transfer-Encoding: 7bit")
        body = _text(rnd, size - 600, magic)
    elif kind == 1:
        b = f"=_alt_{i}"
        h.append(f'Content-Type: multipart/alternative; boundary="{b}"')
        t = _text(rnd, (size - 900) // 2, magic)
        html = "<html><body><p>" + t.replace("\r\n", "<br>\r\n") + "</p></body></html>\r\n"
        body = (
            f"This is a multi-part message in MIME format.\r\n\r\n--{b}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{t}\r\n--{b}\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{b}--\r\n"
        )
    else:
        b = f"=_mix_{i}"
        h.append(f'Content-Type: multipart/mixed; boundary="{b}"')
        t = _text(rnd, (size - 900) // 2, magic)
        blob = base64.encodebytes(rnd.randbytes(max(256, (size - 900) // 3))).decode()
        blob = blob.replace("\n", "\r\n")
        body = (
            f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{t}\r\n--{b}\r\n"
            f'Content-Type: application/octet-stream; name="data{i}.bin"\r\n'
            f'Content-Disposition: attachment; filename="data{i}.bin"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{blob}\r\n--{b}--\r\n"
        )
    raw = ("\r\n".join(h) + "\r\n\r\n" + body).encode()
    flags = []
    if i % 3 == 0:
        flags.append("\\Seen")
    if i % 10 == 0:
        flags.append("\\Answered")
    facts = {
        "from_alice": addr.startswith("alice"),
        "report": report,
        "zanzibar": magic,
        "since": when.date() >= SINCE,
    }
    return raw, {"flags": flags, "when": when, **facts}


HEADER_NAMES = {b"from", b"to", b"subject", b"date", b"message-id"}


def header_fields(raw: bytes) -> bytes:
    """BODY[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)] of raw, as RFC 3501 has it:
    those fields as they are (folded lines too), in order, then the blank line."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    out, keep = [], False
    for line in head:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() in HEADER_NAMES
        if keep:
            out.append(line)
    return b"\r\n".join(out) + b"\r\n\r\n"


MESSAGES: list[bytes] = []  # set in main before any fork; the same bytes for every user
FACTS: list[dict] = []


def expected_searches(n: int) -> dict[str, list[int]]:
    """Sequence numbers a search must return (messages 1..n appended in order)."""
    return {
        "FROM alice": [i + 1 for i in range(n) if FACTS[i]["from_alice"]],
        "SUBJECT report": [i + 1 for i in range(n) if FACTS[i]["report"]],
        "BODY zanzibar": [i + 1 for i in range(n) if FACTS[i]["zanzibar"]],
        "SINCE 1-Jul-2024": [i + 1 for i in range(n) if FACTS[i]["since"]],
    }


# -- servers --------------------------------------------------------------------------
def client_context(cert: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the certificate names bench.example.test; we dial an IP
    return ctx


def wait_port(host: str, port: int, deadline: float, alive=lambda: True, what: str = "") -> None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if not alive():
                raise RuntimeError(f"{what or host} exited before {host}:{port} answered") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what or host}: nothing on {host}:{port} in time") from None
            time.sleep(0.05)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process tree: every live process under pid (and pid) with the
    times of the children they have reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        times[p] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


class Server:
    name = ""
    label = ""
    host = ""
    port = 0
    pid = 0
    notes: list[str]

    def cpu(self) -> float:
        return tree_cpu(self.pid) if self.pid else 0.0


class Ours(Server, NodeProc):
    """The mail node, standalone, one shard, IMAP with TLS on 1993 (and STARTTLS on 1143)."""

    name, label = "ours", "ours"

    def __init__(self, directory: str, cert: tuple[str, str]):
        NodeProc.__init__(self, directory, OURS_ADDRESS)
        self.host, self.port, self.notes = OURS_ADDRESS, OURS_IMAPS, []
        with open(self.config, "w") as f:
            f.write(
                f'[node]\nname = "ours"\ndata_dir = "data"\nhostname = "bench.example.test"\n'
                f'domains = ["{DOMAIN}"]\nshards = 1\n'
                f'[smtp]\nlisten = "{OURS_ADDRESS}:2525"\n[pop3]\nlisten = ""\n'
                f'[imap]\nlisten = "{OURS_ADDRESS}:1143"\nlisten_tls = "{OURS_ADDRESS}:{OURS_IMAPS}"\n'
                f"auth_failure_delay = 0.3\n"
                f'[tls]\ncert = "{cert[0]}"\nkey = "{cert[1]}"\n'
                f'[http]\nlisten = "{OURS_ADDRESS}:8080"\n[grpc]\nlisten = "{OURS_ADDRESS}:7070"\n'
                f'[delivery]\nenabled = false\nsmarthost = "{CLOSED_HOP}"\nstarttls = "none"\n'
            )

    def up(self, users: list[str], timeout: float = 60) -> None:
        for port in (2525, 1143, OURS_IMAPS, 8080, 7070):
            if not port_free(OURS_ADDRESS, port):
                raise RuntimeError(f"{OURS_ADDRESS}:{port} is in use (a node left running?)")
        try:
            self.start(timeout)
        except SystemExit as e:
            raise RuntimeError(f"{e}\n{log_tail(self.log)}") from None
        self.pid = self.proc.pid
        wait_port(OURS_ADDRESS, OURS_IMAPS, time.monotonic() + 10, lambda: self.proc.poll() is None)
        for u in users:
            r = self.mailctl("user", "add", u, "--password", PASSWORD, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"mailctl user add {u}: {(r.stdout + r.stderr).strip()[-500:]}")

    def down(self) -> None:
        try:
            self.stop(30)
        except SystemExit as e:
            print(e, file=sys.stderr)
        self.kill()


def hist(m: dict[str, float], name: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets, sum, count) of a histogram, summed over its label sets."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for key, value in m.items():
        if key.startswith(name + "_bucket"):
            le = re.search(r'le="([^"]+)"', key)
            if le:
                b = float("inf") if le[1] == "+Inf" else float(le[1])
                buckets[b] = buckets.get(b, 0.0) + value
        elif key.split("{")[0] == name + "_sum":
            total += value
        elif key.split("{")[0] == name + "_count":
            count += value
    return sorted(buckets.items()), total, count


def node_figures(http: str) -> dict:
    """What the node's /metrics says about commits and IMAP commands."""
    m = scrape(http)
    out = {}
    for name in ("mailcluster_commit_seconds", "mailcluster_journal_fsync_seconds"):
        b, total, count = hist(m, name)
        out[name] = {
            "count": count,
            "mean_ms": 1000 * total / count if count else 0.0,
            "p50_ms": 1000 * bucket_quantile(b, 0.5),
            "p99_ms": 1000 * bucket_quantile(b, 0.99),
        }
    b, total, count = hist(m, "mailcluster_journal_fsync_batch_records")
    out["records_per_fsync"] = total / count if count else 0.0
    out["imap_not_ok"] = {
        k: v
        for k, v in m.items()
        if k.startswith("mailcluster_imap_commands_total{") and 'result="ok"' not in k.lower() and v
    }
    return out


class Dovecot(Server):
    """A private Dovecot: its own config, base_dir, log, passwd-file and Maildirs."""

    name, label = "dovecot", "Dovecot"

    def __init__(self, directory: str, cert: tuple[str, str], scheme: str):
        self.directory, self.cert, self.scheme = directory, cert, scheme.upper()
        self.host, self.port = DOVECOT_ADDRESS, free_port(DOVECOT_ADDRESS)
        self.conf = os.path.join(directory, "dovecot.conf")
        self.log = os.path.join(directory, "dovecot.log")
        self.proc: subprocess.Popen | None = None
        self.notes = []

    def _hash(self) -> str:
        if self.scheme == "PLAIN":
            return "{PLAIN}" + PASSWORD
        r = subprocess.run(
            ["doveadm", "pw", "-s", self.scheme, "-p", PASSWORD],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0 or not r.stdout.startswith("{"):
            raise RuntimeError(f"doveadm pw -s {self.scheme}: {(r.stdout + r.stderr).strip()}")
        return r.stdout.strip()

    def up(self, users: list[str], timeout: float = 30) -> None:
        if not os.access(DOVECOT, os.X_OK):
            raise RuntimeError(f"{DOVECOT} not found: apt-get install dovecot-imapd")
        d = self.directory
        mail = os.path.join(d, "mail")
        os.makedirs(mail, exist_ok=True)
        if os.geteuid() == 0:  # Dovecot will not give mail access as root: use nobody
            mail_user, mail_group = "nobody", "nogroup"
            uid, gid = 65534, 65534
            os.chown(mail, uid, gid)
            for p in (d, os.path.dirname(d)):  # the mail processes must reach their dirs
                os.chmod(p, os.stat(p).st_mode | 0o711)
            internal, login = "dovecot", "dovenull"
        else:
            import grp
            import pwd

            mail_user = pwd.getpwuid(os.getuid()).pw_name
            mail_group = grp.getgrgid(os.getgid()).gr_name
            uid, gid = os.getuid(), os.getgid()
            internal = login = mail_user
        hashed = self._hash()
        passwd = os.path.join(d, "passwd")
        with open(passwd, "w") as f:
            for u in users:
                f.write(f"{u}:{hashed}:{uid}:{gid}::{mail}/{u}::\n")
        os.chmod(passwd, 0o644)
        self.notes.append(
            f"Dovecot {dovecot_version()}: mail_fsync = optimized (its default), maildir, "
            f"passwords {self.scheme}, no auth cache, mail as {mail_user}"
        )
        with open(self.conf, "w") as f:
            f.write(
                f"""# imap_bench.py: a private instance
base_dir = {d}/run
state_dir = {d}/state
instance_name = imap-bench-{os.getpid()}
protocols = imap
listen = {DOVECOT_ADDRESS}
log_path = {self.log}
info_log_path = {self.log}
ssl = required
ssl_cert = <{self.cert[0]}
ssl_key = <{self.cert[1]}
disable_plaintext_auth = yes
auth_mechanisms = plain
auth_cache_size = 0
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{mail}/%u
mail_fsync = optimized
mail_max_userip_connections = 200
default_internal_user = {internal}
default_login_user = {login}
login_trusted_networks = 127.0.0.0/8
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
  process_min_avail = 2
}}
service anvil {{
  chroot =
}}
"""
            )
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        out = open(os.path.join(d, "dovecot.stdout"), "wb")
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", self.conf], stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        self.pid = self.proc.pid
        try:
            wait_port(
                self.host,
                self.port,
                time.monotonic() + timeout,
                lambda: self.proc.poll() is None,
                "dovecot",
            )
            c = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=client_context(self.cert[0]), timeout=30
            )
            c.login(users[0], PASSWORD)
            c.logout()
        except Exception as e:
            tail = log_tail(self.log) + "\n" + log_tail(os.path.join(d, "dovecot.stdout"))
            self.down()
            raise RuntimeError(f"Dovecot did not start ({e}); its log:\n{tail}") from None

    def down(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)


def dovecot_version() -> str:
    try:
        return subprocess.run(
            [DOVECOT, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def log_tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return f"({path}: no log)"


# -- the client processes -------------------------------------------------------------
def connect(srv: dict) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(
        srv["host"], srv["port"], ssl_context=client_context(srv["cert"]), timeout=60
    )


def ok(result: tuple, what: str) -> list:
    typ, data = result
    if typ != "OK":
        raise RuntimeError(f"{what}: {typ} {data!r:.300}")
    return data


def _literals(data: list) -> list[tuple[bytes, bytes]]:
    return [d for d in data if isinstance(d, tuple)]


def _seq(meta: bytes) -> int:
    return int(meta.split(None, 1)[0])


def _phase_work(phase: str, c, srv: dict, idx: int, p: dict, res: dict, deadline: float) -> None:
    """The timed part; c is logged in with INBOX selected (except for login)."""
    n, t0 = p["exists"], time.monotonic()

    def more(k: int) -> bool:
        """Whether a repeating phase does its k-th command."""
        now = time.monotonic()
        return k == 0 or (now < deadline and now - t0 < MIN_SECONDS)

    if phase == "append":
        for i in range(p["messages"]):
            if time.monotonic() > deadline:
                res["error"] = f"deadline: {i} of {p['messages']} appended"
                return
            fl = FACTS[i]["flags"]
            ok(
                c.append(
                    "INBOX", f"({' '.join(fl)})" if fl else None, FACTS[i]["when"], MESSAGES[i]
                ),
                "APPEND",
            )
            res["ops"] += 1
            res["bytes"] += len(MESSAGES[i])
    elif phase == "login":
        for _ in range(LOGIN_COUNT):
            if time.monotonic() > deadline:
                break
            x = connect(srv)
            ok(x.login(user(idx), PASSWORD), "LOGIN")
            ok(x.select("INBOX"), "SELECT")
            x.logout()
            res["ops"] += 1
    elif phase == "fetch_headers":
        for k in range(REPEAT):
            if not more(k):
                break
            data = ok(c.fetch(f"1:{n}", HEADER_FETCH), "FETCH headers")
            got = _literals(data)
            res["ops"] += len(got)
            res["bytes"] += sum(len(b) for _, b in got)
            if k == 0:
                wrong = [(_seq(m), b) for m, b in got if b != header_fields(MESSAGES[_seq(m) - 1])]
                res["result"] = {"wrong": len(wrong), "example": repr(wrong[:1])[:300]}
            if len(got) != n:
                res["error"] = (
                    f"FETCH 1:{n} headers: {len(got)} messages with a literal, expected {n}"
                )
                return
    elif phase == "fetch_bodies":
        for k in range(REPEAT):
            if not more(k):
                break
            a = ((p["round"] * REPEAT + k) * BODIES) % n + 1
            b = min(n, a + BODIES - 1)
            data = ok(c.fetch(f"{a}:{b}", "(BODY.PEEK[])"), "FETCH bodies")
            got = _literals(data)
            res["ops"] += len(got)
            res["bytes"] += sum(len(b_) for _, b_ in got)
            bad = [_seq(m) for m, body in got if body != MESSAGES[_seq(m) - 1]]
            if len(got) != b - a + 1:
                res["error"] = f"FETCH {a}:{b} BODY.PEEK[]: {len(got)} bodies, expected {b - a + 1}"
                return
            if bad:
                res["error"] = (
                    f"FETCH {a}:{b} BODY.PEEK[]: {len(bad)} bodies differ from the appended "
                    f"(seq {bad[:5]})"
                )
                return
    elif phase == "store_single":
        uids = p["uids"]
        start = (p["round"] * SINGLES) % len(uids)
        sign = "+" if (p["round"] * SINGLES // len(uids)) % 2 == 0 else "-"
        for uid in uids[start : start + SINGLES]:
            if time.monotonic() > deadline:
                break
            ok(c.uid("STORE", str(uid), f"{sign}FLAGS.SILENT", "(\\Seen)"), "UID STORE")
            res["ops"] += 1
    elif phase == "store_bulk":
        for k in range(2 * REPEAT):  # pairs, +FLAGS then -FLAGS: every STORE changes all
            if k % 2 == 0 and not more(k):
                break
            sign = "+" if k % 2 == 0 else "-"
            data = ok(c.store(f"1:{n}", f"{sign}FLAGS", "(\\Flagged)"), "STORE 1:N")
            fetched = [d for d in data if isinstance(d, bytes) and re.match(rb"\d+ \(", d)]
            res["ops"] += n
            if len(fetched) != n:
                res["error"] = (
                    f"STORE 1:{n} {sign}FLAGS (\\Flagged): {len(fetched)} FETCH replies, "
                    f"expected {n}"
                )
                return
    elif phase.startswith("search:"):
        key = phase[7:]
        for k in range(REPEAT):
            if not more(k):
                break
            data = ok(c.search(None, SEARCHES[key]), f"SEARCH {SEARCHES[key]}")
            res["ops"] += 1
            if k == 0:
                res["result"] = sorted(int(x) for x in b" ".join(data).split())
    else:
        raise ValueError(phase)


def _client(phase: str, srv: dict, idx: int, p: dict, barrier, out) -> None:
    res = {"idx": idx, "ops": 0, "bytes": 0, "t0": 0.0, "t1": 0.0, "cpu": 0.0, "error": None}
    c = None
    try:
        p = dict(p)
        p["exists"] = 0
        if phase != "login":
            c = connect(srv)
            ok(c.login(user(idx), PASSWORD), "LOGIN")
            if phase != "append":
                data = ok(c.select("INBOX"), "SELECT")
                p["exists"] = int(data[0])
                if p["exists"] == 0:
                    raise RuntimeError("SELECT INBOX: 0 messages")
            if phase == "store_single":
                p["uids"] = [
                    int(x) for x in ok(c.uid("SEARCH", None, "ALL"), "UID SEARCH")[0].split()
                ]
        barrier.wait(120)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        res["t0"] = time.monotonic()
        try:
            _phase_work(phase, c, srv, idx, p, res, res["t0"] + p["seconds"])
        finally:
            res["t1"] = time.monotonic()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            res["cpu"] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    except threading.BrokenBarrierError:
        res["error"] = res["error"] or "another client failed before the start"
    except Exception as e:
        barrier.abort()
        res["error"] = f"{type(e).__name__}: {e}"[:600]
        if os.environ.get("IMAP_BENCH_TRACE"):
            traceback.print_exc()
    finally:
        out.put(res)
        if c is not None:
            with contextlib.suppress(Exception):
                c.logout()


def run_phase(phase: str, srv: Server, clients: int, params: dict) -> dict:
    """CLIENTS processes at once; {rate, ops, wall, ...} or {error}."""
    ctx = mp.get_context("fork")
    # The parent is a party too: the server's CPU is read when the timed part starts.
    barrier, out = ctx.Barrier(clients + 1), ctx.Queue()
    sd = {"host": srv.host, "port": srv.port, "cert": params["cert"]}
    procs = [
        ctx.Process(target=_client, args=(phase, sd, i, params, barrier, out), daemon=True)
        for i in range(clients)
    ]
    for pr in procs:
        pr.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(150)
    cpu0 = srv.cpu()
    results, deadline = [], time.monotonic() + params["seconds"] + 180
    while len(results) < clients:
        try:
            results.append(out.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
    for pr in procs:
        pr.join(max(0.1, deadline - time.monotonic()))
        if pr.is_alive():
            pr.terminate()
            pr.join(5)
    server_cpu = srv.cpu() - cpu0
    errors = [f"client {r['idx']}: {r['error']}" for r in results if r["error"]]
    if len(results) < clients:
        errors.append(f"{clients - len(results)} clients did not finish in time")
    timed = [r for r in results if r["t1"] > 0]
    wall = (max(r["t1"] for r in timed) - min(r["t0"] for r in timed)) if timed else 0.0
    ops = sum(r["ops"] for r in timed)
    res = {
        "ops": ops,
        "bytes": sum(r["bytes"] for r in timed),
        "wall_s": wall,
        "rate": ops / wall if wall > 0 and ops else 0.0,
        "mb_s": sum(r["bytes"] for r in timed) / 1e6 / wall if wall > 0 else 0.0,
        "client_cpu_s": sum(r["cpu"] for r in timed),
        "server_cpu_s": server_cpu,
        "results": {r["idx"]: r["result"] for r in results if "result" in r},
    }
    if errors:
        res["error"] = "; ".join(errors)[:1200]
    return res


# -- IDLE -----------------------------------------------------------------------------
class RawClient:
    """A raw IMAP-over-TLS connection, logged in (its commands' bytes as written)."""

    def __init__(self, srv: Server, cert: str, who: str):
        sock = socket.create_connection((srv.host, srv.port), timeout=30)
        self.s = client_context(cert).wrap_socket(sock)
        self.buf = b""
        self._line()  # greeting
        self._cmd(b"a", f'LOGIN "{who}" "{PASSWORD}"'.encode())

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _cmd(self, tag: bytes, text: bytes) -> list[bytes]:
        self.s.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text.split()[0].decode()}: {line!r}")
                return lines


class IdleClient(RawClient):
    """SELECTs and IDLEs; a thread reads what the server sends and notes when each
    EXISTS arrives."""

    def __init__(self, srv: Server, cert: str, who: str):
        super().__init__(srv, cert, who)
        self.exists: queue.Queue[tuple[float, int]] = queue.Queue()
        lines = self._cmd(b"b", b"SELECT INBOX")
        self.count = next(int(m[1]) for ln in lines if (m := re.match(rb"\* (\d+) EXISTS", ln)))
        self.s.sendall(b"c IDLE\r\n")
        line = self._line()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE: {line!r}")
        self.s.settimeout(None)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self._line()
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m:
                    self.exists.put((time.monotonic(), int(m[1])))
                elif line.startswith(b"c "):
                    self.exists.put((time.monotonic(), -1))
                    return
        except (OSError, ValueError):
            self.exists.put((time.monotonic(), -2))

    def wait(self, above: int, timeout: float) -> float | None:
        """Monotonic time of the first EXISTS with a count above ``above``."""
        end = time.monotonic() + timeout
        while True:
            try:
                t, n = self.exists.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return None
            if n < 0:
                raise RuntimeError("the IDLE connection ended" if n == -2 else "IDLE ended")
            if n > above:
                self.count = n
                return t

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.s.sendall(b"DONE\r\n")
            self.thread.join(5)
            self.s.sendall(b"z LOGOUT\r\n")
        with contextlib.suppress(OSError):
            self.s.close()


def idle_latency(srv: Server, cert: str, samples: int, via: str, seconds: float) -> dict:
    """``via`` "imap": another connection APPENDs; "smtp": the node's SMTP listener."""
    who = user(0)
    idler = IdleClient(srv, cert, who)
    lat, took, misses = [], [], 0
    try:
        if via == "imap":
            sender = connect({"host": srv.host, "port": srv.port, "cert": cert})
            ok(sender.login(who, PASSWORD), "LOGIN")
        else:
            sender = smtplib.SMTP(srv.host, 2525, timeout=30)
        deadline = time.monotonic() + seconds
        for k in range(samples):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02 + random.random() * 0.03)
            msg = (
                f"From: idle@remote.test\r\nTo: {who}\r\nSubject: idle {via} {k}\r\n"
                f"Message-ID: <idle-{via}-{k}-{time.time_ns()}@bench.test>\r\n\r\nwake up\r\n"
            ).encode()
            before = idler.count
            t_send = time.monotonic()
            if via == "imap":
                ok(sender.append("INBOX", None, None, msg), "APPEND")
            else:
                sender.sendmail("idle@remote.test", [who], msg)
            t_ok = time.monotonic()
            took.append(1000 * (t_ok - t_send))
            t = idler.wait(before, 5.0)
            if t is None:
                misses += 1
                continue
            lat.append(1000 * (t - t_ok))
    finally:
        with contextlib.suppress(Exception):
            sender.quit() if via == "smtp" else sender.logout()
        idler.close()
    if not lat:
        return {
            "error": f"no EXISTS within 5 s of any of {misses} {via} deliveries",
            "misses": misses,
        }
    q = sorted(lat)
    res = {
        "samples": len(lat),
        "misses": misses,
        "p50_ms": percentile(q, 0.50),
        "p99_ms": percentile(q, 0.99),
        "max_ms": q[-1],
        "min_ms": q[0],
        "command_p50_ms": statistics.median(took),  # APPEND / SMTP DATA..250 alone
    }
    if misses:
        res["error"] = f"{misses} of {misses + len(lat)} deliveries woke no EXISTS within 5 s"
    return res


def append_one_write(srv: Server, cert: str, samples: int = 20) -> dict:
    """APPEND latency when the whole command goes in one write (LITERAL+, RFC 7888), as
    against imaplib's: it waits for "+", then writes the literal and the CRLF apart."""
    c = RawClient(srv, cert, user(0))
    try:
        took = []
        for k in range(samples):
            msg = MESSAGES[k % len(MESSAGES)]
            tag = b"p%d" % k
            t0 = time.monotonic()
            c._cmd(tag, b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
            took.append(1000 * (time.monotonic() - t0))
        return {"command_p50_ms": statistics.median(took), "samples": len(took)}
    finally:
        with contextlib.suppress(OSError):
            c.s.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def tls_info(srv: Server, cert: str) -> str:
    try:
        c = connect({"host": srv.host, "port": srv.port, "cert": cert})
        s = c.sock
        name, version, bits = s.cipher()
        c.logout()
        return f"{version} {name} ({bits} bits)"
    except Exception as e:
        return f"? ({type(e).__name__}: {e})"


# -- the run --------------------------------------------------------------------------
PHASES = [
    ("login", "login+SELECT", "/s"),
    ("fetch_headers", "FETCH 1:N headers", "msg/s"),
    ("fetch_bodies", f"FETCH {BODIES} BODY.PEEK[]", "msg/s"),
    ("store_single", f"UID STORE x{SINGLES} +FLAGS.SILENT", "ops/s"),
    ("store_bulk", "STORE 1:N +FLAGS (\\Flagged)", "msg/s"),
] + [(f"search:{k}", f"SEARCH {k}", "/s") for k in SEARCHES]


def run(args, root: str) -> dict:
    from mailnode.tls import self_signed

    cert = self_signed(
        os.path.join(root, "cert.pem"),
        os.path.join(root, "key.pem"),
        "bench.example.test",
        days=1,
        loopback=True,
    )
    users = [user(i) for i in range(args.clients)]
    servers: list[Server] = []
    res: dict = {
        "args": vars(args),
        "servers": {},
        "load": [os.getloadavg()],
        "cpus": os.cpu_count(),
        "errors": {},
    }
    ours = Ours(os.path.join(root, "ours"), cert)
    dove = Dovecot(os.path.join(root, "dovecot"), cert, args.dovecot_scheme)
    try:
        for srv in (ours, dove):
            log(f"starting {srv.label} ...")
            try:
                srv.up(users)
                servers.append(srv)
                res["servers"][srv.name] = {"tls": tls_info(srv, cert[0]), "notes": srv.notes}
            except Exception as e:
                res["errors"][srv.name] = f"did not start: {e}"
                log(f"{srv.label} did not start: {e}")
        if not servers:
            return res
        base = {"cert": cert[0], "messages": args.messages, "round": 0}
        figures: dict[str, dict[str, list[dict]]] = {s.name: {} for s in servers}
        for srv in servers:
            log(f"{srv.label}: APPEND {args.messages} messages x {args.clients} users ...")
            r = run_phase("append", srv, args.clients, {**base, "seconds": args.load_seconds})
            figures[srv.name]["append"] = [r]
            if srv is ours:
                with contextlib.suppress(Exception):
                    res["ours_after_load"] = node_figures(ours.http)
            if r.get("error"):
                log(f"  {srv.label} APPEND: {r['error']}")
        for rnd in range(args.rounds):
            for srv in servers if rnd % 2 == 0 else servers[::-1]:
                log(f"round {rnd + 1}/{args.rounds}: {srv.label} ...")
                for phase, _, _ in PHASES:
                    r = run_phase(
                        phase,
                        srv,
                        args.clients,
                        {**base, "round": rnd, "seconds": args.phase_seconds},
                    )
                    figures[srv.name].setdefault(phase, []).append(r)
                    if r.get("error"):
                        log(f"  {srv.label} {phase}: {r['error']}")
        for srv in servers:
            log(f"{srv.label}: IDLE wake-up ...")
            vias = ["imap", "smtp"] if srv is ours else ["imap"]
            for via in vias:
                try:
                    r = idle_latency(srv, cert[0], args.idle_samples, via, args.phase_seconds * 3)
                except Exception as e:
                    r = {"error": f"{type(e).__name__}: {e}"}
                figures[srv.name][f"idle_{via}"] = [r]
                if r.get("error"):
                    log(f"  {srv.label} IDLE via {via}: {r['error']}")
            try:
                r = append_one_write(srv, cert[0])
            except Exception as e:
                r = {"error": f"{type(e).__name__}: {e}"}
            figures[srv.name]["append_one_write"] = [r]
        res["figures"] = figures
        if ours in servers:
            with contextlib.suppress(Exception):
                res["ours_at_end"] = node_figures(ours.http)
        res["checks"] = checks(figures, args.messages)
        res["load"].append(os.getloadavg())
    finally:
        for srv in (ours, dove):
            with contextlib.suppress(Exception):
                srv.down()
        res["logs"] = {"ours": log_tail(ours.log, 15), "dovecot": log_tail(dove.log, 15)}
    return res


def checks(figures: dict, messages: int) -> list[str]:
    """FETCH header fields and SEARCH results against the generator's, UNSEEN between
    the servers."""
    out = []
    expect = expected_searches(messages)
    unseen = {}
    for name, f in figures.items():
        for rnd, r in enumerate(f.get("fetch_headers", [])):
            for idx, got in r.get("results", {}).items():
                if got["wrong"]:
                    out.append(
                        f"{name}: FETCH {HEADER_FETCH} (round {rnd + 1}, client {idx}): "
                        f"{got['wrong']} messages' header fields not as appended, e.g. "
                        f"{got['example']}"
                    )
                    break
        for key in SEARCHES:
            for rnd, r in enumerate(f.get(f"search:{key}", [])):
                for idx, got in r.get("results", {}).items():
                    if key == "UNSEEN":
                        unseen.setdefault(rnd, {}).setdefault(name, got)
                        continue
                    want = expect[key]
                    if got != want:
                        missing = sorted(set(want) - set(got))
                        extra = sorted(set(got) - set(want))
                        out.append(
                            f"{name}: SEARCH {SEARCHES[key]} (round {rnd + 1}, client {idx}): "
                            f"{len(got)} hits, expected {len(want)}; missing {missing[:8]}, "
                            f"extra {extra[:8]}"
                        )
                        break
    stores = {  # UNSEEN is comparable while both did the same UID STOREs
        name: [r["ops"] for r in f.get("store_single", [])] for name, f in figures.items()
    }
    for rnd, per in unseen.items():
        same = len({tuple(v[: rnd + 1]) for v in stores.values()}) == 1
        if len(per) == 2 and same and per["ours"] != per["dovecot"]:
            out.append(
                f"SEARCH UNSEEN round {rnd + 1}: ours {len(per['ours'])} hits, Dovecot "
                f"{len(per['dovecot'])}"
            )
    return out


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the table ------------------------------------------------------------------------
def med(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if not r.get("error") and r.get(key)]
    return statistics.median(values) if values else None


def cell(runs: list[dict] | None, key: str, unit: str, fmt: str = "{:.0f}") -> str:
    if runs is None:
        return "-"
    v = med(runs, key)
    if v is None:
        errs = [r["error"] for r in runs if r.get("error")]
        return "ERROR: " + (errs[0][:70] if errs else "no figure")
    note = " (errors)" if any(r.get("error") for r in runs) else ""
    return fmt.format(v) + f" {unit}" + note


def table(res: dict) -> list[tuple[str, ...]]:
    f = res.get("figures", {})
    o, d = f.get("ours", {}), f.get("dovecot", {})
    rows = [("phase", "ours", "Dovecot", "ratio", "target met?")]

    def row(label, key, unit, runs_key, fmt="{:.0f}", target="ratio"):
        ro, rd = o.get(runs_key), d.get(runs_key)
        vo = med(ro, key) if ro else None
        vd = med(rd, key) if rd else None
        ratio = f"{vo / vd:.2f}x" if vo and vd else "-"
        met = ""
        if target == "ratio" and vo and vd:
            met = "yes (>= 0.5x)" if vo / vd >= 0.5 else "NO (< 0.5x)"
        elif target == "p99" and vo is not None:
            met = "yes (< 100 ms)" if vo < 100 else "NO (>= 100 ms)"
        elif target == "p99" and ro:
            met = "NO"
        rows.append((label, cell(ro, key, unit, fmt), cell(rd, key, unit, fmt), ratio, met))

    row("APPEND (load)", "rate", "msg/s", "append")
    for phase, label, unit in PHASES:
        row(label, "rate", unit, phase)
        if phase == "fetch_bodies":
            row(f"FETCH {BODIES} BODY.PEEK[]", "mb_s", "MB/s", phase, "{:.1f}")
    for q, t in (("p50_ms", ""), ("p99_ms", "p99"), ("max_ms", "")):
        row(f"IDLE wake-up (APPEND) {q[:-3]}", q, "ms", "idle_imap", "{:.1f}", t or "none")
    row("APPEND alone (imaplib), p50", "command_p50_ms", "ms", "idle_imap", "{:.1f}", "none")
    row(
        "APPEND alone (LITERAL+), p50", "command_p50_ms", "ms", "append_one_write", "{:.1f}", "none"
    )
    for q, t in (("p50_ms", ""), ("p99_ms", "p99"), ("max_ms", "")):
        ro = o.get("idle_smtp")
        v = med(ro, q) if ro else None
        met = ""
        if t and ro:
            met = ("yes (< 100 ms)" if v < 100 else "NO (>= 100 ms)") if v is not None else "NO"
        rows.append((f"IDLE wake-up (SMTP) {q[:-3]}", cell(ro, q, "ms", "{:.1f}"), "n/a", "", met))
    return rows


def print_report(res: dict) -> None:
    a = res["args"]
    print(
        f"imap_bench: {a['clients']} clients (processes, imaplib over TLS), {a['messages']} "
        f"messages per user, {a['rounds']} rounds (median), {res['cpus']} CPUs shared by "
        f"servers and clients"
    )
    for name, s in res["servers"].items():
        print(f"  {name}: TLS {s['tls']}")
        for n in s["notes"]:
            print(f"  {n}")
    print(f"  ours: mailnode standalone (one shard, no ZooKeeper) on {OURS_ADDRESS}:{OURS_IMAPS}")
    print(
        "  ratio = ours/Dovecot (for latencies lower is better); Dovecot delays IDLE "
        "notifications 500 ms by design (NOTIFY_DELAY_MSECS)\n"
        "  imaplib APPEND waits for '+', then writes the literal and the CRLF apart "
        "(Nagle on): see the two 'APPEND alone' rows"
    )
    for name, e in res["errors"].items():
        print(f"  {name}: {e}")
    if "figures" not in res:
        return
    rows = table(res)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    f = res["figures"]
    cpu = []
    for phase, label, _ in [("append", "APPEND", ""), *PHASES]:
        parts = []
        for name in ("ours", "dovecot"):
            runs = f.get(name, {}).get(phase)
            if runs:
                ops = sum(r["ops"] for r in runs)
                s = sum(r["server_cpu_s"] for r in runs)
                c = sum(r["client_cpu_s"] for r in runs)
                w = sum(r["wall_s"] for r in runs)
                per = f"{1e6 * s / ops:.0f} us/op" if ops else "-"
                parts.append(
                    f"{name} server {s:.2f} s ({per}), clients {c:.2f} s of {w:.2f} s wall"
                )
        cpu.append(f"  {label}: " + "; ".join(parts))
    for key, when in (("ours_after_load", "after the APPEND load"), ("ours_at_end", "at the end")):
        nf = res.get(key)
        if nf:
            c, fs = nf["mailcluster_commit_seconds"], nf["mailcluster_journal_fsync_seconds"]
            smtp = (
                f"; SMTP commits p50 {c['p50_ms']:.1f} ms p99 {c['p99_ms']:.1f} ms"
                if c["count"]
                else ""
            )
            print(
                f"ours {when} (node /metrics): {fs['count']:.0f} journal fsyncs, p50 "
                f"{fs['p50_ms']:.1f} ms p99 {fs['p99_ms']:.1f} ms, "
                f"{nf['records_per_fsync']:.1f} records/fsync{smtp}"
            )
    nf = res.get("ours_at_end")
    if nf and nf["imap_not_ok"]:
        print("ours: IMAP commands not answered OK (node /metrics):")
        for k, v in sorted(nf["imap_not_ok"].items()):
            print(f"  {k} {v:.0f}")
    print("CPU (sums over the rounds):")
    print("\n".join(cpu))
    if res.get("checks"):
        print("\nresult checks FAILED:")
        for c in res["checks"]:
            print(f"  {c}")
    else:
        print(
            "\nresult checks: FETCH header fields and bodies as appended, SEARCH results as "
            "generated (UNSEEN equal on both)"
        )
    errs = [
        (name, phase, r["error"])
        for name, ph in f.items()
        for phase, runs in ph.items()
        for r in runs
        if r.get("error")
    ]
    if errs:
        print("\nerrors:")
        seen = set()
        for name, phase, e in errs:
            if (name, phase, e) not in seen:
                seen.add((name, phase, e))
                print(f"  {name} {phase}: {e}")
    la = [" ".join(f"{x:.2f}" for x in v) for v in (res["load"][0], res["load"][-1])]
    print(f"\nload average at start / end: {la[0]} / {la[1]}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (and users)")
    p.add_argument("--messages", type=int, default=1000, help="messages per user")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--phase-seconds", type=float, default=6.0, help="bound of one phase's loop")
    p.add_argument("--load-seconds", type=float, default=180.0, help="bound of the APPEND load")
    p.add_argument("--idle-samples", type=int, default=50)
    p.add_argument(
        "--dovecot-scheme",
        default="ARGON2ID",
        help="Dovecot's password scheme: ARGON2ID (the cost of ours) or PLAIN",
    )
    p.add_argument("--dir", help="work directory (default: a new one in the temp directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.clients < 1 or args.messages < BODIES or args.rounds < 1:
        p.error(f"need --clients >= 1, --messages >= {BODIES}, --rounds >= 1")
    for i in range(args.messages):
        raw, facts = make_message(i, "Bench Users <users@example.test>")
        MESSAGES.append(raw)
        FACTS.append(facts)
    root = os.path.abspath(args.dir) if args.dir else tempfile.mkdtemp(prefix="imap-bench-")
    os.makedirs(root, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    try:
        res = run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")
    res["seconds"] = time.monotonic() - t0
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_report(res)
        print(f"total {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()

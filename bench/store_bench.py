#!/usr/bin/env python3
"""Scale benchmark of one shard: a big store against an empty one, in the same run.

    .venv/bin/python bench/store_bench.py [--users 1000000] [--queued 1000000]
        [--mailbox-messages 100000] [--message-size 2048] [--accept-messages 2000]
        [--concurrency 8] [--rounds 5] [--import-users 20000] [--dir DIR] [--keep]
        [--skip-build] [--json]

Builds a shard of USERS users, QUEUED queued messages (remote recipients) and
one mailbox (big@example.test) of MAILBOX_MESSAGES messages by writing its
journal directly with the journal writer (mailnode.journal.Journal: one
EpochStarted, UsersImported records of 2000 users, MessageAccepted records
as the SMTP handler makes them), then starts a real node process on it (one
shard, standalone, loopback 127.0.79.1) next to an empty node (127.0.79.2),
and measures:

- start-up: first start (the whole journal replayed into store.db and the
  Maildir) until /health answers; replay seconds are the Popen -> "replayed N
  records" log line of the big node minus the same on the empty node
  (interpreter start and imports), replay MB/s = journal bytes / that;
- restart: SIGTERM, then a second start (the index holds applied_lsn) until
  /health answers; "journal scan" is the recovery check of every segment
  (mailnode.journal.format.scan_segment) timed in this process, for comparison;
- RSS (VmRSS of the node process) after each start, per user + queued message,
  and the increase over the empty node per user + queued message;
- accept msg/s: CONCURRENCY smtplib sessions send ACCEPT_MESSAGES to 100 users
  that both nodes have (the same work on both), ROUNDS rounds alternating the
  nodes (the other one is SIGSTOPped meanwhile), median per node, and the ratio;
  after each round the node's applier is waited for (bounded): how far it was
  behind the journal, how long it took to catch up, messages applied per second;
- index commit time (mailcluster_store_commit_seconds, the applier's
  checkpoint of a batch) for the accept rounds' messages: mean, p99 and an upper
  bound of the slowest, on each node, with messages per commit;
- POP3 login (USER/PASS, which lists the mailbox) + STAT + UIDL of the big mailbox;
- import rate: `mailctl user import FILE` of IMPORT_USERS users (Dovecot
  passwd-file, {SHA512-CRYPT} hashes) into each node.

Queued messages stay queued: both nodes run with [delivery] enabled = false and
a smarthost on a closed loopback port. --dir keeps the big shard's journal
(with --keep); --skip-build reuses it (cut back to its built end, derived store
removed, so the first start replays it all again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import poplib
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from node_bench import bucket_quantile, scrape  # noqa: E402  (bench/ is the script directory)

from mailnode.journal import Journal  # noqa: E402
from mailnode.journal.format import list_segments, scan_segment  # noqa: E402
from mailnode.passwords import hash_password  # noqa: E402
from mailnode.proto.journal_pb2 import JournalRecord  # noqa: E402

BIG_ADDRESS, EMPTY_ADDRESS = "127.0.79.1", "127.0.79.2"
CLOSED_HOP = "127.0.79.9:9"  # nothing listens there: a relay attempt could go nowhere
DOMAIN = "example.test"
MAILBOX, MAILBOX_PASSWORD = f"big@{DOMAIN}", "bench-password"
SENDER = "load@remote.test"
IMPORT_BATCH = 2000  # users per UsersImported record, as mailctl user import makes them
FLUSH_EVERY = 2000  # build: records per group commit awaited
SEGMENT_SIZE = 64 * 1024 * 1024
RECIPIENTS = 100  # accept: distinct recipients, present on both nodes
# `openssl passwd -6 -salt saltsalt password`, for when openssl is not installed
SHA512_FALLBACK = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/"
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO mailnode\.shard: shard 0: journal end lsn "
    r"(\d+), .*replayed (\d+) records"
)
KIB, MIB = 1024, 1024 * 1024


def user(i: int) -> str:
    return f"u{i:07d}@{DOMAIN}"


def recipients(users: int) -> list[str]:
    return [user(k * users // RECIPIENTS) for k in range(min(RECIPIENTS, users))]


def body(size: int, subject: str) -> bytes:
    """A message of about ``size`` bytes: headers, then lines of 76 characters."""
    head = (
        f"From: <{SENDER}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@bench.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def sha512_crypt() -> str:
    try:
        out = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", "saltsalt", "password"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = SHA512_FALLBACK
    return "{SHA512-CRYPT}" + out


# -- building the big shard's journal ---------------------------------------------------
def _records(args, bulk_hash: str):
    """The big shard's journal, record by record (lsn, epoch, time set by append)."""
    r = JournalRecord()
    r.epoch_started.shard, r.epoch_started.node = 0, "big"
    yield r
    r = JournalRecord()
    r.user_added.address, r.user_added.password_hash = MAILBOX, hash_password(MAILBOX_PASSWORD)
    yield r
    for start in range(0, args.users, IMPORT_BATCH):
        r = JournalRecord()
        for i in range(start, min(start + IMPORT_BATCH, args.users)):
            r.users_imported.users.add(address=user(i), password_hash=bulk_hash)
        yield r
    total, mbox = args.queued + args.mailbox_messages, args.mailbox_messages
    received = b"Received: from bench ([127.0.0.1])\r\n\tby bench.example.test (mailcluster);\r\n"
    q = b_ = 0
    for k in range(total):  # the mailbox's messages spread evenly among the queued ones
        r = JournalRecord()
        m = r.message_accepted
        m.queue_id, m.client_address, m.helo, m.whole_transaction = (
            f"B{k:011X}",
            "127.0.0.1",
            "bench",
            True,
        )
        if (k + 1) * mbox // total > k * mbox // total:
            m.mail_from = SENDER
            m.recipients.append(MAILBOX)
            m.data = received + body(args.message_size, f"m{b_}")
            b_ += 1
        else:
            m.mail_from = user(q % args.users) if args.users else SENDER
            m.relay_recipients.append(f"r{q}@d{q % 1000}.invalid")
            m.data = received + body(args.message_size, f"q{q}")
            q += 1
        yield r


async def _write_journal(directory: str, args, bulk_hash: str) -> tuple[int, int]:
    journal = Journal(directory, segment_size=SEGMENT_SIZE)
    journal.open()
    if journal.end_lsn:
        raise SystemExit(f"{directory}: not empty; remove it or use --skip-build")
    journal.allow_writes(1)
    journal.start(asyncio.get_running_loop())
    records = 0
    try:
        for rec in _records(args, bulk_hash):
            records += 1
            fut = journal.append(rec, wait=records % FLUSH_EVERY == 0)
            if fut is not None:
                await fut
        last = JournalRecord()
        last.quota_set.scope = f"@{DOMAIN}"  # both 0: no limit (the default); a durable end
        await journal.append(last)
        records += 1
        return records, journal.committed_lsn
    finally:
        journal.close()


def build(node: NodeProc, args) -> dict:
    t0 = time.monotonic()
    journal_dir = os.path.join(node.shard_dir, "journal")
    records, end = asyncio.run(_write_journal(journal_dir, args, args.hash))
    doc = {
        "users": args.users,
        "queued": args.queued,
        "mailbox_messages": args.mailbox_messages,
        "message_size": args.message_size,
        "records": records,
        "end_lsn": end,
        "build_seconds": time.monotonic() - t0,
    }
    with open(os.path.join(node.directory, "built.json"), "w") as f:
        json.dump(doc, f)
    return doc


def reuse(node: NodeProc, args) -> dict:
    """--skip-build: the journal as built (later records cut off), no derived store."""
    shard_dir = node.shard_dir
    try:
        with open(os.path.join(node.directory, "built.json")) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"{node.directory}/built.json: nothing built there to reuse") from None
    for key in ("users", "queued", "mailbox_messages", "message_size"):
        if doc[key] != getattr(args, key):
            raise SystemExit(
                f"--skip-build: built with {key} = {doc[key]}, asked {getattr(args, key)}"
            )
    journal = Journal(os.path.join(shard_dir, "journal"), segment_size=SEGMENT_SIZE)
    journal.open()
    try:
        if journal.end_lsn > doc["end_lsn"]:
            journal.truncate(doc["end_lsn"])
    finally:
        journal.close()
    for name in ("store.db", "store.db-wal", "store.db-shm", "store.incomplete", "untaken.json"):
        try:
            os.unlink(os.path.join(shard_dir, name))
        except FileNotFoundError:
            pass
    for name in ("maildir", "spool"):
        shutil.rmtree(os.path.join(shard_dir, name), ignore_errors=True)
    doc["build_seconds"] = 0.0
    return doc


def scan_seconds(journal_dir: str) -> float:
    """What start-up's recovery does to every segment (read, CRC, parse), timed here."""
    t0 = time.monotonic()
    for base, path in list_segments(journal_dir):
        scan_segment(base, path)
    return time.monotonic() - t0


# -- node processes ---------------------------------------------------------------------
def histogram(m: dict[str, float], name: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets, sum, count) of a histogram of shard 0."""
    buckets = []
    for key, value in m.items():
        if key.startswith(name + "_bucket{") and 'shard="0"' in key:
            le = re.search(r'le="([^"]+)"', key)
            if le:
                buckets.append((float("inf") if le[1] == "+Inf" else float(le[1]), value))
    buckets.sort()
    sel = '{shard="0"}'
    return buckets, m.get(f"{name}_sum{sel}", 0.0), m.get(f"{name}_count{sel}", 0.0)


def slowest(buckets: list[tuple[float, float]]) -> float:
    """An upper bound of the slowest observation: the first bucket holding all of them."""
    total = buckets[-1][1] if buckets else 0.0
    return next((le for le, count in buckets if count >= total), 0.0) if total else 0.0


class NodeProc:
    """One `mailnode` process on a loopback address, standalone, one shard."""

    def __init__(self, directory: str, address: str):
        self.directory, self.address = directory, address
        self.name = os.path.basename(directory)
        self.config = os.path.join(directory, "node.toml")
        self.log = os.path.join(directory, "node.log")
        self.http = f"{address}:8080"
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.started_wall = 0.0
        self._log_offset = 0
        os.makedirs(directory, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(
                f'[node]\nname = "{self.name}"\ndata_dir = "data"\nhostname = "bench.example.test"\n'
                f'domains = ["{DOMAIN}"]\nshards = 1\n[smtp]\nlisten = "{address}:2525"\n'
                f'[pop3]\nlisten = "{address}:1110"\n[http]\nlisten = "{address}:8080"\n'
                f'[grpc]\nlisten = "{address}:7070"\n'
                f'[delivery]\nenabled = false\nsmarthost = "{CLOSED_HOP}"\nstarttls = "none"\n'
            )

    @property
    def shard_dir(self) -> str:
        return os.path.join(self.directory, "data", "shards", "0")

    def start(self, timeout: float) -> float:
        """Start and wait for /health; returns the seconds from Popen until it answered."""
        self._log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        log = open(self.log, "ab")
        self.started_wall, t0 = time.time(), time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailnode.cli", "--config", self.config, "--log-level", "INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.http}/health", timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{self.name} did not start in {timeout:.0f} s; see {self.log}")
            time.sleep(0.05)

    def replayed(self) -> tuple[float, int]:
        """(seconds from Popen to the shard's "replayed N records" line, N) of the last start."""
        with open(self.log, "rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode("utf-8", "replace")
        for line in text.splitlines():
            m = LOG_LINE.match(line)
            if m:
                at = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
                return at - self.started_wall, int(m[4])
        raise SystemExit(f"{self.log}: no 'replayed N records' line after the last start")

    def stop(self, timeout: float = 300) -> float:
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        self.resume()
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise SystemExit(f"{self.name} did not stop in {timeout:.0f} s; killed") from None
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(30)

    def pause(self) -> None:
        if self.proc is not None and self.proc.poll() is None and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in bytes."""
        assert self.proc is not None
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * KIB
        return out

    def mailctl(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mailctl", "--config", self.config, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )


# -- the measurements -------------------------------------------------------------------
def write_passwd(path: str, addresses: list[str], password_hash: str) -> None:
    with open(path, "w") as f:
        for a in addresses:
            f.write(f"{a}:{password_hash}::::::\n")


def import_users(node: NodeProc, path: str, count: int) -> dict:
    t0 = time.monotonic()
    r = node.mailctl("user", "import", path)
    wall = time.monotonic() - t0
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0:
        return {"ok": False, "error": out[-500:], "wall_s": wall}
    rate = re.search(r"\((\d+)/s\)", out)
    return {
        "ok": True,
        "users": count,
        "wall_s": wall,
        "per_s": float(rate[1]) if rate else count / wall,
        "output": out.splitlines()[-1],
    }


def accept(node: NodeProc, rcpts: list[str], messages: int, concurrency: int, data: bytes) -> dict:
    """CONCURRENCY sessions (threads), one connection each, MESSAGES in all."""
    shares = [messages // concurrency + (w < messages % concurrency) for w in range(concurrency)]
    done = [0] * concurrency
    errors: list[str] = []
    deadline = time.monotonic() + max(120.0, messages * 0.5)

    def session(w: int) -> None:
        try:
            with smtplib.SMTP(node.address, 2525, timeout=60) as s:
                for i in range(shares[w]):
                    if time.monotonic() > deadline:
                        errors.append("deadline")
                        return
                    s.sendmail(SENDER, [rcpts[(w + i * concurrency) % len(rcpts)]], data)
                    done[w] += 1
        except (OSError, smtplib.SMTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=session, args=(w,)) for w in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if errors:
        raise SystemExit(f"accept on {node.name}: {len(errors)} sessions failed: {errors[:3]}")
    return {"messages": sum(done), "seconds": wall, "per_s": sum(done) / wall}


def catch_up(node: NodeProc, timeout: float = 300) -> tuple[float, float]:
    """After a round: (bytes the applier was behind the journal, seconds until it had
    applied everything). The committed-lsn gauge is refreshed every second, so the
    end is a value read over a second after the last commit."""
    applied, committed = (
        'mailcluster_store_applied_lsn{shard="0"}',
        'mailcluster_journal_committed_lsn{shard="0"}',
    )
    t0 = time.monotonic()
    seen: list[tuple[float, float]] = []
    while True:
        m = scrape(node.http)
        now = time.monotonic() - t0
        seen.append((now, m.get(applied, 0.0)))
        if now > 1.1 and m.get(applied, 0.0) >= m.get(committed, 0.0):
            end = m[committed]
            done = next(t for t, a in seen if a >= end)
            return max(0.0, end - seen[0][1]), done
        if now > timeout:
            raise SystemExit(f"{node.name}: the applier did not catch up in {timeout:.0f} s")
        time.sleep(0.05)


def accept_rounds(nodes: list[NodeProc], rcpts: list[str], args) -> dict:
    data = body(args.message_size, "accept")
    for node in nodes:  # warm-up: connections, first mailbox directories, caches
        accept(node, rcpts, min(200, args.accept_messages), args.concurrency, data)
    rates: dict[str, list[float]] = {n.name: [] for n in nodes}
    lags: dict[str, list[tuple[float, float, float]]] = {n.name: [] for n in nodes}
    commits = {n.name: {"sum": 0.0, "count": 0.0, "buckets": None} for n in nodes}
    name = "mailcluster_store_commit_seconds"
    for r in range(args.rounds):
        for node in nodes if r % 2 == 0 else nodes[::-1]:
            others = [n for n in nodes if n is not node]
            for o in others:
                o.pause()
            try:
                b0, s0, c0 = histogram(scrape(node.http), name)
                res = accept(node, rcpts, args.accept_messages, args.concurrency, data)
                lag, lag_s = catch_up(node)  # every commit of this round's messages counted
                b1, s1, c1 = histogram(scrape(node.http), name)
            finally:
                for o in others:
                    o.resume()
            rates[node.name].append(res["per_s"])
            lags[node.name].append((lag, lag_s, res["messages"] / (res["seconds"] + lag_s)))
            c = commits[node.name]
            c["sum"] += s1 - s0
            c["count"] += c1 - c0
            delta = [(le, v - dict(b0).get(le, 0.0)) for le, v in b1]
            c["buckets"] = (
                delta
                if c["buckets"] is None
                else [(le, v + w) for (le, v), (_, w) in zip(c["buckets"], delta, strict=True)]
            )
    out = {}
    for node in nodes:
        c = commits[node.name]
        out[node.name] = {
            "per_s": statistics.median(rates[node.name]),
            "rounds": [round(x) for x in rates[node.name]],
            "commits": int(c["count"]),
            "commit_mean_ms": 1000 * c["sum"] / c["count"] if c["count"] else 0.0,
            "commit_p99_ms": 1000 * bucket_quantile(c["buckets"] or [], 0.99),
            "commit_max_le_s": slowest(c["buckets"] or []),
            "records_per_commit": args.accept_messages * args.rounds / c["count"]
            if c["count"]
            else 0.0,
            "applier_behind_max_bytes": max(x[0] for x in lags[node.name]),
            "applier_catch_up_max_s": max(x[1] for x in lags[node.name]),
            "applied_per_s": statistics.median(x[2] for x in lags[node.name]),
        }
    return out


def pop3(address: str, expect: int, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = poplib.POP3(address, 1110, timeout=300)
        try:
            p.user(MAILBOX)
            p.pass_(MAILBOX_PASSWORD)
            t1 = time.monotonic()
            count, _ = p.stat()
            t2 = time.monotonic()
            _, lines, _ = p.uidl()
            t3 = time.monotonic()
        finally:
            p.quit()
        if count != expect or len(lines) != expect:
            raise SystemExit(f"POP3: {count} messages, {len(lines)} UIDL lines, expected {expect}")
        times.append({"login": t1 - t0, "stat": t2 - t1, "uidl": t3 - t2, "total": t3 - t0})
    return {
        "first": times[0],
        "median_total": statistics.median(t["total"] for t in times),
        "runs": times,
    }


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run(args, root: str) -> dict:
    big = NodeProc(os.path.join(root, "big"), BIG_ADDRESS)
    shutil.rmtree(os.path.join(root, "empty"), ignore_errors=True)
    empty = NodeProc(os.path.join(root, "empty"), EMPTY_ADDRESS)
    res: dict = {"args": {k: v for k, v in vars(args).items() if k != "hash"}, "load": [load()]}
    items = args.users + args.queued
    try:
        if args.skip_build:
            built = reuse(big, args)
        else:
            if os.path.exists(big.shard_dir):
                raise SystemExit(f"{big.shard_dir} exists: use --skip-build, or another --dir")
            print(
                f"building: {args.users} users, {args.queued} queued, {args.mailbox_messages} "
                f"in {MAILBOX} ...",
                file=sys.stderr,
                flush=True,
            )
            built = build(big, args)
        jdir = os.path.join(big.shard_dir, "journal")
        jbytes = sum(os.path.getsize(p) for _, p in list_segments(jdir))
        res["build"] = {**built, "journal_bytes": jbytes}
        print(
            f"journal: {built['records']} records, {jbytes / MIB:.0f} MiB "
            f"(built in {built['build_seconds']:.1f} s); scanning ...",
            file=sys.stderr,
            flush=True,
        )
        res["scan_s"] = scan_seconds(jdir)

        empty.start(args.start_timeout)
        empty_open, _ = empty.replayed()
        res["empty"] = {"memory": empty.memory()}
        rcpts = recipients(args.users)
        write_passwd(os.path.join(root, "recipients.passwd"), rcpts, args.hash)
        r = import_users(empty, os.path.join(root, "recipients.passwd"), len(rcpts))
        if not r["ok"]:
            raise SystemExit(f"cannot add the accept recipients to the empty node: {r['error']}")

        print("big node: first start (full replay) ...", file=sys.stderr, flush=True)
        first = big.start(args.start_timeout)
        big_open, replayed = big.replayed()
        replay_s = max(big_open - empty_open, 1e-6)
        res["first_start"] = {
            "seconds": first,
            "to_replayed_s": big_open,
            "empty_to_replayed_s": empty_open,
            "replay_s": replay_s,
            "replayed_records": replayed,
            "replay_mb_s": jbytes / 1e6 / replay_s,
            "replay_records_s": replayed / replay_s,
            "memory": big.memory(),
        }
        stop_s = big.stop()
        restart = big.start(args.start_timeout)
        _, replayed_again = big.replayed()
        res["restart"] = {
            "stop_s": stop_s,
            "seconds": restart,
            "replayed_records": replayed_again,
            "memory": big.memory(),
        }
        print("accept rounds ...", file=sys.stderr, flush=True)
        res["accept"] = accept_rounds([empty, big], rcpts, args)
        res["accept"]["ratio"] = res["accept"]["big"]["per_s"] / res["accept"]["empty"]["per_s"]
        print("POP3 ...", file=sys.stderr, flush=True)
        res["pop3"] = pop3(BIG_ADDRESS, args.mailbox_messages, args.pop3_runs)
        print("import ...", file=sys.stderr, flush=True)
        imports = [f"imp{i:07d}@{DOMAIN}" for i in range(args.import_users)]
        path = os.path.join(root, "import.passwd")
        write_passwd(path, imports, args.hash)
        res["import"] = {n.name: import_users(n, path, len(imports)) for n in (big, empty)}
        res["end_memory"] = {"big": big.memory(), "empty": empty.memory()}
        res["load"].append(load())
    finally:
        for node in (big, empty):
            try:
                node.stop(60)
            except SystemExit as e:
                print(e, file=sys.stderr)
            node.kill()
    res["items"] = items
    return res


# -- the table --------------------------------------------------------------------------
def table(res: dict) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, met) rows."""
    items = res["items"]
    fs, rs, acc = res["first_start"], res["restart"], res["accept"]
    e_rss = res["empty"]["memory"]["VmRSS"]
    rows = []

    def row(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append((figure, value, target, "" if met is None else ("yes" if met else "NO")))

    b = res["build"]
    row(
        "big shard",
        f"{b['users']} users, {b['queued']} queued, {b['mailbox_messages']} in one mailbox, "
        f"{b['message_size']} B messages; journal {b['journal_bytes'] / MIB:.0f} MiB, "
        f"{b['records']} records",
    )
    e, g = acc["empty"], acc["big"]
    row("accept, empty store", f"{e['per_s']:.0f} msg/s (rounds {e['rounds']})")
    row("accept, big store", f"{g['per_s']:.0f} msg/s (rounds {g['rounds']})")
    row("accept big / empty", f"{acc['ratio']:.3f}", ">= 0.90", acc["ratio"] >= 0.90)
    row(
        "index commit, empty",
        f"mean {e['commit_mean_ms']:.2f} ms, p99 {e['commit_p99_ms']:.2f} ms, max <= "
        f"{e['commit_max_le_s']} s ({e['commits']} commits)",
    )
    for label, a in (("empty", e), ("big", g)):
        row(
            f"applier, {label}",
            f"{a['applied_per_s']:.0f} msg/s applied (accept + catch-up); behind by up to "
            f"{a['applier_behind_max_bytes'] / MIB:.1f} MiB when a round ended, caught up "
            f"{a['applier_catch_up_max_s']:.1f} s later; {a['records_per_commit']:.1f} msgs/commit",
        )
    ratio = g["commit_mean_ms"] / e["commit_mean_ms"] if e["commit_mean_ms"] else float("inf")
    row(
        "index commit, big",
        f"mean {g['commit_mean_ms']:.2f} ms, p99 {g['commit_p99_ms']:.2f} ms, max <= "
        f"{g['commit_max_le_s']} s ({g['commits']} commits); mean {ratio:.2f}x empty",
        "independent of size (mean <= 1.5x empty)",
        ratio <= 1.5,
    )
    p = res["pop3"]
    f1 = p["first"]
    row(
        f"POP3 login+STAT+UIDL, {b['mailbox_messages']} msgs",
        f"first {f1['total']:.2f} s (login {f1['login']:.2f}, STAT {f1['stat']:.3f}, UIDL "
        f"{f1['uidl']:.2f}); median of {len(p['runs'])} {p['median_total']:.2f} s",
    )
    row(
        "first start (full replay)",
        f"{fs['seconds']:.1f} s to /health; replay {fs['replay_s']:.1f} s "
        f"({fs['replayed_records']} records)",
    )
    row(
        "journal replay",
        f"{fs['replay_mb_s']:.0f} MB/s, {fs['replay_records_s']:.0f} records/s",
        ">= 200 MB/s",
        fs["replay_mb_s"] >= 200,
    )
    scan_mb_s = b["journal_bytes"] / 1e6 / res["scan_s"] if res["scan_s"] else 0.0
    row("journal scan (recovery check) alone", f"{res['scan_s']:.1f} s, {scan_mb_s:.0f} MB/s")
    row(
        "restart of the big shard",
        f"{rs['seconds']:.1f} s to /health (stop {rs['stop_s']:.1f} s; replayed "
        f"{rs['replayed_records']} records)",
        "< 10 s",
        rs["seconds"] < 10,
    )
    for label, mem in (("after first start", fs["memory"]), ("after restart", rs["memory"])):
        rss = mem["VmRSS"]
        row(
            f"RSS {label}",
            f"{rss / MIB:.0f} MiB = {rss / items:.0f} B per user+queued message",
            "< 1024 B each",
            rss / items < 1024,
        )
    rss = rs["memory"]["VmRSS"]
    row(
        "RSS over the empty node",
        f"{(rss - e_rss) / MIB:.0f} MiB (empty {e_rss / MIB:.0f} MiB) = "
        f"{(rss - e_rss) / items:.0f} B per user+queued message",
        "< 1024 B each",
        (rss - e_rss) / items < 1024,
    )
    em = res["end_memory"]
    row(
        "RSS at the end (peak)",
        f"big {em['big']['VmRSS'] / MIB:.0f} MiB ({em['big']['VmHWM'] / MIB:.0f} peak), "
        f"empty {em['empty']['VmRSS'] / MIB:.0f} MiB ({em['empty']['VmHWM'] / MIB:.0f} peak)",
    )
    row("load average at start / end", " / ".join(res["load"]))
    for name, r in res["import"].items():
        if r["ok"]:
            value = f"{r['per_s']:.0f} users/s ({r['users']} in {r['wall_s']:.1f} s wall)"
        else:
            value = f"FAILED: {r['error'].splitlines()[-1] if r['error'] else '?'}"
        row(f"import, {name} store", value)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--queued", type=int, default=1_000_000)
    p.add_argument("--mailbox-messages", type=int, default=100_000)
    p.add_argument("--message-size", type=int, default=2048)
    p.add_argument("--accept-messages", type=int, default=2000, help="per node and round")
    p.add_argument("--concurrency", type=int, default=8, help="SMTP sessions at once")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pop3-runs", type=int, default=3)
    p.add_argument("--import-users", type=int, default=20_000)
    p.add_argument("--start-timeout", type=float, default=900.0, help="seconds for one start")
    p.add_argument("--dir", help="work directory (default: a new one in the temp directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--skip-build", action="store_true", help="reuse the journal built in --dir")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.skip_build and not args.dir:
        p.error("--skip-build needs --dir")
    if args.users < 1 or args.queued < 0 or args.mailbox_messages < 1 or args.concurrency < 1:
        p.error("need --users >= 1, --queued >= 0, --mailbox-messages >= 1, --concurrency >= 1")
    args.hash = sha512_crypt()
    root = os.path.abspath(args.dir) if args.dir else tempfile.mkdtemp(prefix="store-bench-")
    os.makedirs(root, exist_ok=True)
    # A timeout's or an operator's SIGTERM still stops the nodes (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        res = run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    rows = [("figure", "value", "target", "met"), *table(res)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()

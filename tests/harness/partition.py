"""Network partitions between real node processes on loopback, and a sender that
retries like an MTA, for tests/test_partitions.py.

How a link is cut (``tc netem`` does not work here, nft cannot resolve cgroup paths;
iptables can): every node process runs in a cgroup v2 directory of its own. Three
facts, each checked on this machine with a throw-away client and listener, shape it:
- A node opens its connections (kazoo to ZooKeeper, gRPC to peers) towards the
  listener's own 127.x.y.z but *from 127.0.0.1* (nothing binds a source address).
- ``-m cgroup`` in OUTPUT matches the cgroup a socket was *created* in, not the one
  its process is in now: moving a running node into a cgroup leaves its ZooKeeper
  session and gRPC streams uncut. So a node is in its cgroup before it opens any
  socket: ``adopt`` has the node's process forked while the test process sits in the
  node's cgroup (a child starts in its parent's cgroup), then moves the test process
  back. (``-m cgroup`` in INPUT matches nothing on loopback.)
- Dropping only the opener's packets (``-m cgroup --path A -d B -j DROP``) is NOT a
  clean cut: the listener's replies go to 127.0.0.1, are not matched, and keep being
  delivered to the opener until the listener's send window is full (a spare went on
  receiving, and fsyncing, frames whose acknowledgements never arrived). And the
  listener's replies cannot be told apart by address (every opener is 127.0.0.1).
  So each connection is labelled with its opener: a mangle rule gives every
  connection whose first packet comes from a node's cgroup that node's conntrack mark
  (``CONNMARK --set-mark``, only while unmarked), and a cut drops, in OUTPUT, every
  packet of a connection with the opener's mark and the listener's address as
  original destination (``-m connmark --mark A -m conntrack --ctorigdst B``): both
  directions of every connection A opened to B, and every new one. A link A|B is a
  rule for A's connections to B and one for B's to A (``cut``); ZooKeeper servers
  never open connections to nodes, so a cut from ZooKeeper is one rule per server.
  Connections the test's own clients open are never marked by a client, so a client
  keeps reaching a cut node's SMTP port. ``dropped_packets`` reads the rules'
  counters (evidence that a cut cuts).

Every rule carries the comment ``mc-pt-<tag>``. ``Partitions.remove`` (called by the
test's fixture finalizer) deletes every rule it added and any rule carrying its tag,
moves the processes back to the root cgroup, removes the directories, and fails if a
rule is left.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import smtplib
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from harness.wait import wait_for

CGROUP_ROOT = "/sys/fs/cgroup/unified"


def _iptables() -> str:
    path = shutil.which("iptables") or "/usr/sbin/iptables"
    if not os.path.exists(path):
        raise AssertionError(
            "iptables is missing (Debian package iptables; scripts/install-deps test "
            "installs it): the partition tests cannot cut links"
        )
    return path


def _own_cgroup() -> str:
    """The cgroup v2 directory of this process."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.join(CGROUP_ROOT, line[3:].strip().lstrip("/"))
    raise AssertionError(
        "this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no 0:: line)"
    )


def _move(pid: int, directory: str) -> None:
    with open(os.path.join(directory, "cgroup.procs"), "w") as f:
        f.write(str(pid))


class Partitions:
    """Cuts and heals links between node processes; remove() undoes everything."""

    _fork_lock = threading.Lock()

    def __init__(self):
        if os.geteuid() != 0:
            raise AssertionError("the partition tests need root (iptables rules, cgroups)")
        if not os.path.isfile(os.path.join(CGROUP_ROOT, "cgroup.procs")):
            raise AssertionError(
                f"no cgroup v2 hierarchy at {CGROUP_ROOT}: the partition tests cannot cut links"
            )
        self.iptables = _iptables()
        for table in ("filter", "mangle"):
            r = subprocess.run(
                [self.iptables, "-w", "-t", table, "-S", "OUTPUT"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if r.returncode != 0:
                raise AssertionError(f"iptables -t {table} does not work here: {r.stderr.strip()}")
        self.home = _own_cgroup()
        self.tag = uuid.uuid4().hex[:6]
        self.comment = f"mc-pt-{self.tag}"
        self.base = int(self.tag[:4], 16) << 8  # conntrack marks: base + 1, base + 2, ...
        self.groups: dict[str, str] = {}  # node ip -> cgroup name (relative to CGROUP_ROOT)
        self.marks: dict[str, int] = {}  # node ip -> conntrack mark of the connections it opens
        self.mangle: list[list[str]] = []  # the marking rules (until remove)
        self.rules: list[tuple[str, str]] = []  # cuts in place: (node ip, destination ip)

    # -- cgroups and marks -------------------------------------------------------------
    def adopt(self, node):
        """Give the node a cgroup and a mark of its own, and make every start of its
        process begin in that cgroup (before it opens a socket). Returns the node."""
        if node.ip in self.groups:
            return node
        name = f"{self.comment}-{node.ip.replace('.', '-')}"
        path = os.path.join(CGROUP_ROOT, name)
        os.makedirs(path, exist_ok=True)
        self.groups[node.ip] = name
        mark = self.base + len(self.marks) + 1
        self.marks[node.ip] = mark
        spec = [
            "OUTPUT",
            "-m",
            "cgroup",
            "--path",
            name,
            "-m",
            "connmark",
            "--mark",
            "0",
            "-m",
            "comment",
            "--comment",
            self.comment,
            "-j",
            "CONNMARK",
            "--set-mark",
            hex(mark),
        ]
        self._ipt("-t", "mangle", "-A", *spec)
        self.mangle.append(spec)
        plain_start = node.start

        def start(wait: bool = True) -> None:
            with Partitions._fork_lock:  # one fork at a time leaves through this door
                _move(os.getpid(), path)
                try:
                    plain_start(wait=False)  # the child is forked in the node's cgroup
                finally:
                    _move(os.getpid(), self.home)
            with open(os.path.join(path, "cgroup.procs")) as f:
                assert str(node.proc.pid) in f.read().split(), (
                    f"{node.name} is not in its cgroup {name}"
                )
            if wait:
                wait_for(node._ready, 30, what=f"node at {node.ip} to be healthy")

        node.start = start
        return node

    # -- rules ------------------------------------------------------------------------
    def _ipt(self, *args: str, check: bool = True) -> bool:
        r = subprocess.run([self.iptables, "-w", *args], capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError(f"iptables {' '.join(args)} failed: {r.stderr.strip()}")
        return r.returncode == 0

    def _cut_spec(self, src_ip: str, dst_ip: str) -> list[str]:
        return [
            "OUTPUT",
            "-m",
            "connmark",
            "--mark",
            hex(self.marks[src_ip]),
            "-m",
            "conntrack",
            "--ctorigdst",
            dst_ip,
            "-m",
            "comment",
            "--comment",
            self.comment,
            "-j",
            "DROP",
        ]

    def drop(self, node, ips) -> None:
        """Cut every connection the node opens towards each address, both directions."""
        if node.ip not in self.marks:
            raise AssertionError(
                f"{node.name} ({node.ip}) was not adopted before it started (Partitions.adopt)"
            )
        for ip in ips:
            if ip.startswith("127.0.0.") or ip == node.ip:
                raise AssertionError(f"refusing to cut {node.name} from {ip}")
            if (node.ip, ip) not in self.rules:
                self._ipt("-A", *self._cut_spec(node.ip, ip))
                self.rules.append((node.ip, ip))

    def cut(self, a, b) -> None:
        """Cut the link between nodes a and b: what a opened to b and what b opened to a."""
        self.drop(a, [b.ip])
        self.drop(b, [a.ip])

    def cut_from_zookeeper(self, node, ensemble) -> None:
        self.drop(node, [s.host for s in ensemble.servers])

    def dropped_packets(self) -> dict[tuple[str, str], int]:
        """Packets each cut in place has dropped so far: {(node ip, destination): n}."""
        r = subprocess.run(
            [self.iptables, "-w", "-L", "OUTPUT", "-v", "-x", "-n"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        by_mark = {m: ip for ip, m in self.marks.items()}
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(
                r"\s*(\d+)\s+\d+\s+DROP\b.*connmark match\s+(0x[0-9a-f]+)\s+ctorigdst\s+(\S+)", line
            )
            if m and self.comment in line and int(m.group(2), 16) in by_mark:
                out[(by_mark[int(m.group(2), 16)], m.group(3))] = int(m.group(1))
        return out

    def heal(self) -> None:
        """Delete every cut (all links back)."""
        errors = []
        for src, dst in list(self.rules):
            try:
                self._ipt("-D", *self._cut_spec(src, dst))
            except (AssertionError, OSError, subprocess.SubprocessError) as e:
                errors.append(str(e))
            self.rules.remove((src, dst))
        if errors:
            raise AssertionError("; ".join(errors))

    def _sweep(self) -> str:
        """Delete any rule carrying our comment; return what is left with it."""
        left = ""
        for table in ("filter", "mangle"):
            r = subprocess.run(
                [self.iptables, "-w", "-t", table, "-S", "OUTPUT"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            for line in r.stdout.splitlines():
                if self.comment in line and line.startswith("-A "):
                    subprocess.run(
                        [self.iptables, "-w", "-t", table, "-D", *shlex.split(line)[1:]],
                        capture_output=True,
                        timeout=20,
                    )
            r = subprocess.run(
                [self.iptables, "-w", "-t", table, "-S", "OUTPUT"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            left += "".join(line + "\n" for line in r.stdout.splitlines() if self.comment in line)
        return left

    def remove(self) -> None:
        """Undo everything, whatever state a failed test left: rules, then cgroups."""
        try:
            self.heal()
        finally:
            for spec in self.mangle:
                self._ipt("-t", "mangle", "-D", *spec, check=False)
            self.mangle.clear()
            left = self._sweep()
            problems = [f"iptables rules left behind:\n{left}"] if left else []
            for name in self.groups.values():
                path = os.path.join(CGROUP_ROOT, name)
                if not os.path.isdir(path):
                    continue
                for _ in range(20):  # a process may be forking while we move them
                    with open(os.path.join(path, "cgroup.procs")) as f:
                        pids = f.read().split()
                    if not pids:
                        break
                    for pid in pids:
                        try:
                            _move(int(pid), CGROUP_ROOT)
                        except OSError:
                            pass  # gone meanwhile
                try:
                    os.rmdir(path)
                except OSError as e:
                    problems.append(f"cgroup {path} could not be removed: {e}")
            assert not problems, "; ".join(problems)


def log_since(node, offset: int) -> str:
    """The node's log from a byte offset on (what it logged since a fault)."""
    with open(node.log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(node) -> int:
    try:
        return os.path.getsize(node.log)
    except OSError:
        return 0


# -- a sender that retries like an MTA ---------------------------------------------------


def numbered(n: int, tag: str, rcpt: str) -> bytes:
    """Message n of a run: the same bytes on every attempt."""
    return (
        f"From: load@remote.test\r\nTo: {rcpt}\r\nSubject: pt {tag} {n}\r\n"
        f"Message-ID: <{tag}.{n}@remote.test>\r\n\r\nmessage {n} of run {tag}\r\n"
    ).encode()


def stored_counters(messages: list[bytes], tag: str) -> list[int]:
    """The counters of a run's messages among a mailbox's (one entry per stored copy)."""
    pattern = re.compile(rb"^Subject: pt " + re.escape(tag.encode()) + rb" (\d+)\r?$", re.M)
    out = []
    for msg in messages:
        m = pattern.search(msg)
        if m:
            n = int(m.group(1))
            assert msg.endswith(f"message {n} of run {tag}\r\n".encode()), msg[
                -200:
            ]  # stored whole
            out.append(n)
    return out


@dataclass
class Outcomes:
    ok: set[int] = field(default_factory=set)  # some attempt got 250
    tempfail: set[int] = field(default_factory=set)  # some attempt got a 4xx reply (at any step)
    unknown: set[int] = field(
        default_factory=set
    )  # an attempt broke after the dot: a 250 maybe never seen
    given_up: set[int] = field(default_factory=set)  # no 250 before the sender's deadline
    attempts: int = 0


class RetryingSender:
    """Worker threads send numbered messages until stop(); a refused (4xx) or broken
    attempt is retried as a sending MTA would: the same bytes in a new transaction,
    through the next address of ``servers`` (every node's SMTP port routes to the
    shard's primary). ``timeout`` must exceed the nodes' ``frontend.hold_timeout`` so
    that a held transaction is seen to end in 451, not in a broken connection."""

    def __init__(
        self,
        servers,
        rcpt: str,
        tag: str,
        *,
        workers: int = 6,
        retry_delay: float = 0.3,
        timeout: float = 25.0,
        pause: float = 0.02,
    ):
        self.servers, self.rcpt, self.tag = list(servers), rcpt, tag
        self.workers, self.retry_delay, self.timeout, self.pause = (
            workers,
            retry_delay,
            timeout,
            pause,
        )
        self.out = Outcomes()
        self.ok_at: dict[int, float] = {}  # wall time of the 250 ...
        self.ok_by: dict[int, tuple[str, int]] = {}  # ... and the server that gave it
        self.refused_by: dict[int, list[tuple[str, int]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, retry_for: float = 150.0) -> None:
        self.retry_for = retry_for
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 200.0) -> None:
        """No new messages; wait until every message taken got its 250 (or gave up)."""
        self._stop.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), (
            "the sender did not finish its retries in time"
        )
        assert not self.errors, f"sender thread failed: {self.errors[0]!r}"

    @property
    def sent(self) -> int:
        return self._next

    def acknowledged(self) -> int:
        with self._lock:
            return len(self.out.ok)

    def _take(self) -> int | None:
        with self._lock:
            if self._stop.is_set():
                return None
            self._next += 1
            return self._next - 1

    def _run(self, worker: int) -> None:
        try:
            self._work(worker)
        except BaseException as e:  # reported by stop(), not lost in a thread
            self.errors.append(e)

    def _work(self, worker: int) -> None:
        turn = worker
        while (n := self._take()) is not None:
            data = numbered(n, self.tag, self.rcpt)
            give_up = time.monotonic() + self.retry_for
            while True:
                if time.monotonic() > give_up:
                    with self._lock:
                        self.out.given_up.add(n)
                    break
                server = self.servers[turn % len(self.servers)]
                result = self._attempt(server, data)
                with self._lock:
                    self.out.attempts += 1
                    if result == "ok":
                        self.out.ok.add(n)
                        self.ok_at[n], self.ok_by[n] = time.time(), server
                    elif result == "tempfail":
                        self.out.tempfail.add(n)
                        self.refused_by.setdefault(n, []).append(server)
                    elif result == "unknown":
                        self.out.unknown.add(n)
                if result == "ok":
                    break
                turn += 1  # the next MX host
                time.sleep(self.retry_delay)
            time.sleep(self.pause)

    def _attempt(self, server, data: bytes) -> str:
        """ok (250 after the dot), tempfail (a 4xx anywhere), unknown (the connection
        broke or timed out after the dot), failed (no server reached or broke before
        the dot: nothing can have been stored)."""
        after_dot = False
        try:
            with smtplib.SMTP(*server, timeout=self.timeout) as s:
                s.ehlo("sender.remote.test")
                for cmd, want in (
                    ("MAIL FROM:<load@remote.test>", 250),
                    (f"RCPT TO:<{self.rcpt}>", 250),
                    ("DATA", 354),
                ):
                    code, _ = s.docmd(cmd)
                    if code != want:
                        if 400 <= code < 500:
                            return "tempfail"
                        raise AssertionError(f"{cmd} answered {code} by {server}")
                after_dot = True
                s.send(data + b".\r\n")
                code, _ = s.getreply()
                if code == 250:
                    return "ok"
                if 400 <= code < 500:
                    return "tempfail"
                raise AssertionError(f"end of data answered {code} by {server}")
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError):
            return "unknown" if after_dot else "failed"


def tally(sender: RetryingSender, stored: list[int]) -> dict:
    """Per counter, after the heal:
    lost       a 250 was seen, no copy stored;
    twice      stored more than once, and every attempt's outcome was seen (no RFC 1047
               window): includes dup_after_451, a 451 whose retry got 250 and then a
               second copy;
    rfc1047    stored more than once, but some attempt broke after the dot (its 250 may
               have been lost on the way: the sender's retry duplicates by design);
    after_451  stored although no attempt got 250 and none broke after the dot (every
               answer the client saw was a 4xx)."""
    copies = Counter(stored)
    out = sender.out
    lost = sorted(n for n in out.ok if copies[n] == 0)
    twice = sorted(n for n, c in copies.items() if c > 1 and n not in out.unknown)
    rfc1047 = sorted(n for n, c in copies.items() if c > 1 and n in out.unknown)
    after_451 = sorted(n for n in copies if n not in out.ok and n not in out.unknown)
    return {
        "sent": sender.sent,
        "attempts": out.attempts,
        "acknowledged": len(out.ok),
        "tempfailed_once": len(out.tempfail),
        "broken_after_dot": len(out.unknown),
        "given_up": sorted(out.given_up),
        "stored_counters": len(copies),
        "stored_copies": len(stored),
        "lost": lost,
        "twice": twice,
        "dup_after_451": sorted(n for n in twice if n in out.tempfail),
        "rfc1047": rfc1047,
        "after_451": after_451,
    }

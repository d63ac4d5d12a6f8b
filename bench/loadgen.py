#!/usr/bin/env python3
"""SMTP accept-throughput load generator, modelled on Postfix's smtp-source.

  python3 bench/loadgen.py --server 127.0.0.1:2525 --sessions 20 \
      --messages 20000 --size 2048 [--reuse] [--json] [--accepted-log FILE]

Equivalent of `smtp-source -s 20 -m 20000 -l 2048 127.0.0.1:2525` (add -d for
--reuse).  Plain dialogue, no PIPELINING: EHLO, MAIL, RCPT, DATA, message, ".",
then QUIT and a new connection per message unless --reuse.  Each message is
exactly --size bytes including its headers (`Subject: lg N`, From, To,
`Message-ID: <N.TAG@lg>`, N a unique number counting from --first); a --size
below the header block (~95 bytes) sends the headers alone.

Outcome per message: accepted (2xx after the dot), tempfail / rejected (first
4xx / 5xx reply at any step), error (connect failure, timeout, reset, garbage).
errors_after_dot counts errors after the dot was sent: outcome unknown.
Latency runs from the dot reaching the kernel to the reply.  Stops after
--messages or --max-seconds (in-flight messages are then dropped uncounted).

Importable: `run(opts)` (async) or `measure(server=..., **opts)` return the
result dict printed by --json.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from functools import lru_cache


class Tempfail(Exception):
    pass


class Rejected(Exception):
    pass


@lru_cache(maxsize=64)
def filler(n: int) -> bytes:
    """n bytes (n == 0 or n >= 2) of 'X' lines, each <= 78 chars + CRLF."""
    if n == 0:
        return b""
    k = -(-n // 80)  # number of lines
    base, extra = divmod(n, k)  # line lengths base or base+1, <= 80
    lines = [b"X" * (base + (i < extra) - 2) + b"\r\n" for i in range(k)]
    return b"".join(lines)


def make_message(n: int, tag: str, mail_from: str, rcpt: str, size: int) -> bytes:
    def headers(pad):
        return (
            f"Subject: lg {n}{pad}\r\nFrom: {mail_from}\r\nTo: {rcpt}\r\n"
            f"Message-ID: <{n}.{tag}@lg>\r\n\r\n"
        ).encode()

    head = headers("")
    rest = size - len(head)
    if rest == 1:  # a 1-byte line cannot end in CRLF
        head, rest = headers(" "), 0
    return head + filler(max(rest, 0))


class Stats:
    def __init__(self):
        self.accepted = self.tempfail = self.rejected = self.errors = 0
        self.errors_after_dot = 0
        self.latencies = []


class Session:
    def __init__(self, opts, host, port, stats, seq, log):
        self.o, self.host, self.port = opts, host, port
        self.stats, self.seq, self.log = stats, seq, log
        self.reader = self.writer = self.waiting_since = None

    async def reply(self) -> int:
        """Read one (possibly multi-line) reply; return its code.
        watchdog() aborts the connection if this waits more than --timeout."""
        self.waiting_since = time.monotonic()
        while True:
            line = await self.reader.readline()
            if len(line) < 4 or not line.endswith(b"\n"):
                raise ConnectionError(f"bad reply {line[:80]!r}")
            if line[3:4] != b"-":
                self.waiting_since = None
                return int(line[:3])

    async def cmd(self, data: bytes, want: int) -> None:
        self.writer.write(data)
        code = await self.reply()
        if code // 100 != want:
            raise (Tempfail if code // 100 == 4 else Rejected)(code)

    async def connect(self):
        async with asyncio.timeout(self.o.timeout):
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        # asyncio recv()s 256 KiB per read: glibc then mmap/mremap/munmaps every
        # reply.  SMTP replies are tiny; 16 KiB buffers stay on the heap.
        self.writer.transport.max_size = 16384
        self.writer.transport.set_write_buffer_limits(high=0)  # drain() = all sent
        code = await self.reply()
        if code // 100 != 2:
            raise (Tempfail if code // 100 == 4 else Rejected)(code)
        await self.cmd(self.o.ehlo_line, 2)

    def close(self):
        if self.writer is not None:
            self.writer.transport.abort()  # no TIME_WAIT linger on our side
        self.reader = self.writer = self.waiting_since = None

    async def quit(self):
        try:
            self.writer.write(b"QUIT\r\n")
            await self.reply()
        except (OSError, EOFError, ValueError, TimeoutError):
            pass
        self.close()

    async def transaction(self, n: int) -> None:
        o, st = self.o, self.stats
        dot_sent = False
        try:
            if self.writer is None:
                await self.connect()
            await self.cmd(o.mail_line, 2)
            await self.cmd(o.rcpt_line, 2)
            await self.cmd(b"DATA\r\n", 3)
            body = make_message(n, o.tag, o.mail_from, o.to, o.size)
            self.writer.write(body + b".\r\n")
            dot_sent = True
            self.waiting_since = time.monotonic()  # watchdog covers drain
            await self.writer.drain()
            t0 = time.perf_counter()
            code = await self.reply()
            st.latencies.append(time.perf_counter() - t0)
        except (Tempfail, Rejected) as e:  # refused before the dot: start afresh
            st.tempfail += isinstance(e, Tempfail)
            st.rejected += isinstance(e, Rejected)
            await self.quit()
            return
        except (OSError, EOFError, ValueError, TimeoutError):
            st.errors += 1
            st.errors_after_dot += dot_sent
            self.close()
            await asyncio.sleep(o.error_delay)
            return
        cls = code // 100
        if cls == 2:
            st.accepted += 1
            if self.log:
                self.log.write(f"{n}\n")
                self.log.flush()
        elif cls == 4:
            st.tempfail += 1
        else:
            st.rejected += 1
        if not o.reuse or code == 421:
            await self.quit()

    async def loop(self, deadline: float):
        try:
            while time.monotonic() < deadline:
                n = next(self.seq, None)
                if n is None:
                    break
                await self.transaction(n)
            if self.writer is not None:
                await self.quit()
        finally:
            self.close()


async def watchdog(sessions, timeout):
    """One timer for all sessions: per-read asyncio.timeout() costs ~15% CPU."""
    while True:
        await asyncio.sleep(min(1.0, timeout / 4))
        now = time.monotonic()
        for s in sessions:
            since = s.waiting_since
            if since is not None and now - since > timeout and s.writer is not None:
                s.writer.transport.abort()  # readline() then sees EOF


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, round(p / 100 * (len(sorted_vals) - 1)))
    return sorted_vals[i]


async def run(o) -> dict:
    host, _, port = o.server.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    o.ehlo_line = f"EHLO {o.helo}\r\n".encode()
    o.mail_line = f"MAIL FROM:<{o.mail_from}>\r\n".encode()
    o.rcpt_line = f"RCPT TO:<{o.to}>\r\n".encode()
    if len(make_message(o.first, o.tag, o.mail_from, o.to, o.size)) > o.size:
        print(
            f"loadgen: --size {o.size} is below the header size; sending headers only",
            file=sys.stderr,
        )
    stats = Stats()
    seq = iter(range(o.first, o.first + o.messages))
    log = open(o.accepted_log, "a") if o.accepted_log else None
    cpu0, t0 = time.process_time(), time.monotonic()
    deadline = t0 + o.max_seconds
    sessions = [Session(o, host, int(port), stats, seq, log) for _ in range(o.sessions)]
    tasks = [asyncio.create_task(s.loop(deadline)) for s in sessions]
    dog = asyncio.create_task(watchdog(sessions, o.timeout))
    try:
        _done, pending = await asyncio.wait(tasks, timeout=o.max_seconds)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        dog.cancel()
        if log:
            log.close()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    lat = sorted(stats.latencies)

    def ms(v):
        return None if v is None else round(v * 1000, 3)

    return {
        "sent": stats.accepted + stats.tempfail + stats.rejected + stats.errors,
        "accepted": stats.accepted,
        "tempfail": stats.tempfail,
        "rejected": stats.rejected,
        "errors": stats.errors,
        "errors_after_dot": stats.errors_after_dot,
        "wall_s": round(wall, 3),
        "accepted_per_s": round(stats.accepted / wall, 1) if wall > 0 else 0.0,
        "p50_ms": ms(percentile(lat, 50)),
        "p99_ms": ms(percentile(lat, 99)),
        "cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else 0.0,
        "sessions": o.sessions,
        "size": o.size,
        "reuse": o.reuse,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:25", help="host:port")
    p.add_argument("--sessions", type=int, default=20, help="parallel sessions (-s)")
    p.add_argument("--messages", type=int, default=20000, help="messages in total (-m)")
    p.add_argument("--size", type=int, default=2048, help="message bytes incl. headers (-l)")
    p.add_argument("--from", dest="mail_from", default="a@bench.test")
    p.add_argument("--to", default="user@example.test")
    p.add_argument("--helo", default="loadgen.bench.test", help="EHLO name (-M)")
    p.add_argument("--reuse", action="store_true", help="keep connections open (-d)")
    p.add_argument("--first", type=int, default=1, help="number of the first message")
    p.add_argument("--tag", default=os.urandom(3).hex(), help="run tag in Message-IDs")
    p.add_argument("--timeout", type=float, default=30.0, help="per operation, seconds")
    p.add_argument("--max-seconds", type=float, default=300.0)
    p.add_argument(
        "--error-delay",
        type=float,
        default=0.1,
        help="pause of a session after a connection error, seconds",
    )
    p.add_argument(
        "--accepted-log",
        metavar="FILE",
        help="append the number of each accepted message, one per line",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def measure(**overrides) -> dict:
    """Synchronous helper for importers: measure(server="127.0.0.1:2525", size=100)."""
    o = parse_args([])
    vars(o).update(overrides)
    return asyncio.run(run(o))


def main(argv=None) -> int:
    o = parse_args(argv)
    r = asyncio.run(run(o))
    if o.json:
        print(json.dumps(r))
    else:
        print(
            f"sent {r['sent']}  accepted {r['accepted']}  tempfail {r['tempfail']}  "
            f"rejected {r['rejected']}  errors {r['errors']} "
            f"({r['errors_after_dot']} after dot)\n"
            f"wall {r['wall_s']} s  accepted {r['accepted_per_s']} msg/s  "
            f"end-of-data->reply p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
            f"cpu {r['cpu_pct']}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

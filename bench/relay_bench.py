#!/usr/bin/env python3
"""Submission and outbound delivery throughput of one mail node, durability on.

    python3 bench/relay_bench.py [--messages 5000] [--sessions 20] [--size 2048] [--runs 3]

Each run starts a fresh node (one shard, journal fdatasync group commit) with
submission on (STARTTLS + AUTH PLAIN) and every remote domain routed to a
loopback sink (aiosmtpd's Sink handler in its own process). SESSIONS clients
(aiosmtplib) each log in once and submit their share of MESSAGES to
recipients at remote.test. Prints the median over the runs of: submitted
msg/s (accept: every 250 after the journal's fdatasync, and the message is
queued), delivered msg/s (first submission to the last DeliveryResult
recorded, from the node's metrics), and the end-to-end time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
ADDRESS, SINK = "127.0.78.1", "127.0.78.2"
USER, PASSWORD = "bench@example.test", "bench-password"


def delivered(http: str) -> float:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('mailcluster_delivery_attempts_total{result="delivered"}'):
                return float(line.rpartition(" ")[2])
    return 0.0


def certificate(directory: str) -> tuple[str, str]:
    from devtools.localcluster import make_certificate

    return make_certificate(directory, "bench.example.test")


def start(directory: str) -> tuple[subprocess.Popen, subprocess.Popen]:
    cert, key = certificate(directory)
    cfg = os.path.join(directory, "node.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[node]\nname = "bench"\ndata_dir = "data"\ndomains = ["example.test"]\nshards = 1\n'
            f'[smtp]\nlisten = "{ADDRESS}:2525"\n[pop3]\nlisten = ""\n[http]\nlisten = "{ADDRESS}:8080"\n'
            f'[grpc]\nlisten = "{ADDRESS}:7070"\n[tls]\ncert = "{cert}"\nkey = "{key}"\n'
            f'[submission]\nlisten = "{ADDRESS}:5870"\nrate_per_user = 0\nrate_per_ip = 0\n'
            f'[delivery]\nsmarthost = "{SINK}:2526"\nstarttls = "none"\nconcurrency = 50\n'
            f"destination_concurrency = 20\n"
        )
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"{SINK}:2526",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "mailnode.cli", "--config", cfg, "--log-level", "WARNING"],
        stdout=open(os.path.join(directory, "node.log"), "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{ADDRESS}:8080/health", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit(f"node did not start; see {directory}/node.log") from None
            time.sleep(0.1)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mailctl",
            "--config",
            cfg,
            "user",
            "add",
            USER,
            "--password",
            PASSWORD,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return node, sink


async def submit(messages: int, sessions: int, size: int) -> float:
    import aiosmtplib

    body = (b"Subject: bench\r\n\r\n" + b"x" * 76 + b"\r\n") * max(1, size // 78)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    async def session(n: int) -> None:
        client = aiosmtplib.SMTP(
            hostname=ADDRESS, port=5870, start_tls=True, tls_context=ctx, timeout=60
        )
        await client.connect()
        await client.login(USER, PASSWORD)
        for i in range(n):
            await client.sendmail(USER, [f"r{i % 100}@remote.test"], body)
        await client.quit()

    share = [messages // sessions + (1 if i < messages % sessions else 0) for i in range(sessions)]
    t0 = time.monotonic()
    await asyncio.gather(*(session(n) for n in share))
    return time.monotonic() - t0


def run(args) -> dict:
    directory = tempfile.mkdtemp(prefix="relay-bench-")
    node, sink = start(directory)
    try:
        t0 = time.monotonic()
        accept_seconds = asyncio.run(submit(args.messages, args.sessions, args.size))
        while delivered(f"{ADDRESS}:8080") < args.messages:
            if time.monotonic() - t0 > 600:
                raise SystemExit("not everything was delivered within 10 minutes")
            time.sleep(0.05)
        total = time.monotonic() - t0
        return {
            "submitted": args.messages / accept_seconds,
            "delivered": args.messages / total,
            "total": total,
        }
    finally:
        for p in (node, sink):
            p.terminate()
            p.wait(30)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results = [run(args) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"{args.messages} messages of {args.size} B, {args.sessions} sessions, {args.runs} runs (median):"
    )
    print(
        f"  submitted {med['submitted']:.0f} msg/s   delivered {med['delivered']:.0f} msg/s   "
        f"end to end {med['total']:.1f} s"
    )


if __name__ == "__main__":
    main()

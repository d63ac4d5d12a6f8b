#!/usr/bin/env python3
"""Accept and delivery throughput of one mail node, durability on.

    python3 bench/node_bench.py [--sizes 100,2048,102400] [--messages 20000]
                                [--sessions 20] [--runs 3] [--reuse]
                                [--generator auto|smtp-source|loadgen]

Each run starts a fresh node (one shard, journal fdatasync group commit) on
loopback -- with --spare, also a hot spare following it over gRPC, so that
every 250 waits for the spare's fsync too (policy sync) -- adds one mailbox, and drives it with Postfix's smtp-source when it
is installed (`apt-get install postfix`), else with bench/loadgen.py. Prints,
per size, the median over the runs of: accepted msg/s (wall time of the
generator), delivered msg/s (until every message is in the Maildir), commit
latency p50/p99 (end of DATA -> all shards durable, from the node's
histogram), and fdatasyncs per message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ADDRESS = "127.0.77.1"
SPARE_ADDRESS = "127.0.77.2"
ARCHIVE_ADDRESS = "127.0.77.3"
USER = "bench@example.test"


def scrape(http: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """histogram_quantile() over the node's cumulative buckets, linear inside a bucket."""
    buckets = sorted(
        (float("inf") if m.group(1) == "+Inf" else float(m.group(1)), v)
        for k, v in metrics.items()
        if (m := re.fullmatch(name + r'_bucket\{le="([^"]+)"\}', k))
    )
    return bucket_quantile(buckets, q)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile() over sorted cumulative (le, count) buckets."""
    if not buckets or not buckets[-1][1]:
        return 0.0
    rank, prev_le, prev_count = q * buckets[-1][1], 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1)
        prev_le, prev_count = le, count
    return prev_le


def start_archive(directory: str) -> tuple[subprocess.Popen, str]:
    """The remote-site archive with mTLS (a CA made here); returns it and the node's [archive] section."""
    sys.path.insert(0, os.path.join(HERE, ".."))
    from mailnode.tls import make_ca

    os.makedirs(directory, exist_ok=True)
    certs = make_ca(os.path.join(directory, "pki"), ["archive", "node"])
    cfg = os.path.join(directory, "archive.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[archive]\ndata_dir = "data"\nlisten = "{ARCHIVE_ADDRESS}:7171"\nhttp = "{ARCHIVE_ADDRESS}:8181"\n'
            f'tls_ca = "{certs["ca"][0]}"\ntls_cert = "{certs["archive"][0]}"\ntls_key = "{certs["archive"][1]}"\n'
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailnode.cli",
            "archive",
            "--config",
            cfg,
            "--log-level",
            "WARNING",
        ],
        stdout=open(os.path.join(directory, "archive.log"), "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{ARCHIVE_ADDRESS}:8181/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"archive did not start; see {directory}/archive.log") from None
            time.sleep(0.1)
    section = (
        f'[archive]\naddress = "{ARCHIVE_ADDRESS}:7171"\ntls_ca = "{certs["ca"][0]}"\n'
        f'tls_cert = "{certs["node"][0]}"\ntls_key = "{certs["node"][1]}"\n'
    )
    return proc, section


def start_node(
    directory: str, address: str = ADDRESS, follow: str = "", policy: str = "sync", extra: str = ""
) -> subprocess.Popen:
    os.makedirs(directory, exist_ok=True)
    cfg = os.path.join(directory, "node.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[node]\nname = "{os.path.basename(directory)}"\ndata_dir = "data"\ndomains = ["example.test"]\n'
            f'shards = 1\n[smtp]\nlisten = "{address}:2525"\n[pop3]\nlisten = ""\n'
            f'[http]\nlisten = "{address}:8080"\n[grpc]\nlisten = "{address}:7070"\n'
            f'[replication]\npolicy = "{policy}"\nfollow = "{follow}"\n{extra}'
        )
    log = open(os.path.join(directory, "node.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailnode.cli", "--config", cfg, "--log-level", "WARNING"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(f"{address}:8080")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"node did not start; see {directory}/node.log") from None
            time.sleep(0.1)
    return proc


def add_user(directory: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mailctl",
            "--config",
            os.path.join(directory, "node.toml"),
            "user",
            "add",
            USER,
            "--password",
            "bench-password",
        ],
        check=True,
        capture_output=True,
    )


def wait_in_sync(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while scrape(f"{ADDRESS}:8080").get('mailcluster_replication_in_sync_spares{shard="0"}', 0) < 1:
        if time.monotonic() > deadline:
            raise SystemExit("the spare did not get in sync")
        time.sleep(0.1)


def generate(kind: str, size: int, messages: int, sessions: int, reuse: bool) -> float:
    """Runs the load; returns its wall seconds."""
    if kind == "smtp-source":
        cmd = (
            [
                "smtp-source",
                "-s",
                str(sessions),
                "-m",
                str(messages),
                "-l",
                str(size),
                "-f",
                "load@remote.test",
                "-t",
                USER,
            ]
            + (["-d"] if reuse else [])
            + [f"{ADDRESS}:2525"]
        )
    else:
        cmd = [
            sys.executable,
            os.path.join(HERE, "loadgen.py"),
            "--server",
            f"{ADDRESS}:2525",
            "--sessions",
            str(sessions),
            "--messages",
            str(messages),
            "--size",
            str(size),
            "--to",
            USER,
            "--json",
        ] + (["--reuse"] if reuse else [])
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {r.stderr.strip()[:500]}")
    if kind == "loadgen":
        res = json.loads(r.stdout)
        if res["accepted"] != messages:
            raise SystemExit(f"loadgen: only {res['accepted']} of {messages} accepted: {res}")
    return wall


def one_run(
    kind: str,
    size: int,
    messages: int,
    sessions: int,
    reuse: bool,
    root: str,
    spare: bool,
    policy: str,
    archive: str = "none",
) -> dict:
    directory = tempfile.mkdtemp(prefix="node-bench-", dir=root)
    procs, extra = [], ""
    if archive != "none":
        proc, extra = start_archive(os.path.join(directory, "archive"))
        procs.append(proc)
        extra += f"remote_sync = {'true' if archive == 'sync' else 'false'}\n"
    procs.append(start_node(os.path.join(directory, "primary"), policy=policy, extra=extra))
    try:
        if spare:
            procs.append(
                start_node(
                    os.path.join(directory, "spare"), SPARE_ADDRESS, follow=f"{ADDRESS}:7070"
                )
            )
            wait_in_sync()
        add_user(os.path.join(directory, "primary"))
        t0 = time.monotonic()
        wall = generate(kind, size, messages, sessions, reuse)
        http = f"{ADDRESS}:8080"
        while scrape(http).get('mailcluster_deliveries_total{shard="0"}', 0) < messages:
            if time.monotonic() - t0 > wall + 300:
                raise SystemExit("deliveries did not finish")
            time.sleep(0.05)
        delivered_wall = time.monotonic() - t0
        m = scrape(http)
        accepted = m["mailcluster_smtp_messages_accepted_total"]
        degraded = m.get('mailcluster_replication_degraded_commits_total{shard="0"}', 0)
        if (
            spare and policy == "sync" and degraded > 1
        ):  # the user add may come before the first ack
            raise SystemExit(
                f"{degraded:.0f} commits did not wait for the spare: not a sync measurement"
            )
        if archive != "none":  # until the archive holds everything
            while (
                m.get('mailcluster_archive_lag_bytes{shard="0"}', 1) > 0
                and time.monotonic() - t0 < wall + 300
            ):
                time.sleep(0.05)
                m = scrape(http)
        return {
            "accepted_per_s": messages / wall,
            "delivered_per_s": messages / delivered_wall,
            "commit_p50_ms": 1000 * quantile(m, "mailcluster_commit_seconds", 0.50),
            "commit_p99_ms": 1000 * quantile(m, "mailcluster_commit_seconds", 0.99),
            "fsyncs_per_msg": m['mailcluster_journal_fsync_batch_records_count{shard="0"}']
            / accepted,
        }
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="100,2048,102400")
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--reuse", action="store_true", help="keep connections open (smtp-source -d)")
    p.add_argument("--generator", choices=["auto", "smtp-source", "loadgen"], default="auto")
    p.add_argument("--data-root", default=tempfile.gettempdir())
    p.add_argument(
        "--spare",
        action="store_true",
        help="run a hot spare; with policy sync every 250 waits for it",
    )
    p.add_argument("--policy", choices=["sync", "async", "local"], default="sync")
    p.add_argument(
        "--archive",
        choices=["none", "async", "sync"],
        default="none",
        help="ship to a remote-site archive (mTLS); sync: remote_sync, every 250 waits for it",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    kind = args.generator
    if kind == "auto":
        kind = "smtp-source" if shutil.which("smtp-source") else "loadgen"
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [
            one_run(
                kind,
                size,
                args.messages,
                args.sessions,
                args.reuse,
                args.data_root,
                args.spare,
                args.policy,
                args.archive,
            )
            for _ in range(args.runs)
        ]
        results[size] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[size]["runs"] = [round(r["accepted_per_s"]) for r in runs]
        if not args.json:
            r = results[size]
            print(
                f"size {size:>6} B: accepted {r['accepted_per_s']:7.0f} msg/s  delivered "
                f"{r['delivered_per_s']:7.0f} msg/s  commit p50 {r['commit_p50_ms']:6.2f} ms  "
                f"p99 {r['commit_p99_ms']:6.2f} ms  fsyncs/msg {r['fsyncs_per_msg']:.3f}  "
                f"(runs: {r['runs']}, {kind}, -s {args.sessions} -m {args.messages}"
                f"{' -d' if args.reuse else ''}, {'spare, ' if args.spare else ''}policy {args.policy}"
                f"{', archive ' + args.archive if args.archive != 'none' else ''})",
                flush=True,
            )
    if args.json:
        print(json.dumps({"generator": kind, "results": results}, indent=2))


if __name__ == "__main__":
    main()

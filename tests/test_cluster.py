"""The cluster against a real 3-server ZooKeeper ensemble: automatic failover,
coordinator takeover, a ZooKeeper server lost."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import time

from harness import DOMAIN, ROOT
from harness.cluster import SESSION
from harness.load import accepted_numbers, start_load, stored_load_numbers
from harness.mailctl import mailctl
from harness.wait import wait_for
from kazoo.client import KazooClient

from mailnode.users import shard_of

ALICE = f"alice@{DOMAIN}"


def accepts(node) -> bool:
    try:
        with smtplib.SMTP(*node.smtp, timeout=2) as s:
            s.sendmail("probe@remote.test", [ALICE], b"Subject: probe\r\n\r\nprobe\r\n")
        return True
    except (smtplib.SMTPException, OSError):
        return False


def test_kill9_primary_under_load_fails_over_without_loss(cluster, tmp_path):
    cluster.start()
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.add_user(ALICE)
    proc, log = start_load(primary, tmp_path, ALICE, 0, 1500, "clu")
    wait_for(lambda: len(accepted_numbers(log)) >= 300, 120, what="300 acked")
    primary.kill9()
    killed = time.monotonic()
    others = [n for n in cluster.nodes if n is not primary]
    # Any node routes to the shard's primary (and holds while there is none): the first
    # 250 after the kill is the first commit of the new primary.
    wait_for(
        lambda: next((n for n in others if accepts(n)), None),
        30,
        interval=0.02,
        what="a new primary committing",
    )
    failover = time.monotonic() - killed
    new = cluster.primary_of(shard)
    proc.communicate(timeout=180)
    print(
        f"\nfailover: kill -9 -> first 250 (new primary {new.name}): {failover:.2f}s "
        f"(session timeout {SESSION}s)"
    )
    assert failover < SESSION + 1.0 + 0.5  # the target, plus what probing adds
    acked = set(accepted_numbers(log))
    numbers = stored_load_numbers(new, ALICE, "clu", others=True)  # besides the probes
    assert len(numbers) == len(set(numbers))
    assert not acked - set(numbers), f"lost {len(acked - set(numbers))} acknowledged messages"
    history = cluster.mailctl("history")
    assert f"promoted {new.name} for shard {shard}: {primary.name}'s session expired" in history
    # The killed node comes back as a spare of the new primary.
    primary.start()
    wait_for(lambda: cluster.spare_in_sync(primary, shard), 40, what="old primary back as spare")


def test_leading_coordinator_killed_the_other_takes_over(cluster):
    cluster.start()
    zk = KazooClient(hosts=cluster.ensemble.connect, timeout=5)
    zk.start(10)
    try:
        leader = zk.Election(f"{cluster.root}/election").contenders()[0]
    finally:
        zk.stop()
        zk.close()
    idx = int(leader.removeprefix("coord"))
    cluster.coordinators[idx].send_signal(signal.SIGKILL)
    cluster.coordinators[idx].wait(10)
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.kill9()
    others = [n for n in cluster.nodes if n is not primary]
    wait_for(
        lambda: any(
            r["role"] == "primary" and r["alive"] and r["node"] != primary.name
            for r in cluster.status()
            if r["shard"] == shard
        ),
        30,
        what="failover by the other",
    )
    history = json.loads(cluster.mailctl("history", "--json"))
    failovers = [h for h in history if "session expired" in h["decision"]]
    assert failovers and failovers[-1]["coordinator"] == f"coord{1 - idx}"
    assert others


def test_losing_one_zookeeper_server_disrupts_nothing(cluster, tmp_path):
    cluster.start()
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.add_user(ALICE)
    proc, log = start_load(primary, tmp_path, ALICE, 0, 800, "zk")
    wait_for(lambda: len(accepted_numbers(log)) >= 200, 60, what="200 acked")
    victim = cluster.ensemble.servers[0]
    victim.stop(signal.SIGKILL)
    try:
        out, _ = proc.communicate(timeout=180)
        result = json.loads(out)
        assert result["accepted"] == 800 and result["tempfail"] == 0 and result["errors"] == 0, (
            result
        )
        assert cluster.primary_of(shard) is primary  # no failover happened
    finally:
        victim.start(cluster.ensemble.servers, cluster.ensemble.tick_ms)
        wait_for(victim.ok, 30, what="the ZooKeeper server back")


def test_pause_prevents_failover(cluster):
    cluster.start()
    cluster.mailctl("pause")
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.kill9()
    deadline = time.monotonic() + SESSION + 2.5
    while time.monotonic() < deadline:  # bounded observation: nothing may change
        rows = [r for r in cluster.status() if r["shard"] == shard]
        assert [r["node"] for r in rows if r["role"] == "primary"] == [primary.name]
    cluster.mailctl("resume")
    wait_for(
        lambda: any(
            r["role"] == "primary" and r["alive"] for r in cluster.status() if r["shard"] == shard
        ),
        30,
        what="failover after resume",
    )
    assert (
        "failover is paused"
        in (cluster.tmp / "coord0.log").read_text() + (cluster.tmp / "coord1.log").read_text()
    )


def test_sigstopped_primary_past_its_session_is_fenced_and_rejoins(cluster, tmp_path):
    cluster.start()
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.add_user(ALICE)
    proc, log = start_load(primary, tmp_path, ALICE, 0, 600, "stop")
    wait_for(lambda: len(accepted_numbers(log)) >= 150, 60, what="150 acked")
    primary.signal(signal.SIGSTOP)
    try:
        others = [n for n in cluster.nodes if n is not primary]
        wait_for(
            lambda: next((n for n in others if accepts(n)), None),
            30,
            interval=0.05,
            what="a new primary while the old one is stopped",
        )
        new = cluster.primary_of(shard)
        assert new is not primary
    finally:
        primary.signal(signal.SIGCONT)
    proc.communicate(timeout=180)
    # Woken up, the old primary finds its session gone: it fences itself and follows.
    wait_for(lambda: cluster.spare_in_sync(primary, shard), 40, what="old primary back as spare")
    acked = set(accepted_numbers(log))
    numbers = stored_load_numbers(new, ALICE, "stop", others=True)
    assert len(numbers) == len(set(numbers))
    assert not acked - set(numbers), f"lost {len(acked - set(numbers))} acknowledged messages"
    assert (
        cluster.primary_of(shard) is new and http_status(primary, f"/primary?shard={shard}") == 503
    )


def http_status(node, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{node.http}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_hanging_hooks_never_stall_failover_and_health_checks_follow_roles(cluster, tmp_path):
    record = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(
        f'#!/bin/sh\necho "$MAILCLUSTER_NODE $MAILCLUSTER_SHARD $MAILCLUSTER_ROLE $MAILCLUSTER_EPOCH" '
        f">> {record}\nsleep 30\n"
    )
    hook.chmod(0o755)
    cluster.start(**{"hooks.on_role_change": str(hook), "hooks.timeout": 1.0})
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    spare = next(
        cluster.node(r["node"])
        for r in cluster.status()
        if r["shard"] == shard and r["role"] == "spare"
    )
    assert http_status(primary, f"/primary?shard={shard}") == 200
    assert http_status(spare, f"/primary?shard={shard}") == 503
    assert http_status(spare, f"/spare?shard={shard}") == 200
    assert http_status(primary, "/ready") == 200
    primary.add_user(ALICE)
    primary.kill9()
    killed = time.monotonic()
    wait_for(lambda: accepts(spare), 30, interval=0.02, what="the spare promoted")
    assert time.monotonic() - killed < SESSION + 1.5  # hooks hang for 30 s; failover does not wait
    assert http_status(spare, f"/primary?shard={shard}") == 200
    wait_for(
        lambda: f"{spare.name} {shard} primary 2" in record.read_text(), 10, what="the hook ran"
    )
    wait_for(
        lambda: (
            "mailcluster_role_hook_failures_total 1.0" in spare.metrics()
            or "mailcluster_role_hook_failures_total 2.0" in spare.metrics()
        ),
        10,
        what="hung hook counted",
    )
    assert "killed after 1s" in spare.read_log()


def test_switchover_under_load_loses_nothing(cluster, tmp_path):
    cluster.start()
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    spare = next(
        cluster.node(r["node"])
        for r in cluster.status()
        if r["shard"] == shard and r["role"] == "spare"
    )
    primary.add_user(ALICE)
    proc, log = start_load(primary, tmp_path, ALICE, 0, 1000, "sw")
    wait_for(lambda: len(accepted_numbers(log)) >= 200, 60, what="200 acked")
    t0 = time.monotonic()
    r = subprocess.run(
        [
            os.path.join(ROOT, "failover-scripts", "switchover"),
            "--zk",
            cluster.ensemble.connect,
            "--root",
            cluster.root,
            "--shard",
            str(shard),
            "--to",
            spare.name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # the on-call wrapper
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    out = r.stdout
    proc.communicate(timeout=180)
    assert (
        f"draining {primary.name}" in out
        and f"switched shard {shard} over from {primary.name} to {spare.name}" in out
    )
    print(f"\nswitchover took {took:.2f}s:\n{out}")
    assert took < 10
    acked = set(accepted_numbers(log))
    numbers = stored_load_numbers(spare, ALICE, "sw")
    assert len(numbers) == len(set(numbers))
    assert not acked - set(numbers), f"lost {len(acked - set(numbers))} acknowledged messages"
    assert (
        cluster.primary_of(shard) is spare
        and http_status(primary, f"/primary?shard={shard}") == 503
    )
    wait_for(lambda: cluster.spare_in_sync(primary, shard), 30, what="old primary as spare")


def test_forced_failover_says_what_it_may_lose(cluster):
    cluster.start()
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    idle = next(
        n
        for n in cluster.nodes
        if n.name not in {r["node"] for r in cluster.status() if r["shard"] == shard}
    )
    r = mailctl(
        "--zk",
        cluster.ensemble.connect,
        "--root",
        cluster.root,
        "failover",
        "--shard",
        str(shard),
        "--to",
        idle.name,
        check=False,
        timeout=60,
    )
    assert r.returncode == 2 and "NOT in the in-sync set" in r.stdout and "--force" in r.stdout
    assert cluster.primary_of(shard) is primary

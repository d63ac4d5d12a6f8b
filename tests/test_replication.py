"""Hot spares over real gRPC between real node processes: sync commit, promotion,
fencing, divergence and salvage, bootstrap from a snapshot, commit policies."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import time

import pytest
from harness import DOMAIN
from harness.load import SUBJECT, accepted_numbers, start_load, stored_load_numbers
from harness.mail import RawSMTP, body_of, pop3_messages
from harness.wait import wait_for

from mailnode.users import shard_of

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


def status(node) -> list[dict]:
    return json.loads(node.mailctl("status", "--json").stdout)["shards"]


def spares_in_sync(primary, spare_name: str) -> bool:
    rows = status(primary)
    return all(
        r["role"] == "primary"
        and any(p["name"] == spare_name and p["in_sync"] for p in r["spares"])
        for r in rows
    )


def send(node, rcpt: str, subjects: list[str]) -> None:
    with smtplib.SMTP(*node.smtp, timeout=30) as s:
        for subject in subjects:
            s.sendmail(
                "x@remote.test", [rcpt], f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode()
            )


def subjects(node, rcpt: str) -> list[str]:
    return sorted(
        re.search(rb"Subject: (\S+)", m).group(1).decode() for m in pop3_messages(node.pop3, rcpt)
    )


def promote_all(node) -> None:
    for shard in (0, 1):
        out = node.mailctl("shard", "promote", "--shard", str(shard)).stdout
        assert "promoted" in out and "epoch" in out


@pytest.fixture
def pair(make_node):
    a = make_node()
    a.start()
    a.add_user(ALICE)
    a.add_user(BOB)
    b = make_node(**{"replication.follow": a.grpc})
    b.start()
    wait_for(lambda: spares_in_sync(a, b.name), 20, what="the spare in sync")
    return a, b


def test_spare_has_every_acknowledged_message_after_kill9(pair, tmp_path):
    a, b = pair
    assert {r["role"] for r in status(b)} == {"spare"}
    tag = "rep"
    loads = [
        start_load(a, tmp_path, ALICE, 0, 1200, tag),
        start_load(a, tmp_path, BOB, 100000, 1200, tag),
    ]
    wait_for(
        lambda: sum(len(accepted_numbers(log)) for _, log in loads) >= 600, 120, what="600 acked"
    )
    a.kill9()
    t0 = time.monotonic()
    promote_all(b)
    promoted_in = time.monotonic() - t0
    for proc, _ in loads:
        proc.communicate(timeout=180)
    for (_, log), rcpt in zip(loads, (ALICE, BOB), strict=False):
        acked = set(accepted_numbers(log))
        numbers = stored_load_numbers(b, rcpt, tag)
        assert len(numbers) == len(set(numbers)), "a message is on the spare twice"
        missing = acked - set(numbers)
        assert not missing, (
            f"{len(missing)} acknowledged messages not on the spare: {sorted(missing)[:10]}"
        )
        assert len(set(numbers) - acked) <= 10
    # The promoted spare serves at once, at a new epoch.
    send(b, ALICE, ["after-failover"])
    assert "after-failover" in subjects(b, ALICE)
    assert {(r["role"], r["epoch"]) for r in status(b)} == {("primary", 2)}
    assert promoted_in < 10


def test_sigstopped_primary_is_fenced_and_rejoins_as_spare(pair):
    a, b = pair
    send(a, ALICE, [f"before{i}" for i in range(5)])
    a.signal(signal.SIGSTOP)
    try:
        promote_all(b)
        send(b, ALICE, [f"during{i}" for i in range(3)])
    finally:
        a.signal(signal.SIGCONT)
    # The new primary fences the old one as soon as it runs again; it then follows.
    wait_for(
        lambda: all(s["role"] == "spare" and s["epoch"] == 2 for s in a.shards().values()),
        30,
        what="the old primary fenced",
    )
    with RawSMTP(a.smtp) as c:
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<x@remote.test>")
        code, text = c.cmd(f"RCPT TO:<{ALICE}>")
        assert (code, text[:5]) == (451, "4.3.2")  # it cannot commit under the old epoch
    wait_for(lambda: spares_in_sync(b, a.name), 30, what="the old primary back in sync as a spare")
    want = sorted([f"before{i}" for i in range(5)] + [f"during{i}" for i in range(3)])
    assert subjects(b, ALICE) == want
    wait_for(lambda: subjects(a, ALICE) == want, 20, what="the old primary's store to match")
    assert "fenced by" in a.read_log()


def test_diverged_primary_salvages_what_it_accepted_alone(pair):
    a, b = pair
    send(a, ALICE, [f"common{i}" for i in range(5)])
    wait_for(lambda: subjects(b, ALICE) == [f"common{i}" for i in range(5)], 20, what="replication")
    # Split brain by hand: the spare stops following, the old primary goes on alone
    # (degraded: no spare in sync), then the spare is promoted and takes mail too.
    for shard in (0, 1):
        b.mailctl("shard", "demote", "--shard", str(shard))
    send(a, ALICE, [f"alone{i}" for i in range(7)])
    promote_all(b)
    send(b, ALICE, [f"new{i}" for i in range(3)])
    # The old primary rejoins: it finds where its journal diverged (epoch 1 ended
    # earlier on the new primary), re-submits its 7 messages, and cuts back.
    for shard in (0, 1):
        out = a.mailctl("shard", "demote", "--shard", str(shard), "--to", b.grpc).stdout
        assert "spare" in out
    want = sorted(
        [f"common{i}" for i in range(5)]
        + [f"alone{i}" for i in range(7)]
        + [f"new{i}" for i in range(3)]
    )
    wait_for(lambda: subjects(b, ALICE) == want, 30, what="salvaged messages on the new primary")
    wait_for(lambda: subjects(a, ALICE) == want, 30, what="the old primary's store rebuilt")
    shard = shard_of(ALICE, 2)
    assert f'mailcluster_replication_salvaged_messages_total{{shard="{shard}"}} 7.0' in a.metrics()
    assert re.search(
        r"diverged .* re-submitted 7 acknowledged records \(7 messages, 0 take-backs\)",
        a.read_log(),
    )
    wait_for(lambda: spares_in_sync(b, a.name), 30, what="old primary in sync")


def test_new_spare_bootstraps_from_a_snapshot_during_load(make_node, tmp_path):
    a = make_node()
    a.start()
    a.add_user(ALICE)
    send(a, ALICE, [f"old{i}-" + "x" * 10 for i in range(50)])
    proc, log = start_load(a, tmp_path, ALICE, 0, 1500, "boot")  # 1500 x 1.5 KB: > 1 MiB journal
    wait_for(lambda: len(accepted_numbers(log)) >= 800, 120, what="journal over 1 MiB")
    c = make_node(**{"replication.follow": a.grpc})
    c.start()
    proc.communicate(timeout=180)
    wait_for(lambda: spares_in_sync(a, c.name), 60, what="the new spare in sync")
    assert "installed snapshot" in c.read_log()
    acked = set(accepted_numbers(log))
    wait_for(
        lambda: len(pop3_messages(c.pop3, ALICE)) == len(pop3_messages(a.pop3, ALICE)),
        30,
        what="the spare's store to catch up",
    )
    on_spare = [body_of(m) for m in pop3_messages(c.pop3, ALICE)]
    numbers = {int(SUBJECT.search(m).group(1)) for m in on_spare if m.startswith(b"Subject: lg ")}
    assert acked <= numbers
    assert len(on_spare) == len(set(on_spare))
    c_rows = {r["shard"]: r for r in status(c)}
    a_rows = {r["shard"]: r for r in status(a)}
    assert all(c_rows[s]["committed_lsn"] == a_rows[s]["committed_lsn"] for s in a_rows)

    # A crash in the middle of an install (the store marked incomplete, half of it
    # swapped, the index not yet in place): the spare must not serve that store, nor
    # crash-loop on it; it empties the shard and bootstraps again.
    c.kill9()
    shard_dir = os.path.dirname(c.journal_dir(shard_of(ALICE, 2)))
    with open(os.path.join(shard_dir, "store.incomplete"), "w") as f:
        f.write("snapshot install (test)")
    os.unlink(os.path.join(shard_dir, "store.db"))
    shutil.rmtree(os.path.join(shard_dir, "maildir"))
    c.start()
    wait_for(lambda: spares_in_sync(a, c.name), 60, what="the spare in sync again")
    assert "left half replaced" in c.read_log() and c.read_log().count("installed snapshot") == 2
    wait_for(
        lambda: len(pop3_messages(c.pop3, ALICE)) == len(pop3_messages(a.pop3, ALICE)),
        30,
        what="the spare's store to catch up again",
    )
    assert sorted(body_of(m) for m in pop3_messages(c.pop3, ALICE)) == sorted(on_spare)


@pytest.mark.parametrize("policy,strict", [("sync", True), ("sync", False), ("async", False)])
def test_commit_policy_when_the_spare_stops(make_node, policy, strict):
    a = make_node(
        **{
            "replication.policy": policy,
            "replication.strict": strict,
            "replication.sync_timeout": 0.5,
        }
    )
    a.start()
    b = make_node(**{"replication.follow": a.grpc})
    b.start()
    wait_for(lambda: spares_in_sync(a, b.name), 20, what="spare in sync")
    a.add_user(ALICE)  # under strict, only possible with a spare in sync
    b.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with RawSMTP(a.smtp) as c:
            c.cmd("EHLO x.test")
            c.cmd("MAIL FROM:<x@remote.test>")
            c.cmd(f"RCPT TO:<{ALICE}>")
            c.cmd("DATA")
            code, text = c.cmd("Subject: during-stop\r\n\r\nx\r\n.")
        waited = time.monotonic() - t0
        if policy == "async":
            assert code == 250 and waited < 0.5  # never waits for the spare
        elif strict:
            assert waited >= 0.5
            assert (code, text[:5]) == (451, "4.3.0")
        else:
            assert code == 250 and waited >= 0.5
            row = next(r for r in status(a) if r["shard"] == shard_of(ALICE, 2))
            assert row["degraded"] is True
            assert "mailcluster_replication_degraded_commits_total" in a.metrics()
    finally:
        b.signal(signal.SIGCONT)
    wait_for(lambda: spares_in_sync(a, b.name), 20, what="spare back in sync")
    send(a, ALICE, ["after"])
    want = ["after"] if strict else ["after", "during-stop"]
    assert subjects(a, ALICE) == want
    wait_for(lambda: subjects(b, ALICE) == want, 20, what="spare caught up")


def test_snapshot_stream_resumes_and_demands_the_cluster_secret(make_node):
    import grpc

    from mailnode.proto import replication_pb2 as pb
    from mailnode.proto import replication_pb2_grpc

    a = make_node()
    a.start()
    a.add_user(ALICE)
    send(a, ALICE, [f"m{i}" for i in range(30)])
    shard = shard_of(ALICE, 2)
    secret = (("x-mailcluster-cluster", "test-cluster-secret-0123456789"),)
    with grpc.insecure_channel(a.grpc) as channel:
        stub = replication_pb2_grpc.ReplicationStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Snapshot(pb.SnapshotRequest(shard=shard, follower="t"), timeout=10))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

        full = list(
            stub.Snapshot(
                pb.SnapshotRequest(shard=shard, follower="t"), metadata=secret, timeout=30
            )
        )
        files = [c.path for c in full if c.end_of_file]
        assert full[-1].end_of_snapshot and "store.db" in files and len(files) >= 31
        # A stream broken after ten files resumes after the last whole one.
        stream = stub.Snapshot(
            pb.SnapshotRequest(shard=shard, follower="t"), metadata=secret, timeout=30
        )
        got = []
        for chunk in stream:
            got.append(chunk)
            if sum(c.end_of_file for c in got) == 10:
                break
        stream.cancel()
        first = [c.path for c in got if c.end_of_file]
        rest = list(
            stub.Snapshot(
                pb.SnapshotRequest(
                    shard=shard,
                    follower="t",
                    snapshot_id=got[0].snapshot_id,
                    resume_after=first[-1],
                ),
                metadata=secret,
                timeout=30,
            )
        )
        assert first + [c.path for c in rest if c.end_of_file] == files
        assert rest[-1].end_of_snapshot and rest[-1].lsn == got[0].lsn
        with pytest.raises(grpc.RpcError) as e:
            list(
                stub.Snapshot(
                    pb.SnapshotRequest(shard=shard, snapshot_id="0" * 32),
                    metadata=secret,
                    timeout=10,
                )
            )
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

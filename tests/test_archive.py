"""The remote site: journal shipping over mTLS gRPC, the archive's refusals, online
backup, restore after a total loss, point-in-time recovery, failover mid-shipping."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from harness import DOMAIN, PASSWORD, ROOT
from harness.archive import restored_node, shipped_all
from harness.load import accepted_numbers, start_load, stored_load_numbers
from harness.wait import wait_for

from mailnode.journal.format import frame, iter_frames, segment_name
from mailnode.proto import archive_pb2 as pb
from mailnode.proto import archive_pb2_grpc
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.tls import make_ca
from mailnode.users import shard_of

ALICE = f"alice@{DOMAIN}"


def test_ship_under_load_archive_killed_then_total_loss_restored(make_node, archive, tmp_path):
    node = make_node(
        **archive.node_settings(
            **{
                "archive.remote_sync": True,
                "archive.timeout": 2.0,
                "journal.segment_size": 128 * 1024,
            }
        )
    )
    node.start()
    node.add_user(ALICE)
    shard = shard_of(ALICE, 2)
    proc, log = start_load(node, tmp_path, ALICE, 0, 1200, "arc")
    wait_for(lambda: len(accepted_numbers(log)) >= 300, 60, what="300 messages accepted")
    archive.kill9()  # mid-stream: commits wait (remote_sync), then get 451 and are retried
    archive.start()
    proc.communicate(timeout=180)
    accepted = accepted_numbers(log)
    assert len(accepted) >= 1000
    wait_for(
        lambda: shipped_all(archive, node, shard), 30, what="the archive to hold the whole journal"
    )
    verify = node.mailctl("archive", "verify", "--json")
    assert all(r["result"] == "ok" for r in json.loads(verify.stdout))
    # Archived segments the store has checkpointed are gone from the node (no spare here).
    text = node.metrics()
    removed = re.search(
        rf'mailcluster_journal_removed_segments_total{{shard="{shard}"}} (\S+)', text
    )
    assert removed and float(removed.group(1)) >= 1
    assert segment_name(0) not in os.listdir(node.journal_dir(shard))
    assert f'mailcluster_archive_lag_bytes{{shard="{shard}"}}' in text

    # Total loss: the node and all its data are gone. A new node is rebuilt from the archive.
    node.kill9()
    shutil.rmtree(node.data_dir)
    new = restored_node(make_node, archive)
    stored = stored_load_numbers(new, ALICE, "arc")
    assert sorted(stored) == sorted(set(stored)), "a message is stored twice"
    missing = set(accepted) - set(stored)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    assert new.mailctl("user", "list", "--json").stdout.count(ALICE) == 1


def archived_pair(make_node, archive, **settings):
    """A shipping primary and its spare, small segments, alice added: (primary, spare, her shard)."""
    small = {"journal.segment_size": 64 * 1024, **settings}
    primary = make_node(**archive.node_settings(**small))
    primary.start()
    spare = make_node(**archive.node_settings(**{**small, "replication.follow": primary.grpc}))
    spare.start()
    primary.add_user(ALICE)
    return primary, spare, shard_of(ALICE, 2)


def test_a_spare_removes_segments_the_archive_holds(make_node, archive, tmp_path):
    primary, spare, shard = archived_pair(
        make_node, archive, **{"archive.spare_trim_interval": 0.5}
    )
    proc, log = start_load(primary, tmp_path, ALICE, 0, 300, "trim")
    proc.communicate(timeout=120)
    wait_for(lambda: shipped_all(archive, primary, shard), 30, what="shipping")
    wait_for(
        lambda: segment_name(0) not in os.listdir(spare.journal_dir(shard)),
        30,
        what="the spare to remove archived segments",
    )
    held = archive.end_lsn(primary, shard)
    first = min(
        int(name.split(".")[0])
        for name in os.listdir(spare.journal_dir(shard))
        if name.endswith(".seg")
    )
    assert 0 < first <= held  # nothing the archive lacks
    assert len(accepted_numbers(log)) == 300


def test_a_spare_away_too_long_no_longer_holds_the_primarys_journal(make_node, archive, tmp_path):
    """F13: a dead spare kept every segment on its primary forever. After
    ``absent_spare_wait`` the primary removes what the archive holds without it; the spare,
    back, finds its position gone, bootstraps from a snapshot, and holds every message."""
    primary, spare, shard = archived_pair(make_node, archive, **{"archive.absent_spare_wait": 3.0})
    proc, log1 = start_load(primary, tmp_path, ALICE, 0, 100, "away")
    proc.communicate(timeout=120)
    spare.kill9()
    held = max(fr.lsn + fr.size for fr in iter_frames(spare.journal_dir(shard)))  # where it stopped
    proc, log2 = start_load(primary, tmp_path, ALICE, 100, 300, "away")
    proc.communicate(timeout=120)
    wait_for(lambda: shipped_all(archive, primary, shard), 30, what="shipping")

    def first_lsn() -> int:
        return min(
            int(n.split(".")[0])
            for n in os.listdir(primary.journal_dir(shard))
            if n.endswith(".seg")
        )

    wait_for(
        lambda: first_lsn() > held, 30, what="the primary to remove segments the absent spare lacks"
    )
    spare.start()
    wait_for(
        lambda: (
            "snapshot" in spare.read_log() and len(stored_load_numbers(spare, ALICE, "away")) == 400
        ),
        90,
        interval=0.5,
        what="the spare back from a snapshot with every message",
    )
    accepted = accepted_numbers(log1) + accepted_numbers(log2)
    assert len(accepted) == 400
    assert sorted(stored_load_numbers(spare, ALICE, "away")) == sorted(accepted)

    def qids(node) -> set[str]:  # the queue-id index on disk (F11), as committed
        path = os.path.join(node.data_dir, "shards", str(shard), "store.db")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {r[0] for r in db.execute("SELECT qid FROM recent")}
        finally:
            db.close()

    # The snapshot carried the index: queue ids of messages the spare never replayed.
    wait_for(
        lambda: len(qids(primary)) >= 400 and qids(primary) <= qids(spare),
        30,
        what="the spare's queue-id index to hold the primary's",
    )


def test_point_in_time_restore_and_backup(make_node, archive, tmp_path):
    import smtplib

    node = make_node(**archive.node_settings())
    node.start()
    node.add_user(ALICE)
    shard = shard_of(ALICE, 2)

    def send(tag: str, n: int) -> None:
        with smtplib.SMTP(*node.smtp, timeout=30) as s:
            for i in range(n):
                s.sendmail(
                    "x@remote.test", [ALICE], f"Subject: {tag} {i}\r\n\r\n{tag}\r\n".encode()
                )

    send("before", 5)
    backup = tmp_path / "backup"
    r = node.mailctl("backup", "--shard", str(shard), str(backup), "--json")
    assert json.loads(r.stdout)["end_lsn"] > 0
    send("between", 3)
    wait_for(lambda: shipped_all(archive, node, shard), 20, what="shipping")
    cut = time.time()
    send("after", 4)
    wait_for(lambda: shipped_all(archive, node, shard), 20, what="shipping")

    def subjects(n) -> list[str]:
        from harness.mail import pop3_messages

        return sorted(
            m.split(b"Subject: ")[1].split(b" ")[0].decode() for m in pop3_messages(n.pop3, ALICE)
        )

    # Point in time: only what was written before the cut.
    pitr = restored_node(make_node, archive, "--until", f"{cut:.6f}")
    assert subjects(pitr) == ["before"] * 5 + ["between"] * 3
    # From the online backup plus the archive after it: everything, once.
    wrong = make_node(**archive.node_settings())
    wrong.write_config()
    r = wrong.mailctl("restore", "--base", str(backup), check=False)  # which shard is it of?
    assert r.returncode == 1 and "--shard" in r.stderr
    r = wrong.mailctl("restore", "--base", str(backup), "--shard", str(1 - shard), check=False)
    assert r.returncode == 1 and f"backup of shard {shard}" in r.stderr
    full = restored_node(make_node, archive, "--shard", str(shard), "--base", str(backup))
    assert subjects(full) == ["after"] * 4 + ["before"] * 5 + ["between"] * 3
    # The backup alone is a shard directory a node starts from.
    alone = make_node()
    os.makedirs(os.path.join(alone.data_dir, "shards"))
    shutil.copytree(backup, os.path.join(alone.data_dir, "shards", str(shard)))
    alone.start()
    assert subjects(alone) == ["before"] * 5


def test_base_backups_retention_and_restore_from_a_base(make_node, archive):
    import smtplib

    from harness.mail import pop3_messages

    node = make_node(**archive.node_settings(**{"archive.base_backup_interval": 0}))
    node.start()
    node.add_user(ALICE)
    shard = shard_of(ALICE, 2)
    filler = "x" * 70 + "\r\n"

    def send(tag: str, n: int = 30) -> None:
        with smtplib.SMTP(*node.smtp, timeout=30) as s:
            for i in range(n):
                s.sendmail(
                    "x@remote.test", [ALICE], f"Subject: {tag} {i}\r\n\r\n{filler * 30}".encode()
                )
        wait_for(lambda: shipped_all(archive, node, shard), 20, what="shipping")

    def status() -> dict:
        return next(
            r
            for r in json.loads(node.mailctl("archive", "status", "--json").stdout)
            if r["shard"] == shard
        )

    cuts = []
    for tag in ("one", "two", "three"):
        send(tag)
        r = json.loads(
            node.mailctl("backup", "--shard", str(shard), "--to-archive", "--json").stdout
        )
        assert r["lsn"] > 0 and r["files"] >= 30
        cuts.append(time.time())
    send("four")
    st = status()
    # keep_bases = 2: the oldest base backup and the journal before the oldest kept one are gone.
    assert [b["lsn"] for b in st["bases"]] == sorted(b["lsn"] for b in st["bases"]) and len(
        st["bases"]
    ) == 2
    assert 0 < st["first_lsn"] <= st["bases"][0]["lsn"]
    assert all(
        r["result"] == "ok" for r in json.loads(node.mailctl("archive", "verify", "--json").stdout)
    )

    def tags(n) -> dict:
        out: dict[str, int] = {}
        for m in pop3_messages(n.pop3, ALICE):
            tag = m.split(b"Subject: ")[1].split(b" ")[0].decode()
            out[tag] = out.get(tag, 0) + 1
        return out

    full = restored_node(
        make_node, archive, "--shard", str(shard)
    )  # the newest base + the journal after it
    assert tags(full) == {"one": 30, "two": 30, "three": 30, "four": 30}
    # To a time before the newest base: the older kept base, then the journal up to that time.
    earlier = restored_node(
        make_node, archive, "--shard", str(shard), "--until", f"{cuts[1] + 0.000001:.6f}"
    )
    assert tags(earlier) == {"one": 30, "two": 30}
    r = make_node(**archive.node_settings())
    r.write_config()
    too_early = r.mailctl(
        "restore", "--shard", str(shard), "--until", f"{cuts[0]:.6f}", check=False
    )
    assert too_early.returncode == 1 and "archive starts at lsn" in too_early.stderr


def test_archive_refuses_stale_epochs_rewrites_gaps_and_strangers(archive, certs):
    from mailnode.tls import channel_credentials

    def channel(who: str):
        creds = channel_credentials(certs["ca"][0], *certs[who])
        return grpc.secure_channel(
            archive.address, creds, options=[("grpc.ssl_target_name_override", "archive")]
        )

    def frames(epoch: int, start: int, n: int, text: str = "x") -> bytes:
        out, lsn = b"", start
        for i in range(n):
            r = JournalRecord(lsn=lsn, epoch=epoch, timestamp_ns=time.time_ns())
            r.user_deleted.address = f"{text}{i}@{DOMAIN}"
            f = frame(r.SerializeToString())
            out += f
            lsn += len(f)
        return out

    def ship(ch, *requests):
        return list(archive_pb2_grpc.ArchiveStub(ch).Ship(iter(requests), timeout=10))

    ch = channel("node")
    first = frames(2, 0, 3)
    replies = ship(
        ch,
        pb.ShipRequest(shard=7, epoch=2, node="a"),
        pb.ShipRequest(shard=7, epoch=2, node="a", start_lsn=0, data=first),
    )
    assert replies[0].end_lsn == 0 and replies[-1].end_lsn == len(first)
    # A resend of what was acknowledged, byte for byte: accepted, nothing changes.
    assert ship(ch, pb.ShipRequest(shard=7, epoch=2, node="a", start_lsn=0, data=first))[
        -1
    ].end_lsn == len(first)
    with pytest.raises(grpc.RpcError) as e:  # different bytes at an acknowledged lsn
        ship(ch, pb.ShipRequest(shard=7, epoch=3, node="b", start_lsn=0, data=frames(2, 0, 3, "y")))
    assert (
        e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "acknowledged" in e.value.details()
    )
    with pytest.raises(grpc.RpcError) as e:  # a fenced primary (epoch 2 < 3 seen)
        ship(
            ch,
            pb.ShipRequest(
                shard=7, epoch=2, node="a", start_lsn=len(first), data=frames(2, len(first), 1)
            ),
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "epoch" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # a gap
        ship(
            ch,
            pb.ShipRequest(
                shard=7,
                epoch=3,
                node="b",
                start_lsn=len(first) + 100,
                data=frames(3, len(first) + 100, 1),
            ),
        )
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.RpcError) as e:  # a bad checksum
        bad = bytearray(frames(3, len(first), 1))
        bad[-1] ^= 0xFF
        ship(ch, pb.ShipRequest(shard=7, epoch=3, node="b", start_lsn=len(first), data=bytes(bad)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A new epoch must begin with its EpochStarted where the archive ends; else the histories differ.
    with pytest.raises(grpc.RpcError) as e:
        ship(
            ch,
            pb.ShipRequest(
                shard=7, epoch=4, node="c", start_lsn=len(first), data=frames(4, len(first), 1)
            ),
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "histor" in e.value.details()
    start = JournalRecord(lsn=len(first), epoch=4, timestamp_ns=time.time_ns())
    start.epoch_started.shard = 7
    start.epoch_started.node = "c"
    begun = frame(start.SerializeToString())
    assert ship(ch, pb.ShipRequest(shard=7, epoch=4, node="c", start_lsn=len(first), data=begun))[
        -1
    ].end_lsn == len(first) + len(begun)
    ch.close()
    # Without a client certificate signed by the sites' CA there is no connection at all.
    other = make_ca(str(archive.dir / "other-pki"), ["stranger"])
    creds = channel_credentials(certs["ca"][0], *other["stranger"])
    stranger = grpc.secure_channel(
        archive.address, creds, options=[("grpc.ssl_target_name_override", "archive")]
    )
    with pytest.raises(grpc.RpcError) as e:
        archive_pb2_grpc.ArchiveStub(stranger).Status(pb.StatusRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    stranger.close()
    assert (
        'mailcluster_archive_refused_total{reason="rewrite"} 1.0'
        in urllib.request.urlopen(f"http://{archive.ip}:8181/metrics").read().decode()
    )


def test_failover_mid_shipping_leaves_no_gap(cluster, archive, tmp_path, make_node):
    cluster.start(**archive.node_settings(**{"journal.segment_size": 128 * 1024}))
    shard = shard_of(ALICE, 2)
    primary = cluster.primary_of(shard)
    primary.add_user(ALICE)
    front = next(n for n in cluster.nodes if n is not primary)
    proc, log = start_load(front, tmp_path, ALICE, 0, 1200, "fo")
    wait_for(lambda: len(accepted_numbers(log)) >= 400, 60, what="400 messages accepted")
    primary.kill9()
    proc.communicate(timeout=180)
    accepted = accepted_numbers(log)
    new = cluster.primary_of(shard)
    assert new is not primary
    wait_for(
        lambda: shipped_all(archive, new, shard), 30, what="the new primary to ship everything"
    )
    assert all(
        r["result"] == "ok" for r in json.loads(new.mailctl("archive", "verify", "--json").stdout)
    )
    assert "refused" not in (archive.dir / "archive.log").read_text()
    # The archive alone holds every acknowledged message, once.
    cluster.stop()
    for n in cluster.nodes:
        n.stop()
    restored = restored_node(make_node, archive, "--shard", str(shard))
    stored = stored_load_numbers(restored, ALICE, "fo")
    assert sorted(stored) == sorted(set(stored))
    assert not set(accepted) - set(stored)


def test_alert_rules_name_metrics_that_exist():
    import yaml

    with open(os.path.join(ROOT, "deploy", "prometheus-alerts.yml")) as f:
        doc = yaml.safe_load(f)
    from pathlib import Path

    code = "".join(
        (Path(ROOT) / p).read_text() for p in ("mailnode/metrics.py", "archive/server.py")
    )
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        for name in re.findall(r"mailcluster_[a-z_]+", rule["expr"]):
            base = re.sub(r"_total$", "", name)
            assert f'"{base}' in code or f'"{name}"' in code, f"{rule['alert']}: no metric {name}"


def test_example_configs_load_and_bad_archive_config_is_named(tmp_path):

    from archive import config as archive_config
    from mailnode import config

    node = config.load(os.path.join(ROOT, "deploy", "examples", "node.toml"))
    assert node.archive.address and node.submission.listen and node.delivery.transport
    assert (
        archive_config.load(os.path.join(ROOT, "deploy", "examples", "archive.toml")).keep_bases
        == 2
    )
    bad = tmp_path / "archive.toml"
    bad.write_text('[archive]\nlisten = "nowhere"\n')
    r = subprocess.run(
        [sys.executable, "-m", "mailnode.cli", "archive", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and str(bad) in r.stderr and "[archive] listen" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_archive_that_lost_its_data_is_repaired_with_a_base_backup(make_node, archive, tmp_path):
    node = make_node(
        **archive.node_settings(
            **{"journal.segment_size": 64 * 1024, "archive.base_backup_interval": 0}
        )
    )
    node.start()
    node.add_user(ALICE)
    shard = shard_of(ALICE, 2)
    proc, log = start_load(node, tmp_path, ALICE, 0, 300, "gap")
    proc.communicate(timeout=120)
    wait_for(lambda: shipped_all(archive, node, shard), 30, what="shipping")
    wait_for(
        lambda: segment_name(0) not in os.listdir(node.journal_dir(shard)),
        20,
        what="archived segments removed from the node",
    )
    # The remote site loses everything; the node has no journal from lsn 0 any more.
    archive.kill9()
    shutil.rmtree(archive.dir / "data")
    archive.start()
    wait_for(lambda: shipped_all(archive, node, shard), 30, what="shipping again")

    def st():
        return next(
            r
            for r in json.loads(node.mailctl("archive", "status", "--json").stdout)
            if r["shard"] == shard
        )

    wait_for(lambda: st()["bases"], 30, what="a base backup repairing the archive")
    assert st()["first_lsn"] > 0
    assert f'mailcluster_archive_gaps_total{{shard="{shard}"}} 1.0' in node.metrics()
    accepted = accepted_numbers(log)
    node.kill9()
    shutil.rmtree(node.data_dir)
    restored = restored_node(make_node, archive, "--shard", str(shard))
    stored = stored_load_numbers(restored, ALICE, "gap")
    assert sorted(stored) == sorted(set(accepted))


def test_undelivered_messages_come_back_queued_after_a_restore(make_node, archive, tmp_path):
    import smtplib
    import ssl

    from harness.certs import make_certificate

    cert, key = make_certificate(tmp_path, "mx.example.test")
    settings = archive.node_settings(
        **{
            "tls.cert": cert,
            "tls.key": key,
            "submission.listen": "{ip}:5870",
            "delivery.transport": {"remote.test": "127.0.0.2:9"},
            "delivery.retry_initial": 60.0,
        }
    )
    node = make_node(**settings)
    node.start()
    node.add_user(ALICE)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(*node.submission, timeout=30) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, ["bob@remote.test"], b"Subject: pending\r\n\r\nstill to go\r\n")
    shard = shard_of(ALICE, 2)
    wait_for(
        lambda: json.loads(node.mailctl("queue", "list", "--json").stdout)[0]["attempts"] == 1,
        20,
        what="a deferred attempt",
    )
    wait_for(lambda: shipped_all(archive, node, shard), 20, what="shipping")
    node.kill9()
    shutil.rmtree(node.data_dir)
    new = make_node(**settings)
    new.write_config()
    new.mailctl("restore")
    new.start()
    [entry] = json.loads(new.mailctl("queue", "list", "--json").stdout)
    assert (
        entry["recipients"] == ["bob@remote.test"]
        and entry["sender"] == ALICE
        and entry["attempts"] == 1
    )

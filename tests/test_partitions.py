"""Network partitions under load against the real cluster (a 3-server ZooKeeper
ensemble, 3 nodes, 2 shards, 2 coordinators), cut with per-process iptables rules
(tests/harness/partition.py). A sender retries a refused message like an MTA: the same bytes,
a new transaction, through the next node. After the heal and once the shard has
settled, every mailbox copy is read over POP3 and counted per counter: lost (250,
then absent), twice (stored more than once; a 451 whose retry got 250 and was then
stored again counts here), after_451 (stored though only 4xx was seen). Copies whose
250 the client may have missed (the connection broke after the dot, RFC 1047) are
counted apart and allowed."""

from __future__ import annotations

import json
import signal
import time

import pytest
from harness import DOMAIN
from harness.archive import restored_node, shipped_all
from harness.mail import pop3_messages
from harness.partition import (
    Partitions,
    RetryingSender,
    log_since,
    log_size,
    stored_counters,
    tally,
)
from harness.wait import wait_for
from kazoo.client import KazooClient

from mailnode.users import shard_of

ALICE = f"alice@{DOMAIN}"
SHARD = shard_of(ALICE, 2)
HOLD = (
    8.0  # [frontend] hold_timeout: a held transaction ends in 451 well inside the sender's timeout
)


@pytest.fixture
def net(cluster):
    """Partitions, undone whatever the test did (requested after cluster, so torn down
    before the nodes stop)."""
    p = Partitions()
    plain = cluster.make_node
    cluster.make_node = lambda **extra: p.adopt(plain(**extra))  # every node in its own cgroup
    yield p
    p.remove()


# -- cluster state ---------------------------------------------------------------------


def rows(cluster) -> list[dict]:
    return [r for r in cluster.status() if r["shard"] == SHARD]


def primary_name(cluster) -> str | None:
    p = [r["node"] for r in rows(cluster) if r["role"] == "primary" and r["alive"]]
    return p[0] if p else None


def in_sync_spares(cluster) -> set[str]:
    return {
        r["node"] for r in rows(cluster) if r["role"] == "spare" and r["alive"] and r["in_sync"]
    }


def settled(cluster, spares: int) -> bool:
    return primary_name(cluster) is not None and len(in_sync_spares(cluster)) >= spares


def promotions(cluster) -> list[tuple[float, str]]:
    """(time, sentence) of every promotion of SHARD in the coordinators' history."""
    zk = KazooClient(hosts=cluster.ensemble.connect, timeout=5)
    zk.start(10)
    try:
        path = f"{cluster.root}/history"
        docs = [json.loads(zk.get(f"{path}/{c}")[0]) for c in sorted(zk.get_children(path))]
    finally:
        zk.stop()
        zk.close()
    return [
        (d["time"], d["sentence"])
        for d in docs
        if d["sentence"].startswith("promoted") and f"for shard {SHARD}:" in d["sentence"]
    ]


def wait_promotion(cluster, old, timeout: float = 40.0):
    name = wait_for(
        lambda: (n := primary_name(cluster)) not in (None, old.name) and n,
        timeout,
        interval=0.1,
        what=f"a promotion replacing {old.name}",
    )
    return cluster.node(name)


def zk_cut_dropped(net, node, ensemble) -> bool:
    """Evidence that a ZooKeeper cut cuts: its rules drop the node's ZooKeeper traffic."""
    d = net.dropped_packets()
    return sum(d.get((node.ip, s.host), 0) for s in ensemble.servers) > 0


def suspended(node, since: int) -> bool:
    """The node's agent noticed it lost ZooKeeper: a suspended connection, or no answer for
    a whole session timeout (kazoo alone may not notice a silent partition)."""
    log = log_since(node, since)
    return "ZooKeeper connection suspended" in log or "no answer from ZooKeeper" in log


# -- load and counting -------------------------------------------------------------------


def start(cluster, tag: str, *, spares: int = 1, settings: dict | None = None):
    if spares != 1:  # `mailctl init` sets spares_per_shard; Cluster.start's own init then leaves it
        cluster.mailctl(
            "init",
            "--shards",
            "2",
            "--domain",
            DOMAIN,
            "--failover-min-interval",
            "5",
            "--spares",
            str(spares),
        )
    cluster.start(**{"frontend.hold_timeout": HOLD, **(settings or {})})
    wait_for(
        lambda: settled(cluster, spares), 60, what=f"shard {SHARD} with {spares} spare(s) in sync"
    )
    primary = cluster.primary_of(SHARD)
    primary.add_user(ALICE)
    others = [n for n in cluster.nodes if n is not primary]
    # Workers start on the primary's own port and on the other nodes', and move on to the
    # next one after each refusal.
    sender = RetryingSender(
        [primary.smtp, others[0].smtp, primary.smtp, others[1].smtp], ALICE, tag
    )
    sender.start()
    wait_for(
        lambda: sender.acknowledged() >= 100, 60, what="100 messages acknowledged before the fault"
    )
    return primary, others, sender


def more_load(sender, n: int = 100, timeout: float = 60.0) -> None:
    base = sender.acknowledged()
    wait_for(lambda: sender.acknowledged() >= base + n, timeout, what=f"{n} more acknowledged")


def finish(
    cluster, sender, tag: str, tmp_path, *, spares: int = 1, rejoined=(), extra: dict | None = None
) -> dict:
    """Stop the load, wait until the shard has settled (every node in ``rejoined`` back
    as an in-sync spare: any salvage done), count, assert."""
    sender.stop()
    want = {n.name for n in rejoined}
    wait_for(
        lambda: settled(cluster, spares) and want <= in_sync_spares(cluster),
        90,
        interval=0.2,
        what=f"shard {SHARD} settled, {sorted(want)} in sync again",
    )
    primary = cluster.node(primary_name(cluster))
    result = tally(sender, stored_counters(pop3_messages(primary.pop3, ALICE), tag))
    result.update(extra or {})
    short = {k: (len(v) if isinstance(v, list) else v) for k, v in result.items()}
    (tmp_path / "counts.json").write_text(json.dumps({"short": short, "full": result}, indent=1))
    print(f"\n{tag}: {json.dumps(short)}")
    bad = {k: result[k][:20] for k in ("lost", "twice", "after_451", "given_up") if result[k]}
    assert not bad, f"{tag}: {json.dumps(short)}; first counters: {bad}"
    return result


def late_250s(cluster, sender, old, since: float, until: float) -> list[int]:
    """Counters that got 250 from ``old``'s SMTP port after the first promotion since
    ``since`` and before ``until`` (0.5 s allowed for a reply already on its way)."""
    after = [t for t, _ in promotions(cluster) if t > since]
    assert after, "no promotion during the cut"
    return sorted(
        n
        for n, t in sender.ok_at.items()
        if sender.ok_by[n] == old.smtp and after[0] + 0.5 < t < until
    )


# -- the scenarios ---------------------------------------------------------------------


def test_primary_cut_from_zookeeper_only(cluster, net, tmp_path):
    primary, _others, sender = start(cluster, "zkonly")
    mark = log_size(primary)
    net.cut_from_zookeeper(primary, cluster.ensemble)
    new = wait_promotion(cluster, primary)  # its session expired: the cut is one
    more_load(sender)
    assert zk_cut_dropped(net, primary, cluster.ensemble), net.dropped_packets()
    saw_suspended = suspended(primary, mark)
    net.heal()
    log = log_since(primary, mark)
    assert "self-fenced" in log or "fenced by" in log, log[-3000:]
    finish(
        cluster,
        sender,
        "zkonly",
        tmp_path,
        rejoined=[primary],
        extra={"new_primary": new.name, "suspended_during_cut": saw_suspended},
    )
    assert saw_suspended, f"{primary.name} never saw its ZooKeeper connection suspended while cut"


def test_primary_cut_from_zookeeper_and_peers_while_clients_reach_it(cluster, net, tmp_path):
    primary, others, sender = start(cluster, "isolated")
    mark, cut_at = log_size(primary), time.time()
    net.cut_from_zookeeper(primary, cluster.ensemble)
    for other in others:
        net.cut(primary, other)
    new = wait_promotion(cluster, primary)  # its session expired: the cut is one
    more_load(sender)
    # Its SMTP port is reached throughout: it must refuse (451) what it cannot replicate.
    wait_for(
        lambda: any(primary.smtp in v for v in sender.refused_by.values()),
        30,
        what=f"a 4xx from the isolated {primary.name}",
    )
    dropped = net.dropped_packets()
    assert zk_cut_dropped(net, primary, cluster.ensemble), dropped
    saw_suspended = suspended(primary, mark)
    healed_at = time.time()
    net.heal()
    late = late_250s(cluster, sender, primary, cut_at, healed_at)
    assert saw_suspended, f"{primary.name} never saw its ZooKeeper connection suspended while cut"
    assert not late, (
        f"{len(late)} messages got 250 from the isolated {primary.name} after the promotion"
    )
    finish(
        cluster,
        sender,
        "isolated",
        tmp_path,
        rejoined=[primary],
        extra={
            "new_primary": new.name,
            "late_250_from_old_primary": late,
            "rules_that_dropped": sum(1 for v in dropped.values() if v),
            "rules": len(dropped),
            "suspended_during_cut": saw_suspended,
        },
    )


def test_primary_and_one_spare_cut_from_zookeeper_and_the_other_spare(cluster, net, tmp_path):
    primary, others, sender = start(cluster, "minority", spares=2)
    b, c = others  # {primary, c} | {ZooKeeper, b}
    marks, cut_at = {n.name: log_size(n) for n in (primary, c)}, time.time()
    for node in (primary, c):
        net.cut_from_zookeeper(node, cluster.ensemble)
    net.cut(primary, b)
    net.cut(c, b)
    wait_for(lambda: primary_name(cluster) == b.name, 40, interval=0.1, what=f"{b.name} promoted")
    more_load(sender)
    dropped = net.dropped_packets()
    assert all(zk_cut_dropped(net, n, cluster.ensemble) for n in (primary, c)), dropped
    saw_suspended = {n.name: suspended(n, marks[n.name]) for n in (primary, c)}
    healed_at = time.time()
    net.heal()
    late = late_250s(cluster, sender, primary, cut_at, healed_at)
    assert all(saw_suspended.values()), f"never saw ZooKeeper suspended while cut: {saw_suspended}"
    assert not late, (
        f"{len(late)} messages got 250 from the cut-off {primary.name} after the promotion"
    )
    finish(
        cluster,
        sender,
        "minority",
        tmp_path,
        spares=2,
        rejoined=[primary, c],
        extra={
            "new_primary": b.name,
            "late_250_from_old_primary": late,
            "rules_that_dropped": sum(1 for v in dropped.values() if v),
            "rules": len(dropped),
            "suspended_during_cut": saw_suspended,
        },
    )


def test_flapping_link_between_primary_and_spare(cluster, net, tmp_path):
    primary, others, sender = start(cluster, "flap")
    spare = next(n for n in others if cluster.spare_in_sync(n, SHARD))
    # First check that a cut of this link is one: the spare leaves the in-sync set.
    net.cut(primary, spare)
    wait_for(
        lambda: spare.name not in in_sync_spares(cluster),
        20,
        what=f"{spare.name} out of sync while cut",
    )
    dropped = net.dropped_packets()
    assert any(dropped.values()), f"the cut dropped nothing: {dropped}"
    net.heal()
    wait_for(lambda: spare.name in in_sync_spares(cluster), 30, what=f"{spare.name} in sync again")
    for i in range(
        16
    ):  # bounded: 16 cycles of 200-500 ms cuts (the fault's schedule, not synchronisation)
        net.cut(primary, spare)
        time.sleep(0.2 + 0.3 * (i % 4) / 3)
        net.heal()
        time.sleep(0.2 + 0.3 * ((i + 2) % 4) / 3)
    more_load(sender, 50)
    # Then the primary dies at the end of the flapping: everything acknowledged so far
    # must be on the spare that ZooKeeper promotes (F9's window).
    net.cut(primary, spare)
    primary.kill9()
    net.heal()
    new = wait_promotion(cluster, primary)
    acked = set(sender.out.ok)
    on_new = set(stored_counters(pop3_messages(new.pop3, ALICE), "flap"))
    missing = sorted(acked - on_new)
    primary.start()
    finish(
        cluster,
        sender,
        "flap",
        tmp_path,
        rejoined=[primary],
        extra={"new_primary": new.name, "missing_on_promoted_before_rejoin": missing},
    )
    assert not missing, (
        f"acknowledged but not on the promoted {new.name} before the old primary rejoined: {missing[:20]}"
    )


def test_node_restarted_within_its_session_timeout_repeatedly(cluster, net, tmp_path):
    primary, _others, sender = start(cluster, "restart")
    mark = log_size(primary)
    for _ in range(3):
        primary.kill9()
        primary.start(wait=False)  # at once: its previous session is still alive
        wait_for(primary.health, 30, what=f"{primary.name} serving HTTP again")
        assert primary.proc.poll() is None, f"{primary.name} exited:\n{primary.read_log()[-3000:]}"
        more_load(sender, 40)
    log = log_since(primary, mark)
    assert "waiting for it to expire" in log, log[-3000:]
    # Now the node's disk is gone for a while: whatever it acknowledged must be on the
    # node ZooKeeper promotes (a 250 answered by the restarted node with no spare copy
    # would be missing there: F2).
    current = cluster.node(wait_for(lambda: primary_name(cluster), 40, what="a primary"))
    current.kill9()
    new = wait_promotion(cluster, current)
    acked = set(sender.out.ok)
    missing = sorted(acked - set(stored_counters(pop3_messages(new.pop3, ALICE), "restart")))
    current.start()
    finish(
        cluster,
        sender,
        "restart",
        tmp_path,
        rejoined=[current],
        extra={
            "killed_last": current.name,
            "new_primary": new.name,
            "missing_on_promoted": missing,
        },
    )
    assert not missing, f"acknowledged but not on the promoted {new.name}: {missing[:20]}"


def test_two_spares_one_far_behind_then_the_primary_dies(cluster, net, tmp_path):
    primary, others, sender = start(cluster, "behind", spares=2)
    _b, c = others
    c.signal(signal.SIGSTOP)  # far behind: out of the in-sync set, the load goes on
    try:
        wait_for(lambda: c.name not in in_sync_spares(cluster), 30, what=f"{c.name} out of sync")
        more_load(sender, 300)
    finally:
        c.signal(signal.SIGCONT)
    primary.kill9()  # while c is catching up
    new = wait_promotion(cluster, primary)
    acked = set(sender.out.ok)
    missing = sorted(acked - set(stored_counters(pop3_messages(new.pop3, ALICE), "behind")))
    primary.start()
    finish(
        cluster,
        sender,
        "behind",
        tmp_path,
        spares=2,
        rejoined=[primary],
        extra={"new_primary": new.name, "missing_on_promoted": missing},
    )
    assert not missing, f"{new.name} was promoted lacking acknowledged mail: {missing[:20]}"


def test_an_isolated_primary_ships_nothing_its_spare_lacks(
    cluster, net, archive, make_node, tmp_path
):
    """F10: cut off from ZooKeeper and its peers, the primary's local in-sync set empties;
    it must not ship its unacknowledged tail to the archive (which stays reachable), or the
    new primary's shipping fails ("ahead"/"diverged") and a restore brings back messages
    answered 451. After the heal the new primary ships on, and the archive alone restores
    every acknowledged message, once, and nothing only refused."""
    primary, others, sender = start(cluster, "arch", settings=archive.node_settings())
    net.cut_from_zookeeper(primary, cluster.ensemble)
    for other in others:
        net.cut(primary, other)
    new = wait_promotion(cluster, primary)
    more_load(sender)
    net.heal()
    finish(cluster, sender, "arch", tmp_path, rejoined=[primary], extra={"new_primary": new.name})
    wait_for(lambda: shipped_all(archive, new, SHARD), 30, what=f"{new.name} to ship everything")
    errors = [
        line
        for line in new.metrics().splitlines()
        if line.startswith("mailcluster_archive_shipping_errors_total{")
        and not line.endswith(" 0.0")
    ]
    assert not errors, errors
    assert "refused" not in (archive.dir / "archive.log").read_text()
    cluster.stop()
    for n in cluster.nodes:
        n.stop()
    restored = restored_node(make_node, archive, "--shard", str(SHARD))
    result = tally(sender, stored_counters(pop3_messages(restored.pop3, ALICE), "arch"))
    short = {k: (len(v) if isinstance(v, list) else v) for k, v in result.items()}
    print(f"\narch (restored from the archive): {json.dumps(short)}")
    bad = {k: result[k][:20] for k in ("lost", "twice", "after_451") if result[k]}
    assert not bad, f"restored: {json.dumps(short)}; first counters: {bad}"

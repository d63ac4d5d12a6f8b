"""The operator's forced failover (``mailctl failover``), decided on plain data."""

from coordinator.decide import forced_failover
from coordinator.model import Cluster, Member, ShardInfo


def cluster(members: dict[str, int], info: ShardInfo) -> Cluster:
    """members: alive node -> the lsn it last reported for shard 0."""
    return Cluster(
        {"shards": 1},
        {m: Member(m, f"{m}:7070", {"shards": {"0": {"lsn": lsn}}}) for m, lsn in members.items()},
        {0: info},
        False,
        None,
        -1,
    )


def shard(primary="a", spares=("b", "c"), in_sync=("b",), epoch=3) -> ShardInfo:
    switchover = {"draining": primary, "switchover_to": "b"}  # pending when failing over
    return ShardInfo(0, primary, tuple(spares), epoch, tuple(in_sync), 0.0, 7, switchover)


def test_the_new_primary_at_the_next_epoch_with_the_old_one_as_a_spare():
    info = shard()
    d = forced_failover(cluster({"a": 500, "b": 400, "c": 300}, info), 0, "c", now=1000.0)
    assert d.sentence == "forced failover of shard 0 to c at epoch 4 by operator"
    assert d.kind == "forced-failover" and d.shard == 0 and d.info is info
    assert d.changes == {
        "primary": "c",
        "spares": ["b", "a"],
        "epoch": 4,
        "in_sync": [],
        "last_failover": 1000.0,
        "draining": None,  # a pending switchover ends with it
        "switchover_to": None,
    }


def test_the_warning_counts_what_a_live_primary_has_beyond_the_target():
    d = forced_failover(cluster({"a": 500, "b": 400}, shard()), 0, "b", now=1.0)
    assert d.warning == (
        "b holds shard 0's journal up to lsn 400; the primary a last reported lsn 500: up to "
        "100 bytes of acknowledged mail may be lost. The old primary salvages what it accepted "
        "alone if it comes back."
    )


def test_the_warning_for_a_dead_primary_and_a_spare_out_of_sync():
    d = forced_failover(cluster({"c": 300}, shard()), 0, "c", now=1.0)
    assert d.warning == (
        "c holds shard 0's journal up to lsn 300; the primary a is gone, so what it had beyond "
        "that is unknown; c is NOT in the in-sync set. The old primary salvages what it "
        "accepted alone if it comes back."
    )
    assert d.changes["spares"] == ["b", "a"]


def test_a_shard_without_primary_gets_no_empty_spare():
    d = forced_failover(cluster({"b": 0}, shard(primary="", spares=("b",))), 0, "b", now=1.0)
    assert d.changes["primary"] == "b" and d.changes["spares"] == []


def test_refusals_write_nothing():
    alive = cluster({"a": 1, "b": 1}, shard())
    for to, shard_id, sentence in (
        ("z", 0, "z is not an alive node of the cluster"),
        ("a", 0, "a is already primary of shard 0"),
        ("b", 5, "no shard 5: the cluster has 1"),
    ):
        d = forced_failover(alive, shard_id, to, now=1.0)
        assert (d.sentence, d.changes) == (sentence, None)

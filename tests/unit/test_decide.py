"""The leading coordinator's decisions on plain snapshots (the logic alone)."""

from coordinator.decide import decide
from coordinator.model import Cluster, Member, ShardInfo

CONFIG = {"shards": 1, "spares_per_shard": 1, "failover_min_interval": 30.0}


def snapshot(members, info: ShardInfo, paused=False, lsns=None) -> Cluster:
    lsns = lsns or {}
    return Cluster(
        CONFIG,
        {m: Member(m, f"{m}:7070", {"shards": {"0": {"lsn": lsns.get(m, 0)}}}) for m in members},
        {0: info},
        paused,
        None,
        -1,
    )


def shard(primary="a", spares=("b",), in_sync=("b",), epoch=3, last_failover=0.0) -> ShardInfo:
    return ShardInfo(0, primary, tuple(spares), epoch, tuple(in_sync), last_failover, 7)


def test_expired_primary_is_replaced_by_the_in_sync_spare_with_most_journal():
    info = shard(spares=("b", "c"), in_sync=("b", "c"))
    [d] = decide(snapshot(["b", "c"], info, lsns={"b": 100, "c": 250}), now=1000.0)
    assert d.sentence == "promoted c for shard 0: a's session expired"
    assert d.changes["primary"] == "c" and d.changes["epoch"] == 4
    assert d.changes["spares"] == ["b", "a"]  # the old primary rejoins as a spare
    assert d.changes["in_sync"] == [] and d.kind == "failover"


def test_most_journal_outranks_prefer_which_only_breaks_ties():
    info = shard(spares=("b", "c"), in_sync=("b", "c"))
    cluster = snapshot(["b", "c"], info, lsns={"b": 100, "c": 250})
    cluster.members["b"].data["prefer"] = "spare"
    [d] = decide(cluster, now=1000.0)
    assert d.changes["primary"] == "c"  # b may lack what only c acknowledged (F4)
    cluster = snapshot(["b", "c"], info, lsns={"b": 250, "c": 250})
    cluster.members["b"].data["prefer"] = "spare"
    [d] = decide(cluster, now=1000.0)
    assert d.changes["primary"] == "b"


def test_out_of_sync_spare_is_never_promoted():
    [d] = decide(snapshot(["b"], shard(in_sync=())), now=1000.0)
    assert d.changes is None and "no in-sync spare is alive" in d.sentence


def test_pause_and_flap_damping_hold_failover():
    [d] = decide(snapshot(["b"], shard(), paused=True), now=1000.0)
    assert d.changes is None and "paused" in d.sentence
    [d] = decide(snapshot(["b"], shard(last_failover=990.0)), now=1000.0)
    assert d.changes is None and "flap damping" in d.sentence
    [d] = decide(snapshot(["b"], shard(last_failover=960.0)), now=1000.0)
    assert d.changes is not None


def test_missing_spare_is_replaced_by_an_idle_node_and_new_shards_get_primaries():
    [d] = decide(snapshot(["a", "c"], shard(in_sync=())), now=1.0)
    assert d.sentence == "assigned c as spare of shard 0: it had 0 live spare(s) of 1"
    assert d.changes == {"spares": ["b", "c"]}
    [d] = decide(snapshot(["a", "b"], shard(primary="", spares=(), in_sync=(), epoch=0)), now=1.0)
    assert d.changes["primary"] == "a" and d.changes["epoch"] == 1
    assert decide(snapshot(["a", "b"], shard()), now=1.0) == []  # all is well: nothing to do

"""The in-sync rule on its own (a fake shard): a spare never counts as in sync while it
lacks something that was acknowledged without it."""

from types import SimpleNamespace

from mailnode.replication.primary import ReplicationPrimary


def primary(committed: int) -> ReplicationPrimary:
    shard = SimpleNamespace(id=0, journal=SimpleNamespace(committed_lsn=committed))
    rp = ReplicationPrimary(shard, policy="sync", strict=False, sync_timeout=1.0, max_lag_bytes=1 << 30,
                            max_lag_seconds=5.0)
    rp.unreplicated_end = committed  # as Shard.start does: nothing known to be on a spare
    return rp


def test_a_spare_behind_what_the_journal_held_at_start_is_not_in_sync():
    rp = primary(10_000)
    spare = rp.connected("b", 0)
    assert not spare.in_sync and rp.lag(spare)[0] == 10_000
    rp.acknowledged(spare, 9_000)
    assert not spare.in_sync
    rp.acknowledged(spare, 10_000)
    assert spare.in_sync and rp.in_sync() == ["b"]


def test_recent_commits_do_not_hide_older_unacknowledged_ones():
    rp = primary(10_000)
    rp.shard.journal.committed_lsn = 12_000
    rp.committed(12_000)  # a commit made after start, seconds old at most
    spare = rp.connected("b", 5_000)
    assert not spare.in_sync  # it still lacks 5_000..10_000, acknowledged without a spare
    rp.acknowledged(spare, 11_000)
    assert spare.in_sync  # holds everything acknowledged without it; the rest it waits for

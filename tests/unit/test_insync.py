"""The in-sync rule on its own (a fake shard): a spare never counts as in sync while it
lacks something that was acknowledged without it."""

import asyncio
from types import SimpleNamespace

import pytest

from mailnode.errors import NotReplicated
from mailnode.replication.primary import ReplicationPrimary


def primary(committed: int) -> ReplicationPrimary:
    shard = SimpleNamespace(id=0, journal=SimpleNamespace(committed_lsn=committed))
    rp = ReplicationPrimary(
        shard,
        policy="sync",
        strict=False,
        sync_timeout=1.0,
        max_lag_bytes=1 << 30,
        max_lag_seconds=5.0,
    )
    rp.answered_end = committed  # as Shard.start does: nothing known to be on a spare
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


# -- several spares, ZooKeeper's published set (review findings F2, F4, F9) ----------------


def test_a_spare_away_longer_than_the_remembered_history_is_not_in_sync(monkeypatch):
    """F4's pruning case: C disconnects at 1000; 3000 batches a minute old and 1200 fresh
    ones later, all acknowledged by B, C comes back 42 MB behind: not in sync, however
    fresh the remembered history is; and a moment with no spare connected at all does not
    make the primary forget what a spare that comes back lacks."""
    from mailnode.replication import primary as module

    clock = [5000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    rp = primary(1000)
    b, c = rp.connected("b", 1000), rp.connected("c", 1000)
    assert b.in_sync and c.in_sync
    rp.disconnected(c)
    end = 1000
    for i in range(4200):
        if i == 3000:
            clock[0] += 60
        end += 10_000
        rp.shard.journal.committed_lsn = end
        rp.committed(end)
        rp.acknowledged(b, end)
    c = rp.connected("c", 1000)
    assert rp.lag(c) == (end - 1000, float("inf")) and not c.in_sync and rp.in_sync() == ["b"]
    # No spare connected while commits go on; B comes back a little behind: in sync.
    rp.disconnected(b)
    rp.disconnected(c)
    for _ in range(5000):
        end += 100
        rp.shard.journal.committed_lsn = end
        rp.committed(end)
    clock[0] += 1
    b = rp.connected("b", end - 300)
    assert rp.lag(b)[1] == 1.0


def _commit(rp, end: int):
    rp.shard.journal.committed_lsn = end
    rp.committed(end)
    return asyncio.ensure_future(rp.wait(end))


def test_a_commit_waits_for_every_in_sync_spare():
    async def run():
        rp = primary(100)
        b, c = rp.connected("b", 100), rp.connected("c", 100)
        fut = _commit(rp, 200)
        await asyncio.sleep(0.01)
        rp.acknowledged(b, 200)
        await asyncio.sleep(0.01)
        assert not fut.done()  # c has not got it yet: one ack is not enough
        rp.acknowledged(c, 200)
        await asyncio.wait_for(fut, 1)
        assert rp.answered_end == 200

    asyncio.run(run())


def test_a_spare_that_does_not_acknowledge_is_unpublished_before_the_answer():
    async def run():
        rp = primary(100)
        rp.sync_timeout = 0.2
        rp.clustered = True
        b, c = rp.connected("b", 100), rp.connected("c", 100)
        rp.published = frozenset({"b", "c"})
        written = []

        async def publish():
            written.append(rp.in_sync())
            rp.published = frozenset(rp.in_sync())

        rp.publish = publish
        fut = _commit(rp, 200)
        rp.acknowledged(b, 200)  # c never acknowledges
        await asyncio.wait_for(fut, 2)
        assert written == [["b"]] and not c.in_sync  # ZooKeeper lost c before the 250
        # C comes back holding less than what was answered: it may not join yet.
        rp.acknowledged(c, 150)
        assert not c.in_sync
        rp.acknowledged(c, 200)
        assert c.in_sync

    asyncio.run(run())


def test_every_degraded_commit_after_a_spare_flaps_back_publishes_again():
    """F9: the degraded state is what ZooKeeper holds, not a flag: after the spare came
    back (and was published) and dropped again, the next commit publishes [] first."""

    async def run():
        rp = primary(100)
        rp.clustered = True
        rp.published = frozenset({"b"})
        written = []

        async def publish():
            written.append(rp.in_sync())
            rp.published = frozenset(rp.in_sync())

        rp.publish = publish
        b = rp.connected("b", 100)
        rp.disconnected(b)
        await _commit(rp, 200)  # degraded: [] published first
        b = rp.connected("b", 200)
        assert b.in_sync
        rp.published = frozenset({"b"})  # the agent's publish loop added it back
        rp.disconnected(b)
        await _commit(rp, 300)
        assert written == [[], []]

    asyncio.run(run())


def test_a_clustered_shard_refuses_commits_it_cannot_publish_for():
    """F2: before the agent can reach ZooKeeper, nothing is answered."""

    async def run():
        rp = primary(100)
        rp.clustered = True  # published unknown, no publisher yet
        with pytest.raises(NotReplicated, match="cannot be published"):
            await _commit(rp, 200)

    asyncio.run(run())

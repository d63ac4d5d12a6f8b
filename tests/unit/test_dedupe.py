"""Deduplication by queue id (Shard.commit_message) and the take-back rules of an
inherited message (Shard.take_back), on a real standalone shard under tmp_path; and the
index they use (RecentIds) on its own."""

from __future__ import annotations

import asyncio

import pytest

from mailnode.config import ReplicationPolicy
from mailnode.errors import NotPrimary
from mailnode.journal.format import iter_frames
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.shard import Shard
from mailnode.store.index import Index
from mailnode.store.state import RecentIds

BOX = "alice@example.test"


def message(qid: str, body: str = "") -> JournalRecord:
    r = JournalRecord()
    m = r.message_accepted
    m.queue_id, m.mail_from = qid, "s@example.org"
    m.data = f"Subject: {body or qid}\r\n\r\nbody\r\n".encode()
    m.recipients.append(BOX)
    return r


def open_shard(tmp_path) -> Shard:
    shard = Shard(
        0,
        str(tmp_path / "shard"),
        node_name="node1",
        segment_size=1 << 20,
        checkpoint_interval=3600,
        # A standalone shard: a commit is answered at the local fsync.
        replication=ReplicationPolicy(policy="local"),
    )
    shard.open()
    return shard


def run(tmp_path, body):
    """Open a shard, start it on a loop, run ``body(shard)`` and stop it."""
    shard = open_shard(tmp_path)

    async def main():
        shard.start(asyncio.get_running_loop())
        try:
            return await body(shard)
        finally:
            shard.stop()

    return asyncio.run(main())


async def settle(shard: Shard) -> None:
    await shard.wait_applied(shard.journal.committed_lsn - 1)


def subjects(shard: Shard) -> list[str]:
    mb = shard.state.mailboxes
    return sorted(mb.read(BOX, n).split(b"\r\n", 1)[0].decode() for n, _ in mb.listing(BOX))


def kinds(shard: Shard) -> list[str]:
    return [fr.record.WhichOneof("body") for fr in iter_frames(shard.journal.directory)]


# -- commit_message ------------------------------------------------------------------------


def test_committing_the_same_queue_id_twice_stores_one_message(tmp_path):
    async def body(shard):
        first = await shard.commit_message(message("q1"))
        again = await shard.commit_message(message("q1"), retry=True)
        await settle(shard)
        return first, again, subjects(shard), kinds(shard)

    first, again, subjects_, kinds_ = run(tmp_path, body)
    assert first[1] is False and again == (first[0], True)
    assert subjects_ == ["Subject: q1"]
    assert kinds_.count("message_accepted") == 1


def test_a_retry_without_the_retry_flag_is_deduplicated_too(tmp_path):
    async def body(shard):
        lsn, _ = await shard.commit_message(message("q1"))
        await settle(shard)
        return lsn, await shard.commit_message(message("q1"))

    lsn, again = run(tmp_path, body)
    assert again == (lsn, True)


def test_two_concurrent_commits_of_one_queue_id_store_it_once(tmp_path):
    async def body(shard):
        results = await asyncio.gather(
            shard.commit_message(message("q1")), shard.commit_message(message("q1"))
        )
        await settle(shard)
        return results, subjects(shard)

    results, subjects_ = run(tmp_path, body)
    assert results[0][0] == results[1][0]
    assert sorted(dup for _, dup in results) == [False, True]
    assert subjects_ == ["Subject: q1"]


def test_different_queue_ids_are_different_messages(tmp_path):
    async def body(shard):
        a = await shard.commit_message(message("q1"))
        b = await shard.commit_message(message("q2"))
        await settle(shard)
        return a, b, subjects(shard)

    a, b, subjects_ = run(tmp_path, body)
    assert a[0] != b[0] and not a[1] and not b[1]
    assert subjects_ == ["Subject: q1", "Subject: q2"]


def test_a_message_without_queue_id_is_never_deduplicated(tmp_path):
    async def body(shard):
        a = await shard.commit_message(message("", "one"))
        b = await shard.commit_message(message("", "two"))
        await settle(shard)
        return a, b, subjects(shard)

    a, b, subjects_ = run(tmp_path, body)
    assert not a[1] and not b[1] and a[0] != b[0]
    assert subjects_ == ["Subject: one", "Subject: two"]


def test_a_queue_id_taken_back_commits_anew(tmp_path):
    async def body(shard):
        lsn, _ = await shard.commit_message(message("q1"))
        abort = JournalRecord()
        abort.aborted.lsn, abort.aborted.queue_id = lsn, "q1"
        await shard.commit(abort, applied=True)
        return lsn, await shard.commit_message(message("q1"), retry=True)

    lsn, (again, dup) = run(tmp_path, body)
    assert not dup and again > lsn


def test_a_deduplicated_queue_id_is_still_known_after_a_restart(tmp_path):
    async def first(shard):
        return (await shard.commit_message(message("q1")))[0]

    async def second(shard):
        return await shard.commit_message(message("q1"), retry=True)

    lsn = run(tmp_path, first)
    assert run(tmp_path, second) == (lsn, True)


def test_a_draining_shard_refuses_the_commit_and_forgets_it(tmp_path):
    async def body(shard):
        shard.draining = True
        with pytest.raises(NotPrimary, match="draining for a switchover"):
            await shard.commit_message(message("q1"))
        assert shard._inflight == {}
        shard.draining = False
        return await shard.commit_message(message("q1"))

    _, dup = run(tmp_path, body)
    assert dup is False  # the refused attempt left nothing to be "deduplicated" against


# -- take_back -------------------------------------------------------------------------------


def aborted(lsn: int, qid: str):
    r = JournalRecord()
    r.aborted.lsn, r.aborted.queue_id, r.aborted.reason = lsn, qid, "no spare acknowledged"
    return r.aborted


async def inherit(shard: Shard, *qids: str) -> list[int]:
    """Commit ``qids`` at epoch 1, then become primary at epoch 2: they are inherited."""
    lsns = [await shard.commit(message(q)) for q in qids]
    shard.become_spare("127.0.0.9:7000", 1)
    await shard.start_epoch(2)
    await settle(shard)
    return lsns


def test_an_inherited_message_is_taken_back_and_its_queue_id_freed(tmp_path):
    async def body(shard):
        [lsn] = await inherit(shard, "q1")
        taken = await shard.take_back(aborted(lsn, "q1"), "node1")
        boxes = subjects(shard)
        retry = await shard.commit_message(message("q1"), retry=True)
        return lsn, taken, boxes, retry, kinds(shard)

    lsn, taken, boxes, (again, dup), kinds_ = run(tmp_path, body)
    assert taken > lsn and boxes == []
    assert not dup and again > taken
    assert kinds_[-2:] == ["aborted", "message_accepted"]


def test_a_take_back_is_refused_for_a_message_of_our_own_epoch(tmp_path):
    async def body(shard):
        await inherit(shard)
        own = await shard.commit(message("q4"))
        await settle(shard)
        return await shard.take_back(aborted(own, "q4"), "node1"), subjects(shard)

    assert run(tmp_path, body) == (0, ["Subject: q4"])


def test_a_message_is_taken_back_only_once(tmp_path):
    async def body(shard):
        [lsn] = await inherit(shard, "q1")
        first = await shard.take_back(aborted(lsn, "q1"), "node1")
        second = await shard.take_back(aborted(lsn, "q1"), "node2")
        return first, second, kinds(shard).count("aborted")

    first, second, n_aborted = run(tmp_path, body)
    assert first > 0 and second == 0 and n_aborted == 1


def test_a_take_back_is_refused_for_a_queue_id_answered_250_here(tmp_path):
    async def body(shard):
        [lsn] = await inherit(shard, "q1")
        assert await shard.commit_message(message("q1"), retry=True) == (lsn, True)
        refused = await shard.take_back(aborted(lsn, "q1"), "node1")
        shard._retry_answered.clear()  # as after a restart: the journal still says so
        again = await shard.take_back(aborted(lsn, "q1"), "node1")
        return refused, again, subjects(shard), kinds(shard)

    refused, again, boxes, kinds_ = run(tmp_path, body)
    assert (refused, again) == (0, 0) and boxes == ["Subject: q1"]
    assert "retry_answered" in kinds_ and "aborted" not in kinds_


def test_a_take_back_naming_another_queue_id_is_refused(tmp_path):
    async def body(shard):
        [lsn] = await inherit(shard, "q1")
        return await shard.take_back(aborted(lsn, "q9"), "node1"), subjects(shard)

    assert run(tmp_path, body) == (0, ["Subject: q1"])


def test_a_take_back_of_an_lsn_holding_no_message_is_refused(tmp_path):
    async def body(shard):
        await inherit(shard, "q1")
        epoch_record = await shard.take_back(aborted(0, "q1"), "node1")  # the EpochStarted
        nowhere = await shard.take_back(aborted(7, "q1"), "node1")  # inside a frame
        return epoch_record, nowhere, subjects(shard)

    assert run(tmp_path, body) == (0, 0, ["Subject: q1"])


def test_a_take_back_on_a_shard_that_is_not_primary_raises(tmp_path):
    async def body(shard):
        [lsn] = await inherit(shard, "q1")
        shard.become_spare("127.0.0.9:7000", 3)
        with pytest.raises(NotPrimary):
            await shard.take_back(aborted(lsn, "q1"), "node1")

    run(tmp_path, body)


# -- RecentIds, the index --------------------------------------------------------------------


def test_recent_ids_forget_the_oldest_beyond_the_bound(tmp_path):
    index = Index(str(tmp_path / "store.db"))
    ids = RecentIds(index, bound=2)
    for n, qid in enumerate(("a", "b", "c")):
        ids.add(qid, n)
    ids.prune()
    index.commit()
    assert "a" not in ids and ids.get("b") == 1 and ids.get("c") == 2


def test_recent_ids_are_seen_by_readers_only_once_committed(tmp_path):
    index = Index(str(tmp_path / "store.db"))
    ids = RecentIds(index)
    ids.add("a", 10)
    assert ids.get("a") is None  # the applier's batch is not committed yet
    index.commit()
    assert ids.get("a") == 10
    ids.remove("a")
    index.commit()
    assert "a" not in ids

"""What a replaced primary writes and re-submits (review findings F1 and F3), on a real
shard (real journal, real files, real fsync) run in-process; ZooKeeper's part, publishing
the in-sync set, is the callable the agent would install."""

from __future__ import annotations

import asyncio

import pytest

from mailnode.config import ReplicationPolicy
from mailnode.errors import NotPrimary, NotReplicated
from mailnode.journal import Journal, JournalFenced
from mailnode.journal.format import frame, iter_frames
from mailnode.proto.journal_pb2 import DeliveryResult, JournalRecord
from mailnode.replication import salvage
from mailnode.shard import Shard
from mailnode.store.maildir import message_name

BOX = "alice@example.test"


def message(n: int, *, relay: str = "") -> JournalRecord:
    r = JournalRecord()
    m = r.message_accepted
    m.queue_id, m.mail_from, m.data = (
        f"q{n}",
        "s@example.org",
        f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(),
    )
    m.recipients.append(BOX)
    if relay:
        m.relay_recipients.append(relay)
    return r


def make_shard(tmp_path, **replication) -> Shard:
    shard = Shard(
        0,
        str(tmp_path / "shard"),
        node_name="node1",
        segment_size=1 << 20,
        checkpoint_interval=3600,
        replication=ReplicationPolicy(
            **{"sync_timeout": 0.2, "max_lag_bytes": 1 << 30, **replication}
        ),
    )
    shard.open()
    return shard


def kinds(directory: str) -> list[str]:
    return [fr.record.WhichOneof("body") for fr in iter_frames(directory)]


def test_a_fenced_journal_refuses_appends_but_takes_the_new_primarys_frames(tmp_path):
    async def main():
        j = Journal(str(tmp_path))
        j.open()
        j.start(asyncio.get_running_loop())
        with pytest.raises(JournalFenced):
            j.append(message(0))  # never allowed: not primary at any epoch
        j.allow_writes(1)
        await j.append(message(1))
        j.fence()
        with pytest.raises(JournalFenced):
            j.append(message(2))
        theirs = message(3)  # a frame of the new primary, at epoch 2, at our end
        theirs.lsn, theirs.epoch = j.end_lsn, 2
        await j.append_frame(theirs.lsn, frame(theirs.SerializeToString()), theirs)
        j.close()
        return [
            (fr.record.epoch, fr.record.message_accepted.queue_id)
            for fr in iter_frames(str(tmp_path))
        ]

    assert asyncio.run(main()) == [(1, "q1"), (2, "q3")]


def test_a_commit_refused_after_demotion_writes_nothing_into_the_followed_journal(tmp_path):
    """F3: the commit waits for ZooKeeper (publishing a smaller in-sync set); meanwhile
    the node is fenced by the new primary and follows it; then the ZooKeeper call fails.
    The Aborted record must not land among the new primary's frames."""
    shard = make_shard(tmp_path)

    async def main():
        shard.start(asyncio.get_running_loop())  # a new shard: primary at epoch 1
        rp = shard.replication
        rp.clustered, rp.published = True, frozenset({"node2"})  # ZooKeeper names a spare we lack
        zk_answers = asyncio.Event()

        async def publish():  # what the agent does while ZooKeeper is unreachable
            await zk_answers.wait()
            raise NotReplicated("shard 0: cannot publish the in-sync set: timed out")

        rp.publish = publish
        commit = asyncio.create_task(shard.commit(message(1)))
        deadline = asyncio.get_running_loop().time() + 10
        while not rp._publish_lock.locked():  # the commit is durable and waits for ZooKeeper
            assert asyncio.get_running_loop().time() < deadline, (
                "the commit never waited for ZooKeeper"
            )
            await asyncio.sleep(0.01)
        end_before = shard.journal.end_lsn
        shard.become_spare("127.0.0.2:7000", 2)  # fenced by the new primary (roles.demote)
        zk_answers.set()
        with pytest.raises(NotReplicated):
            await commit
        assert shard.journal.end_lsn == end_before
        shard.stop()

    asyncio.run(main())
    assert kinds(shard.journal.directory) == ["epoch_started", "message_accepted"]
    # ...but the take-back is kept, in a file, for the new primary (a spare may hold it)
    again = make_shard(tmp_path)
    assert [(r.aborted.queue_id, r.aborted.lsn) for r in again.untaken] == [("q1", 33)]


def test_a_commit_failed_by_demotion_is_kept_to_be_taken_back(tmp_path):
    """The node is demoted (fenced) while a commit waits for its spare: the client will
    see 451, but the spare may hold the message; its take-back survives a restart."""
    shard = make_shard(tmp_path, sync_timeout=30.0)

    async def main():
        shard.start(asyncio.get_running_loop())
        rp = shard.replication
        rp.clustered, rp.published = True, frozenset({"node2"})
        assert rp.connected(
            "node2", shard.journal.committed_lsn
        ).in_sync  # caught up; never acks again
        commit = asyncio.create_task(shard.commit(message(7)))
        deadline = asyncio.get_running_loop().time() + 10
        while not rp._waiters:
            assert asyncio.get_running_loop().time() < deadline, (
                "the commit never waited for its spare"
            )
            await asyncio.sleep(0.01)
        shard.become_spare("127.0.0.2:7000", 2)
        rp.fail_waiters(NotPrimary("shard 0 demoted on node1"))  # what roles.demote does
        with pytest.raises(NotPrimary):
            await commit
        shard.stop()

    asyncio.run(main())
    again = make_shard(tmp_path)
    assert [r.aborted.queue_id for r in again.untaken] == ["q7"]


def test_only_commits_answered_alone_are_salvaged(tmp_path):
    """F1: of the tail of a replaced primary, re-submit exactly what was acknowledged:
    a commit answered degraded (marked AnsweredAlone before its 250), not one answered
    451 (strict, Aborted), nor one that never got an answer (no marker)."""
    shard = make_shard(tmp_path)
    published = []

    async def main():
        shard.start(asyncio.get_running_loop())  # a new shard: primary at epoch 1
        rp = shard.replication
        rp.clustered, rp.published = True, frozenset({"node2"})

        async def publish():  # ZooKeeper took the smaller set (compare-and-set)
            published.append(rp.in_sync())
            rp.published = frozenset(rp.in_sync())

        rp.publish = publish
        divergence = shard.journal.end_lsn
        ok = await shard.commit(message(1))  # no spare: published [] first, answered alone
        rp.strict = True
        with pytest.raises(NotReplicated):
            await shard.commit(message(2))  # strict: 451 and taken back
        rp.strict = False
        shard.journal.append(message(3))  # durable, but the node died before answering
        await shard.journal.append(message(4))
        shard.stop()
        return divergence, ok

    divergence, ok = asyncio.run(main())
    assert published == [[]]
    assert kinds(shard.journal.directory) == [
        "epoch_started",
        "message_accepted",
        "answered_alone",
        "message_accepted",
        "aborted",
        "message_accepted",
        "message_accepted",
    ]
    todo = salvage.plan(
        iter_frames(shard.journal.directory, divergence),
        divergence,
        marked_only=True,
        origin="node1",
    )
    assert [r.message_accepted.queue_id for r in todo.records] == ["q1"]
    assert todo.records[0].message_accepted.salvaged_from == f"node1/1/{ok}"
    assert todo.unanswered == 3
    # async/local shards answer at the local fsync: everything but the taken-back one
    todo = salvage.plan(
        iter_frames(shard.journal.directory, divergence),
        divergence,
        marked_only=False,
        origin="node1",
    )
    assert [r.message_accepted.queue_id for r in todo.records] == ["q1", "q3", "q4"]


def test_acknowledged_expunges_deliveries_and_user_changes_are_carried_over(tmp_path):
    """F1, second half: a POP3 deletion or a remote delivery acknowledged alone must not
    be undone by salvage (deleted mail back, mail relayed twice)."""
    j = Journal(str(tmp_path))

    async def main():
        j.open()
        j.start(asyncio.get_running_loop())
        j.allow_writes(1)
        old = await j.append(message(0, relay="bob@remote.example"))  # before the divergence
        old_rec = message(0)
        divergence = j.end_lsn
        recs = [message(1, relay="carol@remote.example"), message(2)]
        lsns = [await j.append(r) for r in recs]
        exp = JournalRecord()
        exp.expunged.mailbox = BOX
        exp.expunged.uids.extend(
            [
                message_name(0, old, 0, len(old_rec.message_accepted.data)),
                message_name(0, lsns[1], 0, 10),
            ]
        )
        res_old, res_new = JournalRecord(), JournalRecord()
        for res, lsn, rcpt in (
            (res_old, old, "bob@remote.example"),
            (res_new, lsns[0], "carol@remote.example"),
        ):
            res.delivery_result.message_lsn = lsn
            res.delivery_result.recipients.add(address=rcpt, outcome=DeliveryResult.DELIVERED)
        user = JournalRecord()
        user.password_changed.address, user.password_changed.password_hash = BOX, "$argon2id$x"
        tail = [await j.append(r) for r in (exp, res_old, res_new, user)]
        marker = JournalRecord()
        marker.answered_alone.lsns.extend(lsns + tail)
        await j.append(marker)
        j.close()
        return old, divergence, lsns

    old, divergence, _lsns = asyncio.run(main())
    todo = salvage.plan(
        iter_frames(str(tmp_path), divergence), divergence, marked_only=True, origin="n1"
    )
    got = [(r.WhichOneof("body"), r) for r in todo.records]
    assert [k for k, _ in got] == [
        "message_accepted",
        "expunged",
        "delivery_result",
        "password_changed",
    ]
    m1 = got[0][1].message_accepted
    assert m1.queue_id == "q1" and list(m1.recipients) == [BOX] and list(m1.relay_recipients) == []
    # q2 was expunged in the tail: nothing of it is re-submitted; the old message's expunge is
    assert [u for u in got[1][1].expunged.uids] == [
        f for f in got[1][1].expunged.uids if f"L{old}." in f
    ]
    assert len(got[1][1].expunged.uids) == 1
    assert got[2][1].delivery_result.message_lsn == old
    assert todo.messages == 1


def aborted_for(lsn: int, qid: str) -> JournalRecord:
    r = JournalRecord()
    r.aborted.lsn, r.aborted.queue_id, r.aborted.reason = lsn, qid, "no spare acknowledged in time"
    return r


def test_a_take_back_of_a_message_the_new_primary_holds_is_carried_over(tmp_path):
    """The cut primary answered 451 for a message whose frames reached the spare (its
    acknowledgement was lost): the Aborted record in its tail names an lsn below the
    divergence point, and salvage hands it over instead of skipping it."""
    j = Journal(str(tmp_path))

    async def main():
        j.open()
        j.start(asyncio.get_running_loop())
        j.allow_writes(1)
        held = await j.append(message(1))  # reached the spare, which is promoted with it
        divergence = j.end_lsn
        mine = await j.append(message(2))  # reached nobody
        await j.append(aborted_for(held, "q1"))
        await j.append(aborted_for(mine, "q2"))
        j.close()
        return held, divergence

    held, divergence = asyncio.run(main())
    todo = salvage.plan(
        iter_frames(str(tmp_path), divergence), divergence, marked_only=True, origin="n1"
    )
    assert [(r.WhichOneof("body"), r.aborted.lsn, r.aborted.queue_id) for r in todo.records] == [
        ("aborted", held, "q1")
    ]
    assert todo.take_backs == 1 and todo.messages == 0 and todo.unanswered == 1


def box_subjects(shard) -> list[str]:
    mb = shard.state.mailboxes
    return sorted(mb.read(BOX, n).split(b"\r\n", 1)[0].decode() for n, _ in mb.listing(BOX))


def test_the_new_primary_takes_back_only_what_nobody_was_answered_250_for(tmp_path):
    """What the new primary does with a take-back (Shard.take_back): the inherited
    message goes, and its queue id is free for the sender's retry; refused for a queue
    id it answered 250 for itself (a front end's deduplicated retry, durable as a
    RetryAnswered record, also after a restart), for its own epoch's messages, for a
    mismatching queue id and twice for the same message; a take-back racing a retried
    answer leaves exactly one copy either way."""
    shard = make_shard(tmp_path)

    async def main():
        shard.start(asyncio.get_running_loop())  # primary at epoch 1: the old primary's history
        lsns = [await shard.commit(message(n)) for n in (1, 2, 3)]
        shard.become_spare("127.0.0.9:7000", 1)
        await shard.start_epoch(2)  # promoted: q1..q3 are inherited
        own = await shard.commit(message(4))
        assert await shard.commit_message(message(2), retry=True) == (
            lsns[1],
            True,
        )  # 250 to a retry

        taken = await shard.take_back(aborted_for(lsns[0], "q1").aborted, "node1")
        assert taken > 0
        assert (
            await shard.take_back(aborted_for(lsns[0], "q1").aborted, "node1") == 0
        )  # already done
        assert (
            await shard.take_back(aborted_for(lsns[1], "q2").aborted, "node1") == 0
        )  # answered 250
        shard._retry_answered.clear()  # as after a restart: the journal still says so
        assert await shard.take_back(aborted_for(lsns[1], "q2").aborted, "node1") == 0
        assert (
            await shard.take_back(aborted_for(lsns[2], "q9").aborted, "node1") == 0
        )  # not that message
        assert await shard.take_back(aborted_for(own, "q4").aborted, "node1") == 0  # our own epoch
        assert box_subjects(shard) == ["Subject: 2", "Subject: 3", "Subject: 4"]

        lsn, dup = await shard.commit_message(message(1))  # the sender's retry, a new transaction
        assert not dup and lsn > own
        (_, dup3), taken3 = await asyncio.gather(
            shard.commit_message(message(3), retry=True),
            shard.take_back(aborted_for(lsns[2], "q3").aborted, "node1"),
        )
        assert dup3 != bool(
            taken3
        )  # answered as the old copy, or the old copy went and it committed anew
        await shard.wait_applied(shard.journal.committed_lsn - 1)
        assert box_subjects(shard) == ["Subject: 1", "Subject: 2", "Subject: 3", "Subject: 4"]
        shard.stop()

    asyncio.run(main())


def test_queue_id_deduplication_survives_a_restart(tmp_path):
    """F11: a retried queue id is found after a restart (past the checkpoint, so not by
    the replay), a taken-back one is not, and a snapshot carries the index to a spare."""
    shard = make_shard(tmp_path)

    async def first():
        shard.start(asyncio.get_running_loop())
        lsns = [await shard.commit(message(n)) for n in (1, 2, 3)]
        taken = JournalRecord()
        taken.aborted.lsn, taken.aborted.queue_id = lsns[2], "q3"
        await shard.commit(taken)
        await shard.wait_applied(shard.journal.committed_lsn - 1)
        shard.state.checkpoint(force=True)
        shard.stop()
        return lsns

    lsns = asyncio.run(first())
    again = make_shard(tmp_path)
    assert again.state.recent_ids.get("q2") == lsns[1]  # from the index: nothing was replayed

    async def second():
        again.start(asyncio.get_running_loop())
        assert await again.commit_message(message(2), retry=True) == (lsns[1], True)
        lsn, dup = await again.commit_message(message(3), retry=True)  # taken back: a new commit
        again.stop()
        return lsn, dup

    lsn, dup = asyncio.run(second())
    assert not dup and lsn > lsns[2]
    third = make_shard(tmp_path)
    assert third.state.recent_ids.get("q1") == lsns[0]


def test_a_store_being_replaced_is_not_served_and_a_cancelled_follower_waits_for_it(tmp_path):
    """Seen in a chaos run: a node whose follower was cancelled (fenced, then promoted)
    while its store was rebuilt in a thread served RCPT from a half-built user table
    (550 for a real user). A cancellation now waits for the thread, and a primary does
    not accept while its store is being replaced."""
    import threading

    from mailnode.replication.follower import to_thread_to_the_end

    shard = make_shard(tmp_path)
    release, order = threading.Event(), []

    def rebuild():
        shard.state.begin_replace("test")
        release.wait(10)
        order.append("rebuilt")
        shard.state.end_replace()

    async def main():
        shard.start(asyncio.get_running_loop())  # primary at epoch 1
        assert shard.accepting
        task = asyncio.create_task(to_thread_to_the_end(rebuild))
        deadline = asyncio.get_running_loop().time() + 10
        while not shard.state.replacing:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert not shard.accepting
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done()  # still waiting for the thread
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        order.append("cancelled")
        assert shard.accepting
        shard.stop()

    asyncio.run(main())
    assert order == ["rebuilt", "cancelled"]

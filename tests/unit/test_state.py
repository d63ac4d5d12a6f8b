"""ShardState.apply: how each journal record changes a shard's derived state, replay
idempotence and the commit round trip (a real SQLite index and real files under
tmp_path, no processes)."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from mailnode.proto.journal_pb2 import DeliveryResult, JournalRecord, QueueControl
from mailnode.store.maildir import message_name
from mailnode.store.state import ShardState

ALICE, BOB = "alice@example.test", "bob@example.test"
REMOTE = "carol@remote.example"
TS = 1_700_000_000 * 1_000_000_000
STEP = 100  # every record here "occupies" 100 bytes of journal


class Journal:
    """Hands out lsns like a journal would and keeps what it wrote, for replays."""

    def __init__(self):
        self.next_lsn = 0
        self.records: list[tuple[JournalRecord, int]] = []

    def record(self, **fields) -> JournalRecord:
        r = JournalRecord(lsn=self.next_lsn, epoch=1, timestamp_ns=TS + self.next_lsn, **fields)
        self.records.append((r, self.next_lsn + STEP))
        self.next_lsn += STEP
        return r

    def message(
        self, qid="q1", rcpts=(ALICE,), relay=(), data=b"Subject: hi\r\n\r\nbody\r\n", **kw
    ):
        r = self.record()
        m = r.message_accepted
        m.queue_id, m.mail_from, m.data = qid, "sender@example.org", data
        m.recipients.extend(rcpts)
        m.relay_recipients.extend(relay)
        for k, v in kw.items():
            setattr(m, k, v)
        return r


def apply(state: ShardState, r: JournalRecord, *, replay=False, commit=True) -> int:
    """Apply one record and (as the applier does at the end of a batch) commit it."""
    n = state.apply(r, r.lsn + STEP, replay=replay)
    if commit:
        state.commit()
    return n


def opened(directory: str, shard: int = 0) -> ShardState:
    state = ShardState(shard, directory)
    state.load()
    return state


def uid_of(r: JournalRecord, shard=0) -> str:
    return message_name(shard, r.lsn, r.timestamp_ns, len(r.message_accepted.data))


def mailbox(state: ShardState, address: str) -> dict[str, bytes | None]:
    mb = state.mailboxes
    return {name: mb.read(address, name) for name, _ in mb.listing(address)}


def listing(state: ShardState, address: str) -> list[tuple[str, int]]:
    return state.mailboxes.listing(address)


TABLES = ("users", "mailboxes", "folders", "messages", "queue", "recent", "salvaged", "quotas")


def picture(state: ShardState) -> dict:
    """Everything apply derives (every table of the index, every mailbox's files),
    comparable between two states."""
    tables = {t: sorted(state.index.read(f"SELECT * FROM {t}"), key=repr) for t in TABLES}
    files = {}
    for dirpath, _, names in os.walk(state.files.root):
        for n in names:
            path = os.path.join(dirpath, n)
            with open(path, "rb") as f:
                files[os.path.relpath(path, state.files.root)] = f.read()
    return {
        **tables,
        "applied": state.committed_lsn,
        "epoch": state.epoch,
        "files": files,
    }


@pytest.fixture
def state(tmp_path) -> ShardState:
    return opened(str(tmp_path / "shard"))


@pytest.fixture
def j() -> Journal:
    return Journal()


# -- message_accepted -------------------------------------------------------------------


def test_an_accepted_message_lands_in_new_of_each_local_recipient(state, j):
    r = j.message(rcpts=(ALICE, BOB))
    assert apply(state, r) == 2
    for box in (ALICE, BOB):
        path = os.path.join(state.store.path(box), "new", uid_of(r))
        with open(path, "rb") as f:
            assert f.read() == r.message_accepted.data


def test_the_maildir_name_carries_time_shard_lsn_and_size(tmp_path, j):
    state = opened(str(tmp_path / "s3"), 3)
    r = j.message()
    apply(state, r)
    [(uid, size)] = listing(state, ALICE)
    assert uid == f"{TS // 10**9}.S3L{r.lsn}.mailcluster,S={len(r.message_accepted.data)}"
    assert size == len(r.message_accepted.data)


def test_a_message_for_local_recipients_only_is_not_queued(state, j):
    apply(state, j.message())
    assert state.queue.entries == {}


def test_relay_recipients_are_queued_at_the_records_lsn_and_not_stored(state, j):
    r = j.message(rcpts=(), relay=(REMOTE, REMOTE, BOB))
    assert apply(state, r) == 0
    entry = state.queue.entries[r.lsn]
    assert entry.pending == [REMOTE, BOB]  # de-duplicated, order kept
    assert entry.sender == "sender@example.org" and entry.queue_id == "q1"
    assert entry.arrival_ns == r.timestamp_ns and entry.size == len(r.message_accepted.data)
    assert entry.next_attempt_ns == 0 and not entry.held
    assert listing(state, BOB) == []


def test_the_queue_id_of_an_accepted_message_is_remembered_with_its_lsn(state, j):
    r = j.message(qid="abc123")
    apply(state, r)
    assert state.recent_ids.get("abc123") == r.lsn


def test_a_message_without_queue_id_is_not_indexed(state, j):
    apply(state, j.message(qid=""))
    assert len(state.recent_ids) == 0


def test_a_salvaged_message_remembers_where_it_came_from(state, j):
    apply(state, j.message(salvaged_from="node1/1/4096"))
    assert "node1/1/4096" in state.salvaged and len(state.salvaged) == 1


def test_applied_lsn_is_the_end_of_the_last_record(state, j):
    r = j.message()
    assert state.apply(r, r.lsn + 57) == 1
    assert state.applied_lsn == r.lsn + 57
    state.commit()
    assert state.committed_lsn == r.lsn + 57 == opened(state.directory).applied_lsn


def test_records_apply_does_not_interpret_still_advance_applied_lsn(state, j):
    before = picture(state)
    hole = j.record()
    hole.hole.lost_bytes = 40
    alone = j.record()
    alone.answered_alone.lsns.append(0)
    for r in (hole, alone):
        apply(state, r)
    assert state.committed_lsn == alone.lsn + STEP
    assert {k: v for k, v in picture(state).items() if k != "applied"} == {
        k: v for k, v in before.items() if k != "applied"
    }


# -- users -------------------------------------------------------------------------------


def test_an_added_user_gets_a_password_hash_and_an_inbox(state, j):
    r = j.record()
    r.user_added.address, r.user_added.password_hash = ALICE, "$argon2id$one"
    apply(state, r)
    assert state.users == {ALICE: "$argon2id$one"}
    inbox = state.mailboxes.folder(ALICE, "INBOX")
    assert inbox is not None and inbox.uidnext == 1 and inbox.uidvalidity == TS // 10**9
    # The directories come with the first message: a million users cost no mkdir.
    assert not os.path.exists(state.store.path(ALICE))
    apply(state, j.message())
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(os.path.join(state.store.path(ALICE), sub))


def test_a_password_change_replaces_the_hash(state, j):
    add, change = j.record(), j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "old"
    change.password_changed.address, change.password_changed.password_hash = ALICE, "new"
    apply(state, add)
    apply(state, change)
    assert state.users == {ALICE: "new"}


def test_a_deleted_user_stops_existing_but_its_mail_stays_on_disk(state, j):
    add = j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "h"
    msg = j.message()
    gone = j.record()
    gone.user_deleted.address = ALICE
    for r in (add, msg, gone):
        apply(state, r)
    assert ALICE not in state.users
    assert list(mailbox(state, ALICE)) == [uid_of(msg)]


def test_deleting_an_unknown_user_is_harmless(state, j):
    r = j.record()
    r.user_deleted.address = "nobody@example.test"
    apply(state, r)
    assert state.users == {} and state.applied_lsn == r.lsn + STEP


# -- POP3 deletions ----------------------------------------------------------------------


def test_an_expunge_removes_exactly_the_named_messages(state, j):
    keep, drop = j.message(qid="k"), j.message(qid="d")
    exp = j.record()
    exp.expunged.mailbox = ALICE
    exp.expunged.uids.extend([uid_of(drop), "1.S0L999999.mailcluster,S=1"])  # one unknown
    for r in (keep, drop, exp):
        apply(state, r)
    assert list(mailbox(state, ALICE)) == [uid_of(keep)]


def test_an_expunge_finds_a_message_a_reader_moved_to_cur(state, j):
    msg = j.message()
    apply(state, msg)
    box = state.store.path(ALICE)
    os.rename(os.path.join(box, "new", uid_of(msg)), os.path.join(box, "cur", uid_of(msg) + ":2,S"))
    exp = j.record()
    exp.expunged.mailbox = ALICE
    exp.expunged.uids.append(uid_of(msg))
    apply(state, exp)
    assert os.listdir(os.path.join(box, "cur")) == []


def test_an_expunge_touches_only_its_own_mailbox(state, j):
    msg = j.message(rcpts=(ALICE, BOB))
    exp = j.record()
    exp.expunged.mailbox = ALICE
    exp.expunged.uids.append(uid_of(msg))
    apply(state, msg)
    apply(state, exp)
    assert mailbox(state, ALICE) == {} and list(mailbox(state, BOB)) == [uid_of(msg)]


# -- aborted (take-backs) ----------------------------------------------------------------


def aborted(j: Journal, msg: JournalRecord) -> JournalRecord:
    r = j.record()
    a = r.aborted
    a.lsn, a.uid, a.queue_id = msg.lsn, uid_of(msg), msg.message_accepted.queue_id
    a.recipients.extend(msg.message_accepted.recipients)
    return r


def test_an_aborted_message_is_taken_out_of_every_mailbox_and_the_queue(state, j):
    msg = j.message(rcpts=(ALICE, BOB), relay=(REMOTE,))
    apply(state, msg)
    apply(state, aborted(j, msg))
    assert mailbox(state, ALICE) == {} and mailbox(state, BOB) == {}
    assert msg.lsn not in state.queue.entries


def test_an_aborted_message_frees_its_queue_id_for_the_retry(state, j):
    msg = j.message(qid="q7")
    apply(state, msg)
    apply(state, aborted(j, msg))
    assert "q7" not in state.recent_ids
    retry = j.message(qid="q7")
    apply(state, retry)
    assert state.recent_ids.get("q7") == retry.lsn


def test_an_abort_leaves_other_messages_alone(state, j):
    other, msg = j.message(qid="a"), j.message(qid="b")
    for r in (other, msg, aborted(j, msg)):
        apply(state, r)
    assert list(mailbox(state, ALICE)) == [uid_of(other)]
    assert state.recent_ids.get("a") == other.lsn


# -- the delivery queue --------------------------------------------------------------------


def result(j: Journal, msg_lsn: int, *outcomes, next_attempt_ns=0) -> JournalRecord:
    r = j.record()
    d = r.delivery_result
    d.message_lsn, d.next_attempt_ns = msg_lsn, next_attempt_ns
    for address, outcome in outcomes:
        d.recipients.add(address=address, outcome=outcome, reply=f"reply for {address}")
    return r


def test_a_delivered_recipient_leaves_the_queue_entry(state, j):
    msg = j.message(rcpts=(), relay=(REMOTE, BOB))
    apply(state, msg)
    apply(state, result(j, msg.lsn, (REMOTE, DeliveryResult.DELIVERED)))
    assert state.queue.entries[msg.lsn].pending == [BOB]


def test_the_last_final_result_removes_the_queue_entry(state, j):
    msg = j.message(rcpts=(), relay=(REMOTE,))
    apply(state, msg)
    apply(state, result(j, msg.lsn, (REMOTE, DeliveryResult.BOUNCED)))
    assert state.queue.entries == {}


def test_a_deferral_keeps_the_entry_and_schedules_the_next_attempt(state, j):
    msg = j.message(rcpts=(), relay=(REMOTE,))
    apply(state, msg)
    apply(state, result(j, msg.lsn, (REMOTE, DeliveryResult.DEFERRED), next_attempt_ns=TS + 60))
    entry = state.queue.entries[msg.lsn]
    assert entry.attempts == 1 and entry.next_attempt_ns == TS + 60
    assert entry.last_reply == {REMOTE: f"reply for {REMOTE}"}


def test_a_bounce_dsn_is_stored_for_a_local_sender_at_the_results_lsn(state, j):
    msg = j.message(rcpts=(), relay=(REMOTE,))
    apply(state, msg)
    res = result(j, msg.lsn, (REMOTE, DeliveryResult.BOUNCED))
    dsn = res.delivery_result.dsn
    dsn.queue_id, dsn.data = "dsn1", b"Subject: Undelivered Mail\r\n\r\nsorry\r\n"
    dsn.recipients.append(ALICE)
    assert apply(state, res) == 1
    uid = message_name(0, res.lsn, res.timestamp_ns, len(dsn.data))
    assert mailbox(state, ALICE) == {uid: dsn.data}
    assert state.queue.entries == {}  # the bounced message is done; the DSN was local
    assert state.recent_ids.get("dsn1") == res.lsn


def test_a_dsn_for_a_remote_sender_is_queued_at_the_results_lsn(state, j):
    msg = j.message(rcpts=(), relay=(REMOTE,))
    apply(state, msg)
    res = result(j, msg.lsn, (REMOTE, DeliveryResult.EXPIRED))
    res.delivery_result.dsn.data = b"dsn"
    res.delivery_result.dsn.relay_recipients.append("someone@far.example")
    apply(state, res)
    assert list(state.queue.entries) == [res.lsn]
    assert state.queue.entries[res.lsn].pending == ["someone@far.example"]
    assert state.queue.entries[res.lsn].sender == ""


def test_a_result_for_a_deleted_entry_changes_nothing_but_the_lsn(state, j):
    res = result(j, 12345, (REMOTE, DeliveryResult.DELIVERED))
    apply(state, res)
    assert state.queue.entries == {} and state.applied_lsn == res.lsn + STEP


def test_a_queue_control_record_holds_the_named_entries(state, j):
    a, b = (
        j.message(qid="a", rcpts=(), relay=(REMOTE,)),
        j.message(qid="b", rcpts=(), relay=(REMOTE,)),
    )
    ctl = j.record()
    ctl.queue_control.action = QueueControl.HOLD
    ctl.queue_control.message_lsns.append(a.lsn)
    for r in (a, b, ctl):
        apply(state, r)
    assert state.queue.entries[a.lsn].held and not state.queue.entries[b.lsn].held


# -- epochs --------------------------------------------------------------------------------


def test_an_epoch_started_record_raises_the_epoch_but_never_lowers_it(state, j):
    r5 = j.record(epoch_started={"shard": 0, "node": "n1"})
    r5.epoch = 5
    r3 = j.record(epoch_started={"shard": 0, "node": "n2"})
    r3.epoch = 3
    apply(state, r5)
    assert state.epoch == 5
    apply(state, r3)
    assert state.epoch == 5


# -- replay --------------------------------------------------------------------------------


def history(j: Journal) -> list[JournalRecord]:
    add = j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "h1"
    add2 = j.record()
    add2.user_added.address, add2.user_added.password_hash = BOB, "h2"
    m1 = j.message(qid="m1", rcpts=(ALICE, BOB), relay=(REMOTE,))
    m2 = j.message(qid="m2", rcpts=(ALICE,), data=b"second\r\n", salvaged_from="n9/1/0")
    defer = result(j, m1.lsn, (REMOTE, DeliveryResult.DEFERRED), next_attempt_ns=TS + 99)
    exp = j.record()
    exp.expunged.mailbox = ALICE
    exp.expunged.uids.append(uid_of(m1))
    m3 = j.message(qid="m3", rcpts=(BOB,))
    ab = aborted(j, m3)
    pw = j.record()
    pw.password_changed.address, pw.password_changed.password_hash = BOB, "h3"
    return [add, add2, m1, m2, defer, exp, m3, ab, pw]


@pytest.mark.parametrize("cut", [0, 3, 5, 9])
def test_replay_after_a_lost_batch_rebuilds_the_same_state(tmp_path, j, cut):
    """A crash after the commit at ``cut``: the batch after it was applied (its files
    written) but never committed; the restart replays it into the same state."""
    records = history(j)
    directory = str(tmp_path / "shard")
    live = opened(directory)
    for r in records[:cut]:
        apply(live, r)
    crashed = str(tmp_path / "crashed")
    shutil.copytree(directory, crashed)  # what was on disk at the commit
    for r in records[cut:]:
        apply(live, r)
    want = picture(live)

    lost = opened(crashed)
    for r in records[cut:]:
        apply(lost, r, commit=False)  # files written, the index's batch still open
    lost.index.close()  # the process dies: the open transaction is gone
    restarted = opened(crashed)
    assert restarted.applied_lsn == (records[cut - 1].lsn + STEP if cut else 0)
    for r in records[cut:]:  # a message expunged or aborted later is made again, then removed
        apply(restarted, r, replay=True)
    assert picture(restarted) == want


def test_replaying_the_whole_journal_into_an_empty_directory_gives_the_live_state(tmp_path, j):
    records = history(j)
    live = ShardState(0, str(tmp_path / "a"))
    fresh = ShardState(0, str(tmp_path / "b"))
    for r in records:
        apply(live, r)
        apply(fresh, r, replay=True)
    assert picture(fresh) == picture(live)


def test_replaying_a_message_twice_stores_it_once(state, j):
    r = j.message(rcpts=(ALICE, BOB))
    assert apply(state, r) == 2
    assert apply(state, r, replay=True) == 0
    assert len(listing(state, ALICE)) == 1 and len(listing(state, BOB)) == 1


def test_replay_does_not_duplicate_a_message_a_reader_moved_to_cur(state, j):
    r = j.message()
    apply(state, r)
    box = state.store.path(ALICE)
    os.rename(os.path.join(box, "new", uid_of(r)), os.path.join(box, "cur", uid_of(r) + ":2,S"))
    assert apply(state, r, replay=True) == 0
    assert os.listdir(os.path.join(box, "new")) == []
    assert os.listdir(os.path.join(box, "cur")) == [uid_of(r) + ":2,S"]


def test_replay_rewrites_a_file_that_lost_its_data_in_place(state, j):
    r = j.message()
    apply(state, r)
    path = os.path.join(state.store.path(ALICE), "new", uid_of(r))
    open(path, "wb").close()  # the name survived a power cut, the data did not
    assert apply(state, r, replay=True) == 1
    with open(path, "rb") as f:
        assert f.read() == r.message_accepted.data


# -- commits and checkpoints ---------------------------------------------------------------


def test_the_index_round_trips_users_queue_epoch_salvaged_and_lsn(tmp_path, j):
    directory = str(tmp_path / "shard")
    live = opened(directory)
    epoch = j.record(epoch_started={"shard": 0, "node": "n1"})
    epoch.epoch = 4
    for r in [epoch, *history(j)]:
        apply(live, r)
    live.checkpoint()
    assert live.checkpoint_lsn == live.committed_lsn == live.applied_lsn
    live.index.close()

    again = opened(directory)
    assert dict(again.users) == {ALICE: "h1", BOB: "h3"}
    assert again.epoch == 4 and "n9/1/0" in again.salvaged
    assert again.applied_lsn == again.checkpoint_lsn == live.applied_lsn
    assert again.queue_table.all() == live.queue_table.all()
    assert again.queue.entries[epoch.lsn + 3 * STEP].attempts == 1
    assert again.recent_ids.get("m1") == epoch.lsn + 3 * STEP
    assert picture(again) == picture(live)


def test_a_commit_with_nothing_applied_does_nothing(state, j):
    assert not state.commit()
    apply(state, j.message(), commit=False)
    assert state.commit() and not state.commit()


def test_a_commit_syncs_only_when_files_changed_and_the_checkpoint_follows(state, j):
    add = j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "h"
    apply(state, add)  # made the Maildir directories: synced before the commit
    first = state.committed_lsn
    apply(state, j.message(qid="", rcpts=(), relay=(REMOTE,)))  # queued only: no file
    assert state.checkpoint_lsn < state.committed_lsn
    state.checkpoint()
    assert state.checkpoint_lsn == state.committed_lsn > first


def test_readers_see_an_applied_batch_only_once_it_is_committed(state, j):
    r = j.message(qid="q1", relay=(REMOTE,))
    apply(state, r, commit=False)
    assert listing(state, ALICE) == [] and state.recent_ids.get("q1") is None
    state.commit()
    assert [n for n, _ in listing(state, ALICE)] == [uid_of(r)]
    assert state.recent_ids.get("q1") == r.lsn and r.lsn in state.queue.entries


def test_a_record_that_fails_half_way_leaves_the_index_as_it_was(state, j, monkeypatch):
    r = j.message(rcpts=(ALICE, BOB))
    calls = []

    def failing(name, data, targets):
        calls.append(targets)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.files, "write_linked", failing)
    with pytest.raises(OSError):
        state.apply(r, r.lsn + STEP)
    monkeypatch.undo()
    state.abandon()  # what the applier does before it tries the batch again
    state.commit()
    assert calls and listing(state, ALICE) == [] and state.mailboxes.usage(ALICE) == (0, 0)
    assert state.committed_lsn < r.lsn + STEP
    apply(state, r, replay=True)  # the applier's retry
    assert len(listing(state, ALICE)) == 1 and len(listing(state, BOB)) == 1


def test_a_disk_full_that_rolls_the_whole_batch_back_loses_no_record(state, j, monkeypatch):
    """SQLITE_FULL and I/O errors make SQLite roll back the whole open transaction by
    itself: the batch is applied again from the last commit, none of it skipped."""
    batch = [j.message(qid=f"b{i}", rcpts=(ALICE,)) for i in range(3)]
    before = state.committed_lsn
    state.apply(batch[0], batch[0].lsn + STEP)
    real = state._apply

    def full(record, replay):
        state.index.writer.execute("ROLLBACK")  # what SQLite did on its own
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(state, "_apply", full)
    with pytest.raises(sqlite3.OperationalError):
        state.apply(batch[1], batch[1].lsn + STEP)
    monkeypatch.setattr(state, "_apply", real)
    state.abandon()
    assert state.applied_lsn == before and not state.index.in_transaction
    for r in batch:  # the applier's retry, as a replay: the first file exists already
        if r.lsn + STEP > state.applied_lsn:
            state.apply(r, r.lsn + STEP, replay=True)
    state.commit()
    assert sorted(n for n, _ in listing(state, ALICE)) == sorted(uid_of(r) for r in batch)
    assert state.mailboxes.usage(ALICE)[0] == 3
    assert opened(state.directory).committed_lsn == batch[-1].lsn + STEP


def test_a_record_this_code_cannot_apply_is_left_out_not_fatal(state, j, monkeypatch, caplog):
    bad, good = j.message(qid="bad", rcpts=(ALICE,)), j.message(qid="good", rcpts=(ALICE,))
    real = state._apply

    def broken(record, replay):
        if record.lsn == bad.lsn:
            real(record, replay)  # half done, then a bug
            raise ValueError("a bug")
        return real(record, replay)

    monkeypatch.setattr(state, "_apply", broken)
    state.apply(bad, bad.lsn + STEP)
    state.apply(good, good.lsn + STEP)
    state.commit()
    assert [n for n, _ in listing(state, ALICE)] == [uid_of(good)]  # the half is undone
    assert state.committed_lsn == good.lsn + STEP
    assert f"lsn {bad.lsn} (message_accepted) not applied" in caplog.text


def test_a_recipient_named_twice_gets_one_copy(state, j):
    r = j.message(qid="twice", rcpts=(ALICE, ALICE, BOB))
    assert apply(state, r) == 2
    assert len(listing(state, ALICE)) == 1 and state.mailboxes.usage(ALICE)[0] == 1


def test_a_checkpoint_prunes_spooled_records_of_messages_no_longer_queued(state, j):
    queued = j.message(qid="a", rcpts=(), relay=(REMOTE,))
    done = j.message(qid="b", rcpts=(), relay=(REMOTE,))
    apply(state, queued)
    apply(state, done)
    apply(state, result(j, done.lsn, (REMOTE, DeliveryResult.DELIVERED)))
    os.makedirs(state.spool)
    for name in (str(queued.lsn), str(done.lsn), "x.tmp"):
        open(os.path.join(state.spool, name), "wb").close()
    state.checkpoint()
    assert sorted(os.listdir(state.spool)) == sorted([str(queued.lsn), "x.tmp"])


def test_wipe_forgets_everything_and_restarts_at_the_given_lsn(state, j):
    for r in history(j):
        apply(state, r)
    state.wipe(start_lsn=4096)
    assert len(state.users) == 0 and len(state.queue.entries) == 0 and len(state.recent_ids) == 0
    assert state.applied_lsn == state.checkpoint_lsn == 4096 and state.epoch == 0
    assert listing(state, BOB) == [] and not os.path.exists(state.files.path(BOB))


def test_an_interrupted_replacement_is_remembered_until_it_ends(state):
    assert state.incomplete() is None
    state.begin_replace("rebuild after a divergence")
    assert state.replacing and state.incomplete() == "rebuild after a divergence"
    reopened = ShardState(0, state.directory)
    assert reopened.incomplete() == "rebuild after a divergence"
    state.end_replace()
    assert not state.replacing and state.incomplete() is None

"""The delivery queue (mailnode/delivery/queue.py) as the applier changes it, in the
shard index's table (a real SQLite file), and what the delivery engine takes from it
at a given time (DeliveryEngine._due, on a plain shard)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from mailnode.delivery.engine import DeliveryEngine
from mailnode.delivery.queue import Queue
from mailnode.proto.journal_pb2 import DeliveryResult, MessageAccepted, QueueControl
from mailnode.store.index import Index
from mailnode.store.queue_table import QueueTable

A, B, C = "a@one.example", "b@two.example", "c@three.example"
DELIVERED, DEFERRED = DeliveryResult.DELIVERED, DeliveryResult.DEFERRED
BOUNCED, EXPIRED = DeliveryResult.BOUNCED, DeliveryResult.EXPIRED
T0 = 1_700_000_000 * 10**9


def accepted(*relay, local=(), qid="q", sender="s@example.org", data=b"12345") -> MessageAccepted:
    m = MessageAccepted(queue_id=qid, mail_from=sender, data=data)
    m.recipients.extend(local)
    m.relay_recipients.extend(relay)
    return m


def result(lsn, *outcomes, next_attempt_ns=0, delay_warned=False) -> DeliveryResult:
    r = DeliveryResult(message_lsn=lsn, next_attempt_ns=next_attempt_ns, delay_warned=delay_warned)
    for address, outcome in outcomes:
        r.recipients.add(address=address, outcome=outcome, reply=f"{outcome} from {address}")
    return r


def control(action, *lsns) -> QueueControl:
    return QueueControl(action=action, message_lsns=lsns)


_dirs = {}
_count = itertools.count()


@pytest.fixture(autouse=True)
def _where(tmp_path):
    _dirs["now"] = tmp_path


def Queue_() -> Queue:
    """A queue on a new index file, as the applier has it."""
    return Queue(QueueTable(Index(str(_dirs["now"] / f"q{next(_count)}.db"))))


def committed(q: Queue) -> Queue:
    q.entries.index.commit()  # type: ignore[attr-defined]
    return q


@pytest.fixture
def q() -> Queue:
    q = Queue_()
    q.add(100, accepted(A, B, qid="q100"), T0)
    return q


# -- add ---------------------------------------------------------------------------------


def test_a_message_without_relay_recipients_is_not_queued():
    q = Queue_()
    q.add(5, accepted(local=[A]), T0)
    assert q.entries == {}


def test_an_added_entry_describes_the_message_and_is_due_at_once():
    q = Queue_()
    q.add(7, accepted(B, A, B, qid="x", sender="", data=b"abc"), T0)
    e = q.entries[7]
    assert (e.lsn, e.queue_id, e.sender, e.arrival_ns, e.size) == (7, "x", "", T0, 3)
    assert e.pending == [B, A]  # each recipient once, in order
    assert e.next_attempt_ns == 0 and e.attempts == 0
    assert not e.held and not e.warned and e.last_reply == {}


# -- delivery results ----------------------------------------------------------------------


def test_a_delivered_recipient_is_no_longer_pending(q):
    q.result(result(100, (A, DELIVERED)))
    assert q.entries[100].pending == [B]


@pytest.mark.parametrize("outcome", [DELIVERED, BOUNCED, EXPIRED])
def test_the_entry_goes_when_its_last_recipient_is_final(q, outcome):
    q.result(result(100, (A, outcome), (B, outcome)))
    assert 100 not in q.entries


def test_a_final_outcome_alone_does_not_count_an_attempt_or_reschedule(q):
    q.result(result(100, (A, BOUNCED), next_attempt_ns=T0 + 5))
    e = q.entries[100]
    assert e.attempts == 0 and e.next_attempt_ns == 0


def test_a_deferral_counts_one_attempt_and_sets_the_next_attempt(q):
    q.result(result(100, (A, DEFERRED), (B, DEFERRED), next_attempt_ns=T0 + 60))
    e = q.entries[100]
    assert e.attempts == 1  # one attempt, however many recipients it deferred
    assert e.next_attempt_ns == T0 + 60
    assert e.pending == [A, B]
    assert e.last_reply == {A: f"{DEFERRED} from {A}", B: f"{DEFERRED} from {B}"}


def test_deferrals_accumulate_attempts_and_the_latest_schedule_wins(q):
    q.result(result(100, (A, DEFERRED), next_attempt_ns=T0 + 60))
    q.result(result(100, (A, DEFERRED), next_attempt_ns=T0 + 180))
    assert q.entries[100].attempts == 2 and q.entries[100].next_attempt_ns == T0 + 180


def test_a_partly_delivered_message_keeps_only_the_deferred_recipient(q):
    q.result(result(100, (A, DELIVERED), (B, DEFERRED), next_attempt_ns=T0 + 1))
    e = q.entries[100]
    assert e.pending == [B] and e.attempts == 1 and list(e.last_reply) == [B]


def test_a_final_outcome_clears_the_recipients_last_deferral_reply(q):
    q.result(result(100, (A, DEFERRED), (B, DEFERRED), next_attempt_ns=T0 + 1))
    q.result(result(100, (A, DELIVERED)))
    assert list(q.entries[100].last_reply) == [B]


def test_a_delay_warning_is_remembered(q):
    q.result(result(100, (A, DEFERRED), next_attempt_ns=T0 + 1, delay_warned=True))
    assert q.entries[100].warned


def test_a_result_for_a_message_no_longer_queued_is_ignored(q):
    q.result(result(999, (A, DELIVERED)))
    assert list(q.entries) == [100] and q.entries[100].pending == [A, B]


def test_a_result_for_a_recipient_not_pending_changes_no_pending_list(q):
    q.result(result(100, (C, DELIVERED)))
    assert q.entries[100].pending == [A, B]


# -- operator commands -----------------------------------------------------------------------


def test_hold_and_release(q):
    q.control(control(QueueControl.HOLD, 100))
    assert q.entries[100].held
    q.control(control(QueueControl.RELEASE, 100))
    assert not q.entries[100].held


def test_delete_drops_the_entry_without_a_result(q):
    q.control(control(QueueControl.DELETE, 100))
    assert q.entries == {}


def test_flush_makes_a_deferred_entry_due_now_but_keeps_it_held(q):
    q.result(result(100, (A, DEFERRED), next_attempt_ns=T0 + 3600))
    q.control(control(QueueControl.HOLD, 100))
    q.control(control(QueueControl.FLUSH, 100))
    e = q.entries[100]
    assert e.next_attempt_ns == 0 and e.held and e.attempts == 1


def test_requeue_releases_makes_due_and_allows_another_delay_warning(q):
    q.result(result(100, (A, DEFERRED), next_attempt_ns=T0 + 3600, delay_warned=True))
    q.control(control(QueueControl.HOLD, 100))
    q.control(control(QueueControl.REQUEUE, 100))
    e = q.entries[100]
    assert e.next_attempt_ns == 0 and not e.held and not e.warned
    assert e.attempts == 1  # the history stays


def test_a_command_acts_on_every_named_entry_and_skips_unknown_ones(q):
    q.add(200, accepted(C), T0)
    q.add(300, accepted(C), T0)
    q.control(control(QueueControl.HOLD, 100, 555, 300))
    assert [lsn for lsn, e in q.entries.items() if e.held] == [100, 300]
    q.control(control(QueueControl.DELETE, 300, 100, 777))
    assert list(q.entries) == [200]


def test_drop_forgets_an_entry_and_tolerates_an_unknown_lsn(q):
    q.drop(12345)
    q.drop(100)
    assert q.entries == {}


# -- persistence -----------------------------------------------------------------------------


def test_the_queue_is_the_same_when_its_index_is_opened_again(q):
    q.add(200, accepted(C, qid="q200"), T0 + 9)
    q.result(result(100, (A, DELIVERED), (B, DEFERRED), next_attempt_ns=T0 + 60, delay_warned=True))
    q.control(control(QueueControl.HOLD, 200))
    table = q.entries
    table.index.commit()  # type: ignore[attr-defined]
    before = dict(table)
    again = QueueTable(Index(table.index.path))  # type: ignore[attr-defined]
    assert dict(again) == before and list(again) == [100, 200]
    assert before[100].warned and before[100].pending == [B] and before[200].held


# -- what is due (DeliveryEngine._due) ----------------------------------------------------------


def engine() -> DeliveryEngine:
    e = DeliveryEngine.__new__(DeliveryEngine)  # the scheduler's bookkeeping only, no node
    e._running, e._failed_until = {}, {}
    e.cfg = SimpleNamespace(concurrency=10)  # type: ignore[assignment]
    return e


def shard_of(q: Queue):
    committed(q)
    return SimpleNamespace(id=0, state=SimpleNamespace(queue_table=q.entries))


def scheduled(*next_attempts) -> Queue:
    """A queue of entries at lsns 10, 20, ... deferred until the given times (0: due now)."""
    q = Queue_()
    for i, at in enumerate(next_attempts, 1):
        q.add(10 * i, accepted(A), T0)
        if at:
            q.result(result(10 * i, (A, DEFERRED), next_attempt_ns=at))
    return q


def due_lsns(q: Queue, now: int, eng=None) -> tuple[list[int], int | None]:
    due, later = (eng or engine())._due(shard_of(q), now)
    return [e.lsn for e in due], later


def test_new_entries_are_due_at_once_and_nothing_is_due_later():
    assert due_lsns(scheduled(0, 0), T0) == ([10, 20], None)


def test_deferred_entries_fall_due_in_next_attempt_order():
    q = scheduled(T0 + 300, T0 + 100, T0 + 200)
    assert due_lsns(q, T0) == ([], T0 + 100)
    assert due_lsns(q, T0 + 100) == ([20], T0 + 200)
    assert due_lsns(q, T0 + 250) == ([20, 30], T0 + 300)
    assert due_lsns(q, T0 + 300) == ([20, 30, 10], None)  # the longest due first


def test_an_entry_is_due_exactly_at_its_next_attempt_time():
    q = scheduled(T0 + 100)
    assert due_lsns(q, T0 + 99) == ([], T0 + 100)
    assert due_lsns(q, T0 + 100) == ([10], None)


def test_a_held_entry_is_never_due_nor_sets_the_next_wake():
    q = scheduled(0, T0 + 100)
    q.control(control(QueueControl.HOLD, 10, 20))
    assert due_lsns(q, T0 + 10**12) == ([], None)
    q.control(control(QueueControl.RELEASE, 20))
    assert due_lsns(q, T0) == ([], T0 + 100)


def test_a_flushed_entry_is_due_now():
    q = scheduled(T0 + 3600)
    q.control(control(QueueControl.FLUSH, 10))
    assert due_lsns(q, T0) == ([10], None)


def test_an_entry_being_attempted_or_recently_failed_is_not_due_again():
    q = scheduled(0, 0, 0)
    eng = engine()
    eng._running[(0, 10)] = object()
    eng._failed_until[(0, 20)] = float("inf")
    eng._failed_until[(0, 30)] = 0.0  # its back-off is over
    assert due_lsns(q, T0, eng) == ([30], None)


def test_due_entries_are_copies_the_attempt_may_change_freely():
    q = scheduled(0)
    [copy], _ = engine()._due(shard_of(q), T0)
    copy.pending.append(C)
    copy.last_reply[A] = "changed"
    assert q.entries[10].pending == [A] and q.entries[10].last_reply == {}


def test_what_the_applier_has_not_committed_is_not_due_yet():
    q = scheduled(0)
    shard = shard_of(q)
    q.add(20, accepted(A), T0)  # in the applier's open transaction
    assert [e.lsn for e in engine()._due(shard, T0)[0]] == [10]
    committed(q)
    assert [e.lsn for e in engine()._due(shard, T0)[0]] == [10, 20]


def test_more_due_than_one_look_takes_means_look_again_at_once():
    q = scheduled(*([0] * 25))
    due, later = engine()._due(shard_of(q), T0)
    assert len(due) == 20 and later == T0  # 2 x concurrency per look

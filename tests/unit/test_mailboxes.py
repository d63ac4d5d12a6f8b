"""Folder, flag, copy and expunge records applied to the shard index and its Maildir++
files (a real SQLite file and real files under tmp_path), their replay, and the move
of a state.json shard into the index."""

from __future__ import annotations

import json
import os

import pytest

from mailnode.errors import AlreadyExists
from mailnode.proto.journal_pb2 import FlagsChanged, FolderChanged, JournalRecord
from mailnode.store.mailboxes import copy_name, folder_dir, folder_of_dir
from unit.test_state import ALICE, Journal, apply, opened, picture


@pytest.fixture
def j() -> Journal:
    return Journal()


def folder(j: Journal, action, name: str, new_name: str = "") -> JournalRecord:
    r = j.record()
    c = r.folder_changed
    c.mailbox, c.action, c.folder, c.new_name = ALICE, action, name, new_name
    return r


def flags(j: Journal, name: str, uids, mode, *fl: str) -> JournalRecord:
    r = j.record()
    f = r.flags_changed
    f.mailbox, f.folder, f.mode = ALICE, name, mode
    f.uids.extend(uids)
    f.flags.extend(fl)
    return r


def copied(j: Journal, name: str, uids, target: str, move=False) -> JournalRecord:
    r = j.record()
    c = r.messages_copied
    c.mailbox, c.folder, c.target, c.move = ALICE, name, target, move
    c.uids.extend(uids)
    return r


def expunged(j: Journal, name: str, uids) -> JournalRecord:
    r = j.record()
    r.expunged.mailbox, r.expunged.folder = ALICE, name
    r.expunged.uid_numbers.extend(uids)
    return r


def history(j: Journal) -> list[JournalRecord]:
    add = j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "h"
    msgs = [j.message(qid=f"m{i}", data=f"Subject: {i}\r\n\r\n{i}\r\n".encode()) for i in range(5)]
    return [
        add,
        *msgs,
        folder(j, FolderChanged.CREATE, "Archive"),
        folder(j, FolderChanged.CREATE, "Lists/py"),
        folder(j, FolderChanged.SUBSCRIBE, "Archive"),
        flags(j, "INBOX", [1, 2, 3], FlagsChanged.ADD, "\\Seen"),
        flags(j, "INBOX", [2], FlagsChanged.ADD, "\\Flagged", "$Work"),
        flags(j, "INBOX", [3], FlagsChanged.REMOVE, "\\Seen"),
        copied(j, "INBOX", [2], "Archive", move=True),
        copied(j, "INBOX", [1, 4], "Lists/py"),
        expunged(j, "INBOX", [5]),
        folder(j, FolderChanged.RENAME, "Lists", "Old"),
    ]


def test_every_mailbox_record_does_what_it_says(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    for r in history(j):
        apply(state, r)
    mb = state.mailboxes
    assert [(f.name, f.messages, f.subscribed) for f in mb.folders(ALICE)] == [
        ("Archive", 1, True),
        ("INBOX", 3, False),
        ("Old", 0, False),  # made with Lists/py, as IMAP CREATE makes superiors
        ("Old/py", 2, False),
    ]
    inbox = {m.uid: m for m in mb.messages(ALICE)}
    assert sorted(inbox) == [1, 3, 4] and inbox[1].flags == ("\\Seen",) and inbox[3].flags == ()
    [moved] = mb.messages(ALICE, "Archive")
    assert moved.uid == 1 and moved.flags == ("$Work", "\\Flagged", "\\Seen")
    # The file names carry the Maildir flags; a folder is a Maildir++ dot-directory.
    box = state.files.path(ALICE)
    assert os.listdir(os.path.join(box, ".Archive", "cur")) == [moved.name + ":2,FS"]
    assert moved.path == "cur/" + moved.name + ":2,FS"
    for m in mb.messages(ALICE, "Old/py"):
        assert os.path.exists(os.path.join(box, ".Old.py", m.path))
    assert not os.path.exists(os.path.join(box, ".Lists.py"))
    assert mb.usage(ALICE)[0] == 6  # 3 + 1 + 2 copies
    assert mb.read(ALICE, moved.name, "Archive") == b"Subject: 1\r\n\r\n1\r\n"


def test_modification_sequences_grow_with_every_change_and_only_then(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    recs = history(j)
    for r in recs[:6]:
        apply(state, r)
    before = state.mailboxes.folder(ALICE, "INBOX")
    apply(state, flags(j, "INBOX", [1], FlagsChanged.ADD, "\\Seen"))
    after = state.mailboxes.folder(ALICE, "INBOX")
    assert after.highest_modseq == before.highest_modseq + 1
    assert state.mailboxes.messages(ALICE)[0].modseq == after.highest_modseq
    apply(state, flags(j, "INBOX", [1], FlagsChanged.ADD, "\\Seen"))  # no change: no modseq
    assert state.mailboxes.folder(ALICE, "INBOX").highest_modseq == after.highest_modseq


def test_a_folder_made_again_under_an_old_name_gets_a_new_uidvalidity(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    for r in history(j)[:1]:
        apply(state, r)
    apply(state, folder(j, FolderChanged.CREATE, "Sent"))
    first = state.mailboxes.folder(ALICE, "Sent").uidvalidity
    apply(state, folder(j, FolderChanged.DELETE, "Sent"))
    apply(state, folder(j, FolderChanged.CREATE, "Sent"))  # the same second of the clock
    assert state.mailboxes.folder(ALICE, "Sent").uidvalidity > first


def test_records_that_no_longer_fit_change_nothing(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    for r in history(j):
        apply(state, r)
    want = picture(state)
    for r in (
        folder(j, FolderChanged.CREATE, "Archive"),  # exists
        folder(j, FolderChanged.RENAME, "INBOX", "X"),
        folder(j, FolderChanged.DELETE, "INBOX"),
        folder(j, FolderChanged.RENAME, "Nope", "X"),
        copied(j, "INBOX", [1], "Nope"),
        flags(j, "Nope", [1], FlagsChanged.ADD, "\\Seen"),
        expunged(j, "INBOX", [99]),
    ):
        apply(state, r)
    got = picture(state)
    assert {k: v for k, v in got.items() if k != "applied"} == {
        k: v for k, v in want.items() if k != "applied"
    }


@pytest.mark.parametrize("cut", [6, 9, 12])
def test_a_crash_with_mailbox_changes_on_disk_but_not_committed_replays_exactly(tmp_path, j, cut):
    """Files renamed, linked and removed by records whose index batch died with the
    process: the replay from the last commit gives the live state, files and all."""
    records = history(j)
    live = opened(str(tmp_path / "live"))
    for r in records:
        apply(live, r)
    crashed = opened(str(tmp_path / "crashed"))
    for r in records[:cut]:
        apply(crashed, r)
    for r in records[cut:]:
        apply(crashed, r, commit=False)
    crashed.index.close()
    again = opened(str(tmp_path / "crashed"))
    for r in records[cut:]:
        apply(again, r, replay=True)
    assert picture(again) == picture(live)


def test_replaying_the_whole_mailbox_history_into_an_empty_directory(tmp_path, j):
    records = history(j)
    live, fresh = opened(str(tmp_path / "a")), opened(str(tmp_path / "b"))
    for r in records:
        apply(live, r)
        apply(fresh, r, replay=True)
    assert picture(fresh) == picture(live)


def test_folder_names_map_to_maildir_plus_plus_and_back():
    for name in ("INBOX", "Sent", "Lists/python", "a.b/c", "Ünïcode", "50%"):
        d = folder_dir(name)
        assert folder_of_dir(d) == name
        assert name == "INBOX" or (d.startswith(".") and "/" not in d)
    assert folder_dir("a.b/c") == ".a%2Eb.c"
    assert copy_name("1700000000.S0L100.mailcluster,S=42", "S0C900", 1) == (
        "1700000000.S0C900N1.mailcluster,S=42"
    )


def test_a_state_json_shard_moves_into_the_index(tmp_path, j):
    """What a shard of the previous release has: state.json, recent_ids.log, Maildirs
    (one message read and flagged by a mail reader)."""
    d = tmp_path / "old"
    box = d / "maildir" / "example.test" / "_alice"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1700000001.S0L200.mailcluster,S=5").write_bytes(b"first")
    (box / "cur" / "1700000002.S0L300.mailcluster,S=6:2,RS").write_bytes(b"second")
    queued = {
        "lsn": 400,
        "queue_id": "q4",
        "sender": "s@x",
        "arrival_ns": 1,
        "size": 3,
        "pending": ["r@remote.example"],
        "next_attempt_ns": 0,
        "attempts": 2,
        "held": False,
        "warned": False,
        "last_reply": {},
    }
    doc = {
        "shard": 0,
        "applied_lsn": 500,
        "epoch": 3,
        "users": {ALICE: "hash"},
        "salvaged": ["n1/1/0"],
        "queue": [queued],
    }
    (d / "state.json").write_text(json.dumps(doc))
    (d / "recent_ids.log").write_text("q2 200\nq3 300\nq4 400\nq3 -\nq9 900\n")
    state = opened(str(d))
    assert state.legacy()
    state.migrate_legacy()
    again = opened(str(d))
    assert not (d / "state.json").exists() and not again.legacy()
    assert again.applied_lsn == 500 and again.epoch == 3 and dict(again.users) == {ALICE: "hash"}
    assert "n1/1/0" in again.salvaged and again.queue.entries[400].attempts == 2
    assert (again.recent_ids.get("q2"), again.recent_ids.get("q3"), again.recent_ids.get("q9")) == (
        200,
        None,
        None,  # taken back; past the checkpoint (the replay adds it)
    )
    msgs = again.mailboxes.messages(ALICE)
    assert [(m.uid, m.flags) for m in msgs] == [(1, ()), (2, ("\\Answered", "\\Seen"))]
    assert again.mailboxes.read(ALICE, msgs[1].name) == b"second"
    assert again.mailboxes.usage(ALICE) == (2, 11)


def test_rename_takes_exactly_the_folder_and_those_below_it(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    for name in ("Work", "Work/old", "work", "work/old", "Workshop"):
        apply(state, folder(j, FolderChanged.CREATE, name))
    apply(state, folder(j, FolderChanged.RENAME, "Work", "Jobs/2026"))
    names = sorted(f.name for f in state.mailboxes.folders(ALICE))
    # IMAP names are case-sensitive: "work" is another folder; the superior level of
    # the new name is made (RFC 3501 RENAME)
    assert names == ["INBOX", "Jobs", "Jobs/2026", "Jobs/2026/old", "Workshop", "work", "work/old"]
    root = state.files.root
    dirs = sorted(
        d for d in os.listdir(os.path.join(root, state.files.ensure(ALICE))) if d.startswith(".")
    )
    assert ".Jobs.2026" in dirs and ".Jobs.2026.old" in dirs and ".work.old" in dirs
    assert ".Work" not in dirs and ".Work.old" not in dirs


def test_a_rename_onto_a_name_below_that_exists_is_refused_and_changes_nothing(tmp_path, j):
    state = opened(str(tmp_path / "s"))
    for r in (
        folder(j, FolderChanged.CREATE, "B/x"),
        folder(j, FolderChanged.DELETE, "B"),
        folder(j, FolderChanged.CREATE, "A/x"),
    ):
        apply(state, r)
    mb = state.mailboxes
    taken = mb.rename_conflict(ALICE, "A", "B")
    assert isinstance(taken, AlreadyExists) and str(taken) == f"{ALICE} has a folder 'B/x'"
    assert "below itself" in str(mb.rename_conflict(ALICE, "A", "A/y"))
    want = picture(state)
    apply(state, folder(j, FolderChanged.RENAME, "A", "B"))  # checked against an older index
    apply(state, folder(j, FolderChanged.RENAME, "A", "A/y"))
    got = picture(state)
    assert {k: v for k, v in got.items() if k != "applied"} == {
        k: v for k, v in want.items() if k != "applied"
    }


def test_replaying_a_rename_leaves_a_new_folder_of_the_old_name_alone(tmp_path, j):
    """rename A -> B, create A, copy into A, then a crash before the index commit: the
    replay moves only A's old messages into B, not the new A's."""
    add = j.record()
    add.user_added.address, add.user_added.password_hash = ALICE, "h"
    msgs = [j.message(qid=f"m{i}") for i in range(3)]
    head = [
        add,
        *msgs,
        folder(j, FolderChanged.CREATE, "A"),
        copied(j, "INBOX", [1], "A"),
    ]
    tail = [
        folder(j, FolderChanged.RENAME, "A", "B"),
        folder(j, FolderChanged.CREATE, "A"),
        copied(j, "INBOX", [2, 3], "A"),
    ]
    live = opened(str(tmp_path / "live"))
    for r in head + tail:
        apply(live, r)
    crashed = opened(str(tmp_path / "crashed"))
    for r in head:
        apply(crashed, r)
    for r in tail:
        apply(crashed, r, commit=False)
    crashed.index.close()
    again = opened(str(tmp_path / "crashed"))
    for r in tail:
        apply(again, r, replay=True)
    assert picture(again) == picture(live)
    assert [f.messages for f in again.mailboxes.folders(ALICE) if f.name in ("A", "B")] == [2, 1]


def test_lookups_by_name_use_the_name_index_not_a_folder_scan(tmp_path, j):
    """Replay and POP3 RETR find a message by its Maildir name: SQLite, without
    statistics, would read the whole folder by the primary key's prefix each time (the
    benchmark's 100,000-message mailbox replayed at 3.8 ms a message that way)."""
    state = opened(str(tmp_path / "s"))
    records = history(j)
    for r in records:
        apply(state, r)
    seen: list[str] = []
    for conn in (state.index.writer, state.index.reader()):
        conn.set_trace_callback(seen.append)
    for r in records:  # a replay looks each delivered message up by name
        apply(state, r, replay=True)
    [(name, _)] = state.mailboxes.listing(ALICE)[:1]
    assert state.mailboxes.read(ALICE, name) is not None
    lookups = {q for q in seen if "FROM messages" in q and ("m.name = " in q or "AND name = " in q)}
    assert len(lookups) >= 2
    for q in lookups:
        plan = state.index.writer.execute("EXPLAIN QUERY PLAN " + q).fetchall()
        assert any("messages_by_name" in row[-1] for row in plan), (q, plan)

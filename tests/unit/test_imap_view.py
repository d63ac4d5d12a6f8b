"""What IMAP reads of the index (mailnode.imap.view) and the records it adds to the
store: expunge tombstones (QRESYNC), APPEND's folder, flags and internal date on
MessageAccepted, SPECIAL-USE folders named in UserAdded."""

from __future__ import annotations

import os

from mailnode.imap import view
from mailnode.proto.journal_pb2 import FlagsChanged
from mailnode.store.mailboxes import SPECIAL_USE
from unit.test_mailboxes import copied, expunged, flags
from unit.test_state import ALICE, Journal, apply, opened


def _user(j: Journal, folders=()):
    r = j.record()
    r.user_added.address, r.user_added.password_hash = ALICE, "h"
    r.user_added.folders.extend(folders)
    return r


def test_a_new_user_gets_the_folders_its_record_names_subscribed(tmp_path):
    j = Journal()
    state = opened(str(tmp_path / "s"))
    apply(state, _user(j, sorted(SPECIAL_USE)))
    got = {(f.name, f.subscribed) for f in state.mailboxes.folders(ALICE)}
    assert got == {("INBOX", False)} | {(n, True) for n in SPECIAL_USE}
    # An older record names none: replaying it makes only the INBOX, as it did.
    other = opened(str(tmp_path / "t"))
    apply(other, _user(Journal()))
    assert [f.name for f in other.mailboxes.folders(ALICE)] == ["INBOX"]


def test_an_appended_message_goes_to_its_folder_with_its_flags_and_date(tmp_path):
    j = Journal()
    state = opened(str(tmp_path / "s"))
    apply(state, _user(j, ["Sent"]))
    r = j.message(qid="", data=b"Subject: sent\r\n\r\nx\r\n")
    m = r.message_accepted
    m.folder, m.internal_ns = "Sent", 1_700_000_000_123_000_000
    m.flags.extend(["\\Seen", "$Sent"])
    apply(state, r)
    [msg] = state.mailboxes.messages(ALICE, "Sent")
    assert msg.uid == 1 and set(msg.flags) == {"\\Seen", "$Sent"}
    assert msg.internal_ns == 1_700_000_000_123_000_000
    assert msg.path.startswith("cur/") and msg.path.endswith(":2,S")
    box = state.files.path(ALICE)
    assert os.path.exists(os.path.join(box, ".Sent", msg.path))
    assert state.mailboxes.messages(ALICE) == []  # not in the INBOX


def test_changes_since_a_modseq_name_new_reflagged_and_expunged_uids(tmp_path):
    j = Journal()
    state = opened(str(tmp_path / "s"))
    apply(state, _user(j, ["Trash"]))
    for i in range(4):
        apply(state, j.message(qid=f"q{i}", data=f"Subject: {i}\r\n\r\n{i}\r\n".encode()))
    inbox = state.mailboxes.folder(ALICE, "INBOX")
    assert inbox is not None
    snap = view.snapshot(state.index, inbox.id)
    assert snap is not None and [u for u, _, _ in snap.rows] == [1, 2, 3, 4]
    since = snap.folder.highest_modseq
    assert view.changes(state.index, inbox.id, since).changed == []
    apply(state, flags(j, "INBOX", [2], FlagsChanged.ADD, "\\Seen"))
    apply(state, expunged(j, "INBOX", [3]))
    apply(state, copied(j, "INBOX", [4], "Trash", move=True))
    apply(state, j.message(qid="q9", data=b"Subject: 9\r\n\r\n9\r\n"))
    ch = view.changes(state.index, inbox.id, since)
    assert [(u, fl) for u, fl, _ in ch.changed] == [(2, ("\\Seen",)), (5, ())]
    assert ch.expunged == [3, 4]
    assert ch.folder is not None and ch.folder.highest_modseq > since
    # Tombstones carry the modseq of their expunge: later asks see only later ones.
    after = view.changes(state.index, inbox.id, ch.folder.highest_modseq)
    assert after.changed == [] and after.expunged == []
    st = view.status(state.index, ALICE, "INBOX")
    assert st is not None and (st.messages, st.unseen, st.deleted) == (3, 2, 0)
    rows = view.messages(state.index, inbox.id, [1, 2, 3, 5])
    assert sorted(rows) == [1, 2, 5]
    assert view.uids_by_name(state.index, inbox.id, [rows[5].name]) == {rows[5].name: 5}
    assert view.read_file(state.mailboxes, ALICE, inbox, rows[5]) == b"Subject: 9\r\n\r\n9\r\n"

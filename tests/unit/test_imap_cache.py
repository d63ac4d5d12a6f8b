"""The index's header cache (imap.message.cached_header) answers exactly what the
message file would: ENVELOPE, HEADER.FIELDS of cached names and header(), for every
message of the corpus; and the store keeps it through delivery and copy."""

from __future__ import annotations

import pathlib

import pytest

from mailnode.imap import view
from mailnode.imap.message import CACHED_FIELDS, ParsedMessage, cached_header
from unit.test_mailboxes import copied
from unit.test_state import ALICE, Journal, apply, opened

CORPUS = sorted((pathlib.Path(__file__).parent.parent / "data" / "imap_corpus").glob("*.eml"))
FIELD_SETS = [
    ("FROM", "TO", "SUBJECT", "DATE", "MESSAGE-ID"),
    ("From", "Cc", "Bcc", "Reply-To", "Sender"),
    ("REFERENCES", "IN-REPLY-TO", "CONTENT-TYPE", "X-PRIORITY", "LIST-ID"),
]


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_cached_lines_answer_as_the_whole_message_does(path):
    for raw in (path.read_bytes(), _crlf(path.read_bytes())):
        blob = cached_header(raw)
        if blob is None:
            continue  # not cacheable exactly: the server reads the file
        whole, cached = ParsedMessage(raw), ParsedMessage(blob)
        assert cached.envelope() == whole.envelope()
        assert cached.envelope(utf8=True) == whole.envelope(utf8=True)
        for fields in FIELD_SETS:
            assert cached.section((), "HEADER.FIELDS", fields) == whole.section(
                (), "HEADER.FIELDS", fields
            )
        for name in CACHED_FIELDS:
            assert cached.header(name) == whole.header(name)
        assert cached.sent_date() == whole.sent_date()


def test_most_of_the_corpus_is_cacheable():
    cacheable = [p.name for p in CORPUS if cached_header(_crlf(p.read_bytes())) is not None]
    assert len(cacheable) >= len(CORPUS) * 2 // 3, cacheable


def test_the_store_keeps_the_cache_with_a_message_and_its_copies(tmp_path):
    j = Journal()
    state = opened(str(tmp_path / "s"))
    r = j.record()
    r.user_added.address, r.user_added.password_hash = ALICE, "h"
    r.user_added.folders.append("Archive")
    apply(state, r)
    raw = b"From: a@b.test\r\nSubject: cached\r\nX-Other: not\r\n\r\nbody\r\n"
    apply(state, j.message(qid="q", data=raw))
    apply(state, copied(j, "INBOX", [1], "Archive"))
    for name in ("INBOX", "Archive"):
        f = state.mailboxes.folder(ALICE, name)
        assert f is not None
        assert view.cached(state.index, f.id, [1]) == {
            1: b"From: a@b.test\r\nSubject: cached\r\n\r\n"
        }

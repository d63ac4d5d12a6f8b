"""The SEARCH fast paths agree with mailnode.imap.search on every input tried: the
compiled index predicate gives the same answer as search.matches for random key trees
over random messages, and the content prefilter never rules out a message that
matches (seeded, bounded)."""

from __future__ import annotations

import pathlib
import random
from datetime import UTC, date, datetime

from mailnode.imap import fastsearch
from mailnode.imap.message import ParsedMessage
from mailnode.imap.parser import SequenceSet
from mailnode.imap.search import Candidate, matches
from mailnode.store.mailboxes import Message

CORPUS = sorted((pathlib.Path(__file__).parent.parent / "data" / "imap_corpus").glob("*.eml"))
FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Work", "$work", "Junk"]
NOW = 1_790_000_000.0


def _key(rnd: random.Random, depth: int = 0) -> tuple:
    ops = ["FLAG", "NOTFLAG", "UID", "SEQ", "LARGER", "SMALLER", "BEFORE", "ON", "SINCE"]
    ops += ["MODSEQ", "OLDER", "YOUNGER", "ALL", "RECENT"]
    if depth < 3:
        ops += ["AND", "OR", "NOT"] * 2
    op = rnd.choice(ops)
    if op == "AND":
        return ("AND", [_key(rnd, depth + 1) for _ in range(rnd.randint(2, 3))])
    if op == "OR":
        return ("OR", _key(rnd, depth + 1), _key(rnd, depth + 1))
    if op == "NOT":
        return ("NOT", _key(rnd, depth + 1))
    if op in ("FLAG", "NOTFLAG"):
        return (op, rnd.choice([*FLAGS, "\\Recent", "$WORK"]))
    if op in ("UID", "SEQ"):
        lo = rnd.randint(1, 60)
        hi = rnd.choice([lo, lo + rnd.randint(0, 20), None])
        return (op, SequenceSet(((lo, hi), (rnd.randint(1, 60), rnd.randint(1, 60)))))
    if op in ("LARGER", "SMALLER"):
        return (op, rnd.randint(0, 5000))
    if op in ("BEFORE", "ON", "SINCE"):
        return (op, date(2026, 9, rnd.randint(1, 30)))
    if op == "MODSEQ":
        return (op, rnd.randint(1, 100))
    if op in ("OLDER", "YOUNGER"):
        return (op, rnd.randint(0, 40 * 86400))
    return (op,)


def test_the_compiled_predicate_answers_as_search_matches():
    rnd = random.Random(20261208)
    for _round in range(40):
        uids = sorted(rnd.sample(range(1, 80), rnd.randint(0, 40)))
        flags = {u: tuple(rnd.sample(FLAGS, rnd.randint(0, 3))) for u in uids}
        modseqs = {u: rnd.randint(1, 100) for u in uids}
        rows = {
            u: Message(
                u,
                f"m{u}",
                rnd.randint(0, 5000),
                int((NOW - rnd.randint(0, 40 * 86400)) * 1e9),
                flags[u],
                modseqs[u],
                "new/x",
            )
            for u in uids
        }
        for _ in range(60):
            key = _key(rnd)
            small = {u: (m.size, m.internal_ns) for u, m in rows.items()}
            fast = fastsearch.compile_index_key(key, uids, flags, modseqs, small, now=NOW)
            assert fast is not None
            for seq, uid in enumerate(uids, 1):
                m = rows[uid]
                c = Candidate(
                    seq=seq,
                    uid=uid,
                    flags=frozenset(flags[uid]),
                    recent=False,
                    size=m.size,
                    internal_date=datetime.fromtimestamp(m.internal_ns / 1e9, UTC),
                    modseq=modseqs[uid],
                    load=lambda: None,
                )
                want = matches(key, c, len(uids), uids[-1], datetime.fromtimestamp(NOW, UTC))
                assert fast(seq, uid) == want, (key, uid)


def test_content_keys_are_not_compiled():
    assert fastsearch.compile_index_key(("HEADER", "FROM", "x"), [1], {}, {}, {}) is None
    key = ("AND", [("FLAG", "\\Seen"), ("BODY", "x")])
    assert fastsearch.compile_index_key(key, [1], {}, {}, {}) is None


def test_the_prefilter_never_rules_out_a_match():
    rnd = random.Random(7)
    for path in CORPUS:
        raw = path.read_bytes()
        p = ParsedMessage(raw)
        words = (p.text() + " " + " ".join(p.header("FROM") + p.header("SUBJECT"))).split()
        needles = [
            w[: rnd.randint(1, max(1, len(w)))] for w in rnd.sample(words, min(12, len(words)))
        ]
        needles += ["zanzibar", "report", "alice", "héllo", "a b"]
        hay = fastsearch.haystack(raw)
        for needle in needles:
            for key in (
                ("HEADER", "FROM", needle),
                ("HEADER", "SUBJECT", needle),
                ("BODY", needle),
                ("TEXT", needle),
                ("OR", ("BODY", needle), ("HEADER", "TO", needle)),
                ("AND", [("TEXT", needle), ("ALL",)]),
            ):
                c = Candidate(
                    1, 1, frozenset(), False, len(raw), datetime.now(UTC), 1, lambda p=p: p
                )
                if matches(key, c, 1, 1):
                    assert fastsearch.could_match(key, hay), (path.name, key)


def test_the_prefilter_says_no_for_absent_text_in_plain_messages():
    raw = b"From: Bob <bob@x.test>\r\nSubject: lunch\r\n\r\nsee you at noon\r\n"
    hay = fastsearch.haystack(raw)
    assert hay is not None
    assert not fastsearch.could_match(("BODY", "zanzibar"), hay)
    assert fastsearch.could_match(("BODY", "NOON"), hay)
    assert fastsearch.haystack(b"Subject: =?utf-8?q?x?=\r\n\r\n") is None

"""mailnode.imap.search: every SEARCH key, AND/OR/NOT nesting, and that only content
keys read the message (and then once)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import pytest

from mailnode.imap.message import ParsedMessage
from mailnode.imap.search import Candidate, SearchKey, matches, needs_content

UTC = datetime.UTC
MESSAGE = (
    b"Date: Fri, 4 Dec 2026 23:30:00 -0800\r\n"
    b"From: =?UTF-8?Q?Andr=C3=A9?= <andre@example.be>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: Quarterly =?utf-8?q?r=C3=A9sum=C3=A9?=\r\n"
    b"X-Empty:\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Le caf=C3=A9 est CHAUD.\r\n"
)
NOW = datetime.datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)


@dataclass
class Seqs:
    """A stand-in for the parser's sequence set: ranges, with None for "*"."""

    ranges: list[tuple[int, int | None]]

    def contains(self, n: int, largest: int) -> bool:
        for lo, hi in self.ranges:
            top = largest if hi is None else hi
            if min(lo, top) <= n <= max(lo, top):
                return True
        return False


class Loader:
    def __init__(self, raw: bytes | None) -> None:
        self.raw = raw
        self.calls = 0

    def __call__(self) -> ParsedMessage | None:
        self.calls += 1
        return None if self.raw is None else ParsedMessage(self.raw)


def candidate(raw: bytes | None = MESSAGE, **kw: object) -> tuple[Candidate, Loader]:
    loader = Loader(raw)
    fields: dict = {
        "seq": 3,
        "uid": 30,
        "flags": frozenset({"\\Seen", "$Forwarded"}),
        "recent": False,
        "size": 1000,
        "internal_date": datetime.datetime(
            2026, 12, 5, 1, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        "modseq": 17,
        "load": loader,
    }
    fields.update(kw)
    return Candidate(**fields), loader


def match(key: SearchKey, **kw: Any) -> bool:
    c, _ = candidate(**kw)
    return matches(key, c, largest_seq=5, largest_uid=50, now=NOW)


def test_all_seq_uid() -> None:
    assert match(("ALL",))
    assert match(("SEQ", Seqs([(1, 3)]))) and not match(("SEQ", Seqs([(4, None)])))
    assert match(("SEQ", Seqs([(3, 3)]))) and match(("SEQ", Seqs([(5, None)])), seq=5)
    assert match(("UID", Seqs([(30, None)]))) and not match(("UID", Seqs([(31, 40)])))
    assert match(("UID", Seqs([(60, None)])), uid=50)  # "*" is the largest UID


def test_flags_and_keywords_are_case_insensitive() -> None:
    assert match(("FLAG", "\\Seen")) and match(("FLAG", "\\SEEN"))
    assert match(("FLAG", "$forwarded")) and not match(("FLAG", "\\Deleted"))
    assert match(("NOTFLAG", "\\Deleted")) and not match(("NOTFLAG", "\\seen"))
    assert not match(("RECENT",)) and match(("RECENT",), recent=True)
    assert match(("FLAG", "\\Recent"), recent=True) and not match(("FLAG", "\\Recent"))


def test_size_and_modseq() -> None:
    assert match(("LARGER", 999)) and not match(("LARGER", 1000))
    assert match(("SMALLER", 1001)) and not match(("SMALLER", 1000))
    assert match(("MODSEQ", 17)) and not match(("MODSEQ", 18))


def dec(day: int) -> datetime.date:
    return datetime.date(2026, 12, day)


def test_internal_date_is_compared_in_utc() -> None:
    # 01:30 +0200 on Dec 5 is 23:30 UTC on Dec 4.
    assert match(("ON", dec(4))) and not match(("ON", dec(5)))
    assert match(("BEFORE", dec(5))) and not match(("BEFORE", dec(4)))
    assert match(("SINCE", dec(4))) and not match(("SINCE", dec(5)))


def test_sent_date_is_the_date_fields_own_day() -> None:
    # 23:30 -0800 on Dec 4 (Dec 5 in UTC): SENTON is Dec 4.
    assert match(("SENTON", dec(4))) and not match(("SENTON", dec(5)))
    assert match(("SENTBEFORE", dec(5))) and not match(("SENTBEFORE", dec(4)))
    assert match(("SENTSINCE", dec(4))) and not match(("SENTSINCE", dec(5)))
    undated = b"Subject: no date\r\n\r\nbody\r\n"
    assert not match(("SENTSINCE", dec(1)), raw=undated)
    assert not match(("SENTBEFORE", dec(31)), raw=undated)


def test_older_and_younger() -> None:
    age = (NOW - datetime.datetime(2026, 12, 4, 23, 30, tzinfo=UTC)).total_seconds()
    assert match(("OLDER", int(age))) and not match(("OLDER", int(age) + 1))
    assert match(("YOUNGER", int(age))) and not match(("YOUNGER", int(age) - 1))


def test_header_keys_match_decoded_text_case_insensitively() -> None:
    assert match(("HEADER", "FROM", "andré"))
    assert match(("HEADER", "FROM", "ANDRE@EXAMPLE"))
    assert match(("HEADER", "SUBJECT", "RÉSUMÉ"))
    assert not match(("HEADER", "SUBJECT", "=?utf-8?q?"))
    assert match(("HEADER", "TO", "bob"))
    assert not match(("HEADER", "CC", "bob"))
    assert match(("HEADER", "X-EMPTY", ""))  # an empty string: the field is there
    assert not match(("HEADER", "X-MISSING", ""))


def test_body_and_text() -> None:
    assert match(("BODY", "café est chaud"))
    assert not match(("BODY", "Quarterly"))
    assert match(("TEXT", "quarterly")) and match(("TEXT", "CHAUD"))
    assert not match(("TEXT", "absent"))


def test_a_message_gone_matches_no_content_key() -> None:
    assert not match(("BODY", ""), raw=None)
    assert not match(("HEADER", "FROM", ""), raw=None)
    assert match(("NOT", ("TEXT", "x")), raw=None)
    assert match(("FLAG", "\\Seen"), raw=None)


def test_and_or_not_nesting() -> None:
    seen, deleted = ("FLAG", "\\Seen"), ("FLAG", "\\Deleted")
    assert match(("AND", [seen, ("LARGER", 10)]))
    assert not match(("AND", [seen, deleted]))
    assert match(("OR", deleted, seen)) and not match(("OR", deleted, ("SMALLER", 10)))
    assert match(("NOT", deleted)) and not match(("NOT", seen))
    nested = ("OR", ("AND", [deleted, seen]), ("NOT", ("OR", deleted, ("BODY", "tea"))))
    assert match(nested)
    assert not match(("NOT", nested))
    assert match(("AND", []))


def test_content_is_read_only_when_needed_and_once() -> None:
    c, loader = candidate()
    key: SearchKey = (
        "AND",
        [("FLAG", "\\Seen"), ("UID", Seqs([(1, None)])), ("SINCE", datetime.date(2026, 1, 1))],
    )
    assert matches(key, c, 5, 50, now=NOW)
    assert loader.calls == 0
    key = ("AND", [("HEADER", "FROM", "andre"), ("BODY", "café"), ("TEXT", "bob")])
    c, loader = candidate()
    assert matches(key, c, 5, 50, now=NOW)
    assert loader.calls == 1
    c, loader = candidate()
    assert not matches(("AND", [("FLAG", "\\Deleted"), ("BODY", "café")]), c, 5, 50, now=NOW)
    assert loader.calls == 0  # AND stops at the first key that fails


def test_needs_content() -> None:
    date = datetime.date(2026, 1, 1)
    assert not needs_content(("ALL",))
    assert not needs_content(("AND", [("FLAG", "\\Seen"), ("BEFORE", date), ("LARGER", 1)]))
    assert not needs_content(("OR", ("UID", Seqs([(1, 2)])), ("NOT", ("MODSEQ", 3))))
    keys: list[SearchKey] = [
        ("HEADER", "FROM", "a"),
        ("BODY", "a"),
        ("TEXT", "a"),
        ("SENTON", date),
    ]
    for key in keys:
        assert needs_content(key)
        assert needs_content(("NOT", ("OR", ("ALL",), ("AND", [("RECENT",), key]))))
    assert needs_content(("SENTBEFORE", date)) and needs_content(("SENTSINCE", date))


def test_unknown_keys_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        match(("FUZZY", "x"))
    with pytest.raises(ValueError):
        needs_content(("AND", [("ALL",), ("FUZZY",)]))

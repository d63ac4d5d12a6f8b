"""Evaluating a SEARCH key (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 5032 OLDER/YOUNGER,
RFC 7162 MODSEQ) against one message.

mailnode.imap.parser gives the key as a tree of tuples whose first element names the
key: ("ALL",), ("AND", [keys]), ("OR", a, b), ("NOT", k), ("SEQ", set), ("UID", set),
("FLAG", flag), ("NOTFLAG", flag), ("RECENT",), ("HEADER", name, s), ("BODY", s),
("TEXT", s), ("LARGER", n), ("SMALLER", n), ("BEFORE"|"ON"|"SINCE", date),
("SENTBEFORE"|"SENTON"|"SENTSINCE", date), ("MODSEQ", n), ("OLDER"|"YOUNGER", seconds).

Only keys about the content read the message (Candidate.load), once per message, so a
search by flags, UIDs or dates reads no files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from mailnode.imap.message import ParsedMessage

SearchKey = tuple[Any, ...]

_CONTENT_KEYS = frozenset({"HEADER", "BODY", "TEXT", "SENTBEFORE", "SENTON", "SENTSINCE"})


@dataclass
class Candidate:
    """One message as SEARCH sees it. `load` reads and parses the message file; it is
    called only for keys about the content, and returns None if the file is gone (then
    no content key matches)."""

    seq: int
    uid: int
    flags: frozenset[str]
    recent: bool
    size: int
    internal_date: datetime  # aware
    modseq: int
    load: Callable[[], ParsedMessage | None]


@dataclass
class _Eval:
    """One message's evaluation: the candidate and its message, loaded at most once."""

    c: Candidate
    largest_seq: int
    largest_uid: int
    now: datetime
    _loaded: bool = False
    _message: ParsedMessage | None = field(default=None, repr=False)

    def message(self) -> ParsedMessage | None:
        if not self._loaded:
            self._message = self.c.load()
            self._loaded = True
        return self._message


def _children(key: SearchKey) -> list[SearchKey]:
    name = key[0]
    if name == "AND":
        return list(key[1])
    if name == "OR":
        return [key[1], key[2]]
    if name == "NOT":
        return [key[1]]
    return []


def needs_content(key: SearchKey) -> bool:
    """Whether evaluating `key` reads the message itself (HEADER/FROM/..., BODY, TEXT,
    SENT*): if not, the server need not open any file."""
    if key[0] not in _MATCHERS:
        raise ValueError(f"unknown search key {key[0]!r}")
    return key[0] in _CONTENT_KEYS or any(needs_content(k) for k in _children(key))


def matches(
    key: SearchKey,
    c: Candidate,
    largest_seq: int,
    largest_uid: int,
    now: datetime | None = None,
) -> bool:
    """Whether message `c` matches `key`; `largest_seq` and `largest_uid` are what "*"
    means in a sequence set, `now` the time OLDER and YOUNGER count from (default: now).
    Unknown key names raise ValueError: the parser never produces them."""
    return _match(key, _Eval(c, largest_seq, largest_uid, now or datetime.now(UTC)))


def _match(key: SearchKey, e: _Eval) -> bool:
    matcher = _MATCHERS.get(key[0])
    if matcher is None:
        raise ValueError(f"unknown search key {key[0]!r}")
    return matcher(key, e)


def _contains(haystack: str, needle: str) -> bool:
    """RFC 3501: a case-insensitive substring match."""
    return needle.casefold() in haystack.casefold()


def _has_flag(c: Candidate, flag: str) -> bool:
    """Flags and keywords compare case-insensitively; \\Recent is the session's state."""
    wanted = flag.casefold()
    if wanted == "\\recent":
        return c.recent
    return any(f.casefold() == wanted for f in c.flags)


def _header(key: SearchKey, e: _Eval) -> bool:
    """HEADER name s (and FROM, TO, CC, BCC, SUBJECT): an empty s matches any message
    that has the field at all."""
    m = e.message()
    if m is None:
        return False
    values = m.header(key[1])
    return any(_contains(v, key[2]) for v in values) if key[2] else bool(values)


def _text_key(text: Callable[[ParsedMessage], str]) -> Callable[[SearchKey, _Eval], bool]:
    def match(key: SearchKey, e: _Eval) -> bool:
        m = e.message()
        return m is not None and _contains(text(m), key[1])

    return match


_DAY_TESTS: dict[str, Callable[[date, date], bool]] = {
    "BEFORE": lambda day, d: day < d,
    "ON": lambda day, d: day == d,
    "SINCE": lambda day, d: day >= d,
}


def _compare_dates(day: date, key: SearchKey) -> bool:
    return _DAY_TESTS[key[0].removeprefix("SENT")](day, key[1])


def _internal_date(key: SearchKey, e: _Eval) -> bool:
    """BEFORE, ON, SINCE: the internal date's day in UTC."""
    return _compare_dates(e.c.internal_date.astimezone(UTC).date(), key)


def _sent_date(key: SearchKey, e: _Eval) -> bool:
    """SENTBEFORE, SENTON, SENTSINCE: the Date: field's day in its own zone; a message
    without a readable Date: matches none of them."""
    m = e.message()
    day = None if m is None else m.sent_date()
    return day is not None and _compare_dates(day, key)


def _age(e: _Eval) -> float:
    return (e.now - e.c.internal_date).total_seconds()


_MATCHERS: dict[str, Callable[[SearchKey, _Eval], bool]] = {
    "ALL": lambda key, e: True,
    "AND": lambda key, e: all(_match(k, e) for k in key[1]),
    "OR": lambda key, e: _match(key[1], e) or _match(key[2], e),
    "NOT": lambda key, e: not _match(key[1], e),
    "SEQ": lambda key, e: key[1].contains(e.c.seq, e.largest_seq),
    "UID": lambda key, e: key[1].contains(e.c.uid, e.largest_uid),
    "FLAG": lambda key, e: _has_flag(e.c, key[1]),
    "NOTFLAG": lambda key, e: not _has_flag(e.c, key[1]),
    "RECENT": lambda key, e: e.c.recent,
    "HEADER": _header,
    "BODY": _text_key(ParsedMessage.body_text),
    "TEXT": _text_key(ParsedMessage.text),
    "LARGER": lambda key, e: e.c.size > key[1],
    "SMALLER": lambda key, e: e.c.size < key[1],
    "BEFORE": _internal_date,
    "ON": _internal_date,
    "SINCE": _internal_date,
    "SENTBEFORE": _sent_date,
    "SENTON": _sent_date,
    "SENTSINCE": _sent_date,
    "MODSEQ": lambda key, e: e.c.modseq >= key[1],
    # RFC 5032; both bounds inclusive, as Dovecot has them.
    "OLDER": lambda key, e: _age(e) >= key[1],
    "YOUNGER": lambda key, e: _age(e) <= key[1],
}

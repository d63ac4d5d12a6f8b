"""IMAP client command parser: RFC 3501, RFC 9051 (IMAP4rev2) and the extensions offered.

Extensions: LITERAL+ and LITERAL- (RFC 7888), BINARY (3516), MULTIAPPEND (3502),
CONDSTORE and QRESYNC (7162), ESEARCH (4731), MOVE (6851), UIDPLUS (4315),
LIST-EXTENDED (5258), LIST-STATUS (5819), SPECIAL-USE and CREATE-SPECIAL-USE (6154),
ENABLE (5161), ID (2971), SASL-IR (4959), QUOTA (9208), WITHIN (5032), UNSELECT,
NAMESPACE, IDLE.

The connection's reader frames a command with `literal_at_end` (a line, then for each
literal announced at a line's end the literal and the next line) and hands all of it to
`parse_command`. That returns a `Command` or raises `ParseError` and nothing else, whatever
the bytes, so no client input becomes a traceback. Only syntax is checked here: whether a
command suits the session's state, and what names and flags mean, is the server's call.

A hand-written recursive descent over the bytes with an index, as commands are parsed on
every round trip. Its regular expressions are character classes and fixed shapes (the
quoted string's repetition is possessive), so none can backtrack its way into a slow path.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeVar

MAX_NUMBER: Final = 2**32 - 1  # nz-number: message sequence numbers, UIDs, sizes
MAX_NUMBER64: Final = 2**63 - 1  # number64 and mod-sequence values
# Search keys nest by parentheses, NOT and OR. Clients OR many terms together (each OR
# is one level), so the cap is generous; it keeps recursion far from Python's limit.
MAX_NESTING: Final = 100
MAX_ID_PARAMS: Final = 30  # RFC 2971 section 3.3
SEARCH_CHARSETS: Final = ("UTF-8", "US-ASCII")  # for NO [BADCHARSET (...)]

_MAX_DIGITS = 20  # longer numbers are refused before int() sees them
_SNIPPET = 16  # bytes of input an error message may quote

_T = TypeVar("_T")
# A search key tree node: ("ALL",), ("FLAG", "\\Seen"), ("AND", [keys]), ("OR", a, b), ...
SearchKey = tuple[Any, ...]

# Character classes of RFC 3501's grammar (CTL, SP and 8-bit never belong to an atom).
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')  # ATOM-CHAR / "]"
_LIST_CHARS = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')  # ATOM-CHAR / "%" / "*" / "]"
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')  # ASTRING-CHAR except "+"
_NAME = re.compile(rb"[A-Za-z0-9.]+")  # FETCH attribute, section text, FLAGS.SILENT
_DIGITS = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\x00\r\n]|\\["\\])*+)"')
_QUOTED_ESCAPE = re.compile(rb'\\(["\\])')
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_SASL_RUN = re.compile(rb"[A-Za-z0-9+/=]+")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{4})"'
)
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ":"
_MUTF7_BASE64 = re.compile(r"[A-Za-z0-9+,]+")

_MONTHS = {
    m.encode(): i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
}
_USE_ATTRS = {
    a.upper(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
_STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",
        "SIZE",
        "DELETED",
        "APPENDLIMIT",
    }
)
_LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
_SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


class ParseError(Exception):
    """A command that breaks the grammar: the server answers `<tag> BAD <text>`, or
    `* BAD <text>` when `tag` is None because not even the tag could be read.

    `text` is a short sentence that quotes at most a few bytes of the input (with
    anything unprintable replaced), so it can go into a response line as it is.
    """

    def __init__(self, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


class BadCharset(ParseError):
    """SEARCH with a charset other than `SEARCH_CHARSETS`: a NO, not a BAD (RFC 3501
    6.4.4), answered `<tag> NO [BADCHARSET (UTF-8 US-ASCII)] <text>`."""


@dataclass(frozen=True)
class SequenceSet:
    """A sequence-set of message numbers or UIDs, as the client wrote it.

    `ranges` holds (lo, hi) pairs in the client's order; a single number n is (n, n) and
    `*` is None, resolved only against the mailbox's largest number at use. A range
    n:m is the same as m:n, and `*` matches nothing in an empty mailbox.
    """

    ranges: tuple[tuple[int | None, int | None], ...]

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set holding exactly these numbers (runs become ranges), for the
        sets the server writes: COPYUID, APPENDUID, VANISHED, ESEARCH ALL, MODIFIED.

        Raises ValueError for no numbers (an empty set has no IMAP syntax) or for a
        number outside 1..4294967295.
        """
        ordered = sorted(set(numbers))
        if not ordered:
            raise ValueError("a sequence set needs at least one number")
        if ordered[0] < 1 or ordered[-1] > MAX_NUMBER:
            raise ValueError("sequence set numbers are 1..4294967295")
        ranges: list[tuple[int | None, int | None]] = []
        start = prev = ordered[0]
        for n in ordered[1:]:
            if n != prev + 1:
                ranges.append((start, prev))
                start = n
            prev = n
        ranges.append((start, prev))
        return cls(tuple(ranges))

    def contains(self, n: int, largest: int) -> bool:
        """Whether n is in the set when `*` stands for `largest` (0: empty mailbox)."""
        return any(a <= n <= b for a, b in self._resolved(largest))

    def iter(self, largest: int, limit_to: Sequence[int] | None = None) -> Iterator[int]:
        """The members in ascending order, each once, without expanding ranges.

        `limit_to` is the ascending list of numbers that exist (a mailbox's UIDs): only
        those are yielded, found by bisection, so `1:*` costs the same as its result.
        Without it the candidates are 1..largest (message sequence numbers).
        """
        for lo, hi in self._intervals(largest):
            if limit_to is None:
                yield from range(max(lo, 1), min(hi, largest) + 1)
            else:
                start = bisect.bisect_left(limit_to, lo)
                stop = bisect.bisect_right(limit_to, hi)
                yield from limit_to[start:stop]

    def _intervals(self, largest: int) -> list[tuple[int, int]]:
        """The ranges resolved against `largest`, ordered, overlaps and neighbours merged."""
        merged: list[tuple[int, int]] = []
        for a, b in sorted(self._resolved(largest)):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def _resolved(self, largest: int) -> Iterator[tuple[int, int]]:
        """Each range as (low, high) with `*` replaced by `largest`; ranges with `*` are
        skipped when the mailbox is empty (largest 0)."""
        for lo, hi in self.ranges:
            if (lo is None or hi is None) and largest < 1:
                continue
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            yield (a, b) if a <= b else (b, a)

    def __str__(self) -> str:
        """The set in IMAP syntax, e.g. `1:3,5,7:*`."""
        return ",".join(
            _seq_number(lo) if lo == hi else f"{_seq_number(lo)}:{_seq_number(hi)}"
            for lo, hi in self.ranges
        )


def _seq_number(n: int | None) -> str:
    return "*" if n is None else str(n)


@dataclass(frozen=True)
class Section:
    """The part of a message a FETCH BODY[...] or BINARY[...] names.

    `part` is the part number path (empty for the whole message); `text` is None,
    "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME"; `fields` holds the
    header field names of HEADER.FIELDS (.NOT) as the client wrote them.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def render(self) -> str:
        """The section as the response echoes it: `1.2.HEADER.FIELDS (FROM TO)`, or ``
        for BODY[]. Field names are upper-cased (RFC 3501 7.4.2 shows them so)."""
        spec = ".".join(str(n) for n in self.part)
        if self.text is not None:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            spec += " (" + " ".join(_field_out(f.upper()) for f in self.fields) + ")"
        return spec


def _field_out(name: str) -> str:
    """A (validated) header field name as an astring: an atom when it can be one."""
    if _ASTRING.fullmatch(name.encode()):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchAtt:
    """One FETCH data item, macros (ALL, FAST, FULL) already expanded.

    `name` is UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY,
    BINARY, BINARY.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT or MODSEQ. BODY without a
    section is the non-extensible body structure; with one, content. BODY.PEEK and
    BINARY.PEEK are BODY and BINARY with `peek` set. `partial` is (origin, count).
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """What the FETCH response writes before the value: `BODY[HEADER]`, `BODY[]<0>`
        for a partial (origin only, RFC 3501 7.4.2), `BINARY.SIZE[1]`; never PEEK."""
        if self.section is None:
            return self.name
        name = f"{self.name}[{self.section.render()}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name


_MACROS = {
    "FAST": (FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE")),
    "ALL": (
        FetchAtt("FLAGS"),
        FetchAtt("INTERNALDATE"),
        FetchAtt("RFC822.SIZE"),
        FetchAtt("ENVELOPE"),
    ),
    "FULL": (
        FetchAtt("FLAGS"),
        FetchAtt("INTERNALDATE"),
        FetchAtt("RFC822.SIZE"),
        FetchAtt("ENVELOPE"),
        FetchAtt("BODY"),
    ),
}
_PLAIN_ATTS = frozenset(
    {
        "UID",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",
    }
)


@dataclass(frozen=True)
class Command:
    """A parsed command. `name` is upper-case and, after UID, the command UID prefixes
    (UID FETCH is name "FETCH" with `uid` set). `args` holds every key the command
    defines, absent optional values as None, [] or False."""

    tag: str
    name: str
    uid: bool
    args: dict[str, Any]


def literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """(size, non-synchronising) when `line` ends with a literal announcement before its
    CRLF (or bare LF): `{N}`, `{N+}` (LITERAL+ and LITERAL-), `~{N}` or `~{N+}`; else None.

    The reader must then read N octets and the next line before the command is whole.
    Any `{N}` or `{N+}` at the end counts, whatever precedes it: reading too much can
    only turn a broken command into a BAD, while reading too little would run a
    literal's bytes as commands. Raises ParseError for a size of more than 20 digits.
    """
    body = line[:-2] if line.endswith(b"\r\n") else line.removesuffix(b"\n")
    start = body.rfind(b"{")
    if not body.endswith(b"}") or start < 0:
        return None
    inner = body[start + 1 : -1]
    nonsync = inner.endswith(b"+")
    digits = inner[:-1] if nonsync else inner
    if not digits or _DIGITS.fullmatch(digits) is None:
        return None
    if len(digits) > _MAX_DIGITS:
        raise ParseError("Literal size too large", tag_of(line))
    return int(digits), nonsync


def tag_of(line: bytes) -> str | None:
    """The tag a line starts with, so that even a line refused early gets a tagged BAD."""
    m = _TAG.match(line)
    if m is None or not line.startswith(b" ", m.end()):
        return None
    return m.group().decode("ascii")


def parse_command(data: bytes) -> Command:
    """The command in `data`: one whole command as the reader framed it, literals inline
    and the final CRLF (or bare LF) included or not. Raises ParseError, and only that."""
    p = _Parser(data)
    tag = p.tag_()
    p.sp()
    p.tag = tag  # only now: in "a+1 NOOP" the tag is not "a"
    name = p.keyword("a command name")
    uid = name == "UID"
    if uid:
        p.sp()
        name = p.keyword("a command after UID")
        if name not in _UID_COMMANDS:
            p.fail(f"UID cannot prefix {name[:20]}")
    handler = _COMMANDS.get(name)
    if handler is None:
        p.fail(f"Unknown command {name[:20]}")
    args = handler(p, uid)
    p.end()
    return Command(tag, name, uid, args)


class _Parser:
    """A cursor over one command's bytes; each method consumes one grammar element or
    raises ParseError carrying the command's tag (once it is known)."""

    __slots__ = ("ascii_only", "buf", "depth", "pos", "tag")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.tag: str | None = None
        self.depth = 0  # search key nesting
        self.ascii_only = False  # after SEARCH CHARSET US-ASCII

    # -- errors ---------------------------------------------------------------------------
    def fail(self, text: str) -> NoReturn:
        raise ParseError(text, self.tag)

    def expected(self, what: str) -> NoReturn:
        self.fail(f"Expected {what} {self.near()}")

    def near(self) -> str:
        """Where the parser stands, quoting a few bytes of input made printable."""
        rest = self.buf[self.pos : self.pos + _SNIPPET]
        if not rest:
            return "at the end of the command"
        more = "..." if self.pos + _SNIPPET < len(self.buf) else ""
        return f"at '{_printable(rest.decode('latin-1'))}{more}'"

    # -- tokens ---------------------------------------------------------------------------
    def at(self, token: bytes) -> bool:
        return self.buf.startswith(token, self.pos)

    def skip(self, token: bytes) -> bool:
        """Consume `token` if it comes next."""
        if self.buf.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes) -> None:
        if not self.skip(token):
            self.expected(f"'{token.decode()}'")

    def sp(self) -> None:
        if not self.skip(b" "):
            self.expected("a space")

    def at_digit(self) -> bool:
        return self.pos < len(self.buf) and 0x30 <= self.buf[self.pos] <= 0x39

    def match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = pattern.match(self.buf, self.pos)
        if m is not None:
            self.pos = m.end()
        return m

    def run(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = self.match(pattern)
        if m is None:
            self.expected(what)
        return m.group()

    def end(self) -> None:
        """Only the line end (CRLF, bare LF or nothing) may follow the last argument."""
        if self.buf[self.pos :] not in (b"", b"\r\n", b"\n"):
            self.fail(f"Unexpected text {self.near()}")

    def tag_(self) -> str:
        return self.run(_TAG, "a tag").decode("ascii")

    def atom(self, what: str = "an atom") -> str:
        return self.run(_ATOM, what).decode("ascii")

    def keyword(self, what: str = "a keyword") -> str:
        """An atom, upper-cased: command names, options and other case-insensitive words."""
        return self.atom(what).upper()

    def word(self, what: str) -> str:
        """Letters, digits and dots, upper-cased: a FETCH item before its `[`."""
        return self.run(_NAME, what).decode("ascii").upper()

    def try_keyword(self, word: bytes) -> bool:
        """Consume the atom `word` (any case) if it comes next, whole."""
        m = _ATOM.match(self.buf, self.pos)
        if m is None or m.group().upper() != word:
            return False
        self.pos = m.end()
        return True

    def nil(self) -> bool:
        return self.try_keyword(b"NIL")

    # -- numbers --------------------------------------------------------------------------
    def number(self, limit: int = MAX_NUMBER, what: str = "a number") -> int:
        digits = self.run(_DIGITS, what)
        if len(digits) > _MAX_DIGITS or int(digits) > limit:
            self.fail(f"Number out of range (at most {limit})")
        return int(digits)

    def nz_number(self, limit: int = MAX_NUMBER, what: str = "a number") -> int:
        n = self.number(limit, what)
        if n == 0:
            self.fail("Zero is not allowed here")
        return n

    # -- strings --------------------------------------------------------------------------
    def quoted(self) -> bytes:
        m = self.match(_QUOTED)
        if m is None:
            self.expected("a complete quoted string")
        content = m.group(1)
        if b"\\" in content:
            content = _QUOTED_ESCAPE.sub(rb"\1", content)
        return content

    def literal(self, binary_ok: bool = False) -> tuple[bytes, bool]:
        """A literal's octets and whether it was a literal8 (`~{N}`, only if binary_ok)."""
        binary = self.skip(b"~")
        if binary and not binary_ok:
            self.fail("A binary literal is only allowed for APPEND message data")
        self.expect(b"{")
        digits = self.run(_DIGITS, "a literal size")
        if len(digits) > _MAX_DIGITS:
            self.fail("Literal size too large")
        self.skip(b"+")
        self.expect(b"}")
        if not (self.skip(b"\r\n") or self.skip(b"\n")):
            self.expected("CRLF after the literal size")
        end = self.pos + int(digits)
        if end > len(self.buf):
            self.fail("Literal shorter than its announced size")
        data = self.buf[self.pos : end]
        self.pos = end
        if not binary and b"\0" in data:
            self.fail("NUL in a literal (only a binary literal may hold one)")
        return data, binary

    def string(self) -> bytes:
        if self.at(b'"'):
            return self.quoted()
        if self.at(b"{"):
            return self.literal()[0]
        self.expected("a string")

    def text(self, raw: bytes) -> str:
        """A string's octets as text: UTF-8 (RFC 9051, UTF8=ACCEPT), or US-ASCII when
        SEARCH said CHARSET US-ASCII."""
        if self.ascii_only and not raw.isascii():
            self.fail("8-bit text in a US-ASCII search")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("Invalid UTF-8 in a string")

    def astring(self, what: str = "a string") -> str:
        if self.at(b'"') or self.at(b"{"):
            return self.text(self.string())
        return self.run(_ASTRING, what).decode("ascii")

    def nstring(self) -> str | None:
        if self.nil():
            return None
        return self.text(self.string())

    def mailbox(self) -> str:
        """A mailbox name as sent (the server applies modified UTF-7 if it must); INBOX
        in any case is "INBOX"."""
        name = self.astring("a mailbox name")
        return "INBOX" if name.isascii() and name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        """A LIST pattern: an atom that may hold `%` and `*`, or a string."""
        if self.at(b'"') or self.at(b"{"):
            return self.text(self.string())
        return self.run(_LIST_CHARS, "a mailbox pattern").decode("ascii")

    def header_name(self) -> str:
        """A header field name (an astring holding a valid RFC 5322 name), as given."""
        name = self.astring("a header field name")
        if _HEADER_NAME.fullmatch(name) is None:
            self.fail("Invalid header field name")
        return name

    # -- structures -----------------------------------------------------------------------
    def paren_list(self, item: Callable[[], _T], empty_ok: bool = False) -> list[_T]:
        """`(item SP item ...)`."""
        self.expect(b"(")
        if self.skip(b")"):
            if not empty_ok:
                self.fail("An empty list is not allowed here")
            return []
        items = [item()]
        while not self.skip(b")"):
            self.sp()
            items.append(item())
        return items

    def flag(self) -> str:
        """A flag: system flags in their canonical case, keywords and other backslash
        flags as written. `\\*` belongs to PERMANENTFLAGS only."""
        if not self.skip(b"\\"):
            return self.atom("a flag")
        if self.at(b"*"):
            self.fail("\\* is not a flag")
        name = "\\" + self.atom("a flag name")
        return _SYSTEM_FLAGS.get(name.upper(), name)

    def flag_list(self) -> list[str]:
        return self.paren_list(self.flag, empty_ok=True)

    def sequence_set(self, star_ok: bool = True) -> SequenceSet:
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            lo = self.seq_number(star_ok)
            hi = self.seq_number(star_ok) if self.skip(b":") else lo
            ranges.append((lo, hi))
            if not self.skip(b","):
                return SequenceSet(tuple(ranges))

    def seq_number(self, star_ok: bool) -> int | None:
        if self.skip(b"*"):
            if not star_ok:
                self.fail("* is not allowed in this set")
            return None
        if self.at(b"$"):
            self.fail("$ (SEARCHRES) is not supported")
        return self.nz_number(what="a sequence set")

    def date(self) -> dt.date:
        """`1-Feb-1994`, quoted or not."""
        quoted = self.skip(b'"')
        m = self.match(_DATE)
        if m is None:
            self.expected("a date like 1-Feb-1994")
        if quoted:
            self.expect(b'"')
        day, month, year = m.groups()
        return _calendar(self, int(year), month, int(day))

    def date_time(self) -> dt.datetime:
        """`"17-Jul-1996 02:44:25 -0700"` (the day may be space-padded)."""
        m = self.match(_DATE_TIME)
        if m is None:
            self.expected('a date-time like "17-Jul-1996 02:44:25 -0700"')
        day, month, year, hh, mm, ss, sign, zone = m.groups()
        date = _calendar(self, int(year), month, int(day))
        if int(zone[2:]) > 59:
            self.fail("Invalid zone in date-time")
        offset = dt.timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
        try:
            tz = dt.timezone(-offset if sign == b"-" else offset)
            when = dt.datetime(date.year, date.month, date.day, int(hh), int(mm), int(ss), 0, tz)
            when.astimezone(dt.UTC)  # representable in UTC too (timestamp() needs it)
        except (ValueError, OverflowError):
            self.fail("Invalid time or zone in date-time")
        return when

    def descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail("Search keys are nested too deeply")


def _printable(text: str) -> str:
    """Input quoted in an error text: anything but printable ASCII (CR, LF) becomes "?"."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _calendar(p: _Parser, year: int, month: bytes, day: int) -> dt.date:
    number = _MONTHS.get(month.upper())
    if number is None:
        p.fail("Unknown month name")
    try:
        return dt.date(year, number, day)
    except ValueError:
        p.fail("No such date")


# -- commands ---------------------------------------------------------------------------
# Each takes the parser after the command name (and whether UID prefixed it) and returns
# the args; parse_command checks that nothing follows.


def _no_args(p: _Parser, uid: bool) -> dict[str, Any]:
    return {}


def _login(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    user = p.astring("a user name")
    p.sp()
    return {"user": user, "password": p.astring("a password")}


def _authenticate(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    mechanism = p.keyword("a SASL mechanism")
    initial = None
    if p.skip(b" "):
        raw = p.run(_SASL_RUN, "a base64 initial response")
        if raw != b"=" and (len(raw) % 4 or _BASE64.fullmatch(raw) is None):
            p.fail("Invalid base64 initial response")
        initial = raw.decode("ascii")
    return {"mechanism": mechanism, "initial": initial}


def _enable(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    capabilities = [p.keyword("a capability")]
    while p.skip(b" "):
        capabilities.append(p.keyword("a capability"))
    return {"capabilities": capabilities}


def _id(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    if p.nil():
        return {"params": None}

    def pair() -> tuple[str, str | None]:
        field = p.text(p.string())
        p.sp()
        return field, p.nstring()

    pairs = p.paren_list(pair, empty_ok=True)
    if len(pairs) > MAX_ID_PARAMS:
        p.fail(f"ID takes at most {MAX_ID_PARAMS} field-value pairs")
    return {"params": dict(pairs)}


def _select(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    args: dict[str, Any] = {"mailbox": p.mailbox(), "condstore": False, "qresync": None}
    if not p.skip(b" "):
        return args

    def param() -> None:
        name = p.keyword("a SELECT parameter")
        if name == "CONDSTORE" and not args["condstore"]:
            args["condstore"] = True
        elif name == "QRESYNC" and args["qresync"] is None:
            p.sp()
            args["qresync"] = _qresync(p)
        else:
            p.fail(f"Unknown or repeated SELECT parameter {name[:20]}")

    p.paren_list(param)
    return args


def _qresync(p: _Parser) -> dict[str, Any]:
    """RFC 7162 3.2.5: `(uidvalidity modseq [known-uids] [(known-seqs known-uids)])`."""
    p.expect(b"(")
    uidvalidity = p.nz_number(what="a UIDVALIDITY")
    p.sp()
    modseq = p.nz_number(MAX_NUMBER64, "a mod-sequence")
    known_uids = seq_match = None
    more = p.skip(b" ")
    if more and not p.at(b"("):
        known_uids = p.sequence_set(star_ok=False)
        more = p.skip(b" ")
    if more:
        p.expect(b"(")
        seqs = p.sequence_set(star_ok=False)
        p.sp()
        seq_match = (seqs, p.sequence_set(star_ok=False))
        p.expect(b")")
    p.expect(b")")
    return {
        "uidvalidity": uidvalidity,
        "modseq": modseq,
        "known_uids": known_uids,
        "seq_match": seq_match,
    }


def _create(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    mailbox = p.mailbox()
    special_use: list[str] = []
    if p.skip(b" "):
        # RFC 4466 create-params; USE (RFC 6154) is the only one offered.
        p.expect(b"(")
        if p.keyword("a CREATE parameter") != "USE":
            p.fail("USE is the only CREATE parameter")
        p.sp()
        special_use = p.paren_list(lambda: _use_attr(p), empty_ok=True)
        p.expect(b")")
    return {"mailbox": mailbox, "special_use": special_use}


def _use_attr(p: _Parser) -> str:
    p.expect(b"\\")
    name = "\\" + p.atom("a special-use attribute")
    return _USE_ATTRS.get(name.upper(), name)


def _mailbox_only(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    return {"mailbox": p.mailbox()}


def _rename(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    return {"mailbox": mailbox, "new_name": p.mailbox()}


def _list(p: _Parser, uid: bool) -> dict[str, Any]:
    """RFC 5258: LIST [(select-opts)] reference (pattern | (patterns)) [RETURN (opts)]."""
    p.sp()
    select_options: list[str] = []
    if p.at(b"("):
        select_options = p.paren_list(lambda: _option(p, _LIST_SELECT, "LIST"), empty_ok=True)
        if "RECURSIVEMATCH" in select_options and not (
            set(select_options) - {"RECURSIVEMATCH", "REMOTE"}
        ):
            p.fail("RECURSIVEMATCH needs another selection option")
        p.sp()
    reference = p.astring("a reference name")
    p.sp()
    patterns = p.paren_list(p.list_mailbox) if p.at(b"(") else [p.list_mailbox()]
    args: dict[str, Any] = {
        "reference": reference,
        "patterns": patterns,
        "select_options": select_options,
        "return_options": [],
        "return_status": None,
    }
    if p.skip(b" "):
        if not p.try_keyword(b"RETURN"):
            p.expected("RETURN")
        p.sp()

        def option() -> None:
            if p.try_keyword(b"STATUS"):
                if args["return_status"] is not None:
                    p.fail("STATUS is repeated in LIST RETURN")
                p.sp()
                args["return_status"] = p.paren_list(lambda: _option(p, _STATUS_ITEMS, "STATUS"))
            else:
                args["return_options"].append(_option(p, _LIST_RETURN, "LIST RETURN"))

        p.paren_list(option, empty_ok=True)
    return args


def _option(p: _Parser, known: frozenset[str], where: str) -> str:
    """A keyword that must be one of `known`."""
    name = p.keyword(f"a {where} option")
    if name not in known:
        p.fail(f"Unknown {where} option {name[:20]}")
    return name


def _lsub(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    reference = p.astring("a reference name")
    p.sp()
    return {"reference": reference, "patterns": [p.list_mailbox()]}


def _status(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    return {"mailbox": mailbox, "items": p.paren_list(lambda: _option(p, _STATUS_ITEMS, "STATUS"))}


def _append(p: _Parser, uid: bool) -> dict[str, Any]:
    """APPEND mailbox 1*([SP flags] [SP date-time] SP literal): MULTIAPPEND when more."""
    p.sp()
    mailbox = p.mailbox()
    messages = [_append_message(p)]
    while p.at(b" "):
        messages.append(_append_message(p))
    return {"mailbox": mailbox, "messages": messages}


def _append_message(p: _Parser) -> dict[str, Any]:
    p.sp()
    flags: list[str] = []
    date = None
    if p.at(b"("):
        flags = p.flag_list()
        p.sp()
    if p.at(b'"'):
        date = p.date_time()
        p.sp()
    if not (p.at(b"{") or p.at(b"~{")):
        p.expected("the message as a literal")
    data, binary = p.literal(binary_ok=True)
    return {"flags": flags, "date": date, "data": data, "binary": binary}


def _search(p: _Parser, uid: bool) -> dict[str, Any]:
    """SEARCH [RETURN (opts)] [CHARSET name] key *(SP key); several keys are an AND."""
    p.sp()
    returns = None
    if p.try_keyword(b"RETURN"):
        p.sp()
        returns = p.paren_list(lambda: _option(p, _SEARCH_RETURN, "SEARCH RETURN"), empty_ok=True)
        returns = returns or ["ALL"]  # RFC 4731: RETURN () means ALL
        p.sp()
    charset = None
    if p.try_keyword(b"CHARSET"):
        p.sp()
        charset = p.astring("a charset").upper()
        if charset not in SEARCH_CHARSETS:
            raise BadCharset(f"BADCHARSET: {_printable(charset[:20])} is not supported", p.tag)
        p.ascii_only = charset == "US-ASCII"
        p.sp()
    keys = [_search_key(p)]
    while p.skip(b" "):
        keys.append(_search_key(p))
    return {"return": returns, "charset": charset, "key": _and(keys)}


def _and(keys: list[SearchKey]) -> SearchKey:
    return keys[0] if len(keys) == 1 else ("AND", keys)


def _search_key(p: _Parser) -> SearchKey:
    if p.at(b"("):
        p.descend()
        keys = p.paren_list(lambda: _search_key(p))
        p.depth -= 1
        return _and(keys)
    if p.at_digit() or p.at(b"*") or p.at(b"$"):
        return ("SEQ", p.sequence_set())
    name = p.keyword("a search key")
    simple = _SIMPLE_KEYS.get(name)
    if simple is not None:
        return simple
    parse = _SEARCH_KEYS.get(name)
    if parse is None:
        p.fail(f"Unknown search key {name[:20]}")
    p.sp()
    return parse(p, name)


def _search_string(p: _Parser) -> str:
    return p.astring("a search string")


def _key_header_field(p: _Parser, name: str) -> SearchKey:
    return ("HEADER", name, _search_string(p))


def _key_header(p: _Parser, name: str) -> SearchKey:
    field = p.header_name().upper()
    p.sp()
    return ("HEADER", field, _search_string(p))


def _key_text(p: _Parser, name: str) -> SearchKey:
    return (name, _search_string(p))


def _key_keyword(p: _Parser, name: str) -> SearchKey:
    return ("FLAG" if name == "KEYWORD" else "NOTFLAG", p.atom("a keyword"))


def _key_size(p: _Parser, name: str) -> SearchKey:
    return (name, p.number(MAX_NUMBER64, "a size"))


def _key_date(p: _Parser, name: str) -> SearchKey:
    return (name, p.date())


def _key_within(p: _Parser, name: str) -> SearchKey:
    return (name, p.nz_number(what="a number of seconds"))


def _key_uid(p: _Parser, name: str) -> SearchKey:
    return ("UID", p.sequence_set())


def _key_not(p: _Parser, name: str) -> SearchKey:
    p.descend()
    key = _search_key(p)
    p.depth -= 1
    return ("NOT", key)


def _key_or(p: _Parser, name: str) -> SearchKey:
    p.descend()
    first = _search_key(p)
    p.sp()
    second = _search_key(p)
    p.depth -= 1
    return ("OR", first, second)


def _key_modseq(p: _Parser, name: str) -> SearchKey:
    """RFC 7162: MODSEQ ["/flags/<flag>" all|priv|shared] n; the entry part is ignored."""
    if p.at(b'"'):
        if not p.text(p.quoted()).startswith("/flags/"):
            p.fail("MODSEQ entry names start with /flags/")
        p.sp()
        if p.keyword("an entry type") not in ("ALL", "PRIV", "SHARED"):
            p.fail("MODSEQ entry type is all, priv or shared")
        p.sp()
    return ("MODSEQ", p.number(MAX_NUMBER64, "a mod-sequence"))


_FLAG_KEYS = ("\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen")
_SIMPLE_KEYS: dict[str, SearchKey] = {
    "ALL": ("ALL",),
    "RECENT": ("RECENT",),
    "NEW": ("AND", [("RECENT",), ("NOTFLAG", "\\Seen")]),
    "OLD": ("NOT", ("RECENT",)),
    **{f[1:].upper(): ("FLAG", f) for f in _FLAG_KEYS},
    **{"UN" + f[1:].upper(): ("NOTFLAG", f) for f in _FLAG_KEYS},
}

_SEARCH_KEYS: dict[str, Callable[[_Parser, str], SearchKey]] = {
    "FROM": _key_header_field,
    "TO": _key_header_field,
    "CC": _key_header_field,
    "BCC": _key_header_field,
    "SUBJECT": _key_header_field,
    "HEADER": _key_header,
    "BODY": _key_text,
    "TEXT": _key_text,
    "KEYWORD": _key_keyword,
    "UNKEYWORD": _key_keyword,
    "LARGER": _key_size,
    "SMALLER": _key_size,
    "BEFORE": _key_date,
    "ON": _key_date,
    "SINCE": _key_date,
    "SENTBEFORE": _key_date,
    "SENTON": _key_date,
    "SENTSINCE": _key_date,
    "OLDER": _key_within,
    "YOUNGER": _key_within,
    "UID": _key_uid,
    "NOT": _key_not,
    "OR": _key_or,
    "MODSEQ": _key_modseq,
}


def _fetch(p: _Parser, uid: bool) -> dict[str, Any]:
    """FETCH set (macro | att | (atts)) [(CHANGEDSINCE n [VANISHED])]."""
    p.sp()
    sequence = p.sequence_set()
    p.sp()
    if p.at(b"("):
        items = p.paren_list(lambda: _fetch_att(p, p.word("a FETCH item")))
    else:
        name = p.word("a FETCH item")
        items = list(_MACROS[name]) if name in _MACROS else [_fetch_att(p, name)]
    args: dict[str, Any] = {
        "sequence": sequence,
        "items": items,
        "changedsince": None,
        "vanished": False,
    }
    if p.skip(b" "):

        def modifier() -> None:
            name = p.keyword("a FETCH modifier")
            if name == "CHANGEDSINCE" and args["changedsince"] is None:
                p.sp()
                args["changedsince"] = p.nz_number(MAX_NUMBER64, "a mod-sequence")
            elif name == "VANISHED" and not args["vanished"]:
                args["vanished"] = True
            else:
                p.fail(f"Unknown or repeated FETCH modifier {name[:20]}")

        p.paren_list(modifier)
    if args["vanished"] and not (uid and args["changedsince"] is not None):
        p.fail("VANISHED needs UID FETCH and CHANGEDSINCE")
    return args


def _fetch_att(p: _Parser, name: str) -> FetchAtt:
    if name in _PLAIN_ATTS or (name == "BODY" and not p.at(b"[")):
        return FetchAtt(name)
    peek = name.endswith(".PEEK")
    if name in ("BODY", "BODY.PEEK"):
        section = _section(p)
        return FetchAtt("BODY", section, _partial(p), peek)
    if name in ("BINARY", "BINARY.PEEK"):
        section = _section_binary(p)
        return FetchAtt("BINARY", section, _partial(p), peek)
    if name == "BINARY.SIZE":
        return FetchAtt(name, _section_binary(p))
    p.fail(f"Unknown FETCH item {name[:20]}")


def _section(p: _Parser) -> Section:
    """`[` [part] [text] `]`: `[]`, `[1.2]`, `[HEADER]`, `[1.MIME]`, `[HEADER.FIELDS (A)]`."""
    p.expect(b"[")
    part: list[int] = []
    text = None
    fields: tuple[str, ...] = ()
    if p.at_digit():
        part.append(p.nz_number(what="a part number"))
        while p.skip(b"."):
            if not p.at_digit():
                text, fields = _section_text(p, with_part=True)
                break
            part.append(p.nz_number(what="a part number"))
    elif not p.at(b"]"):
        text, fields = _section_text(p, with_part=False)
    p.expect(b"]")
    return Section(tuple(part), text, fields)


def _section_text(p: _Parser, with_part: bool) -> tuple[str, tuple[str, ...]]:
    text = p.word("a section name")
    if text == "MIME" and with_part:
        return text, ()
    if text in ("HEADER", "TEXT"):
        return text, ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        p.sp()
        return text, tuple(p.paren_list(p.header_name))
    p.fail(f"Unknown section {text[:20]}")


def _section_binary(p: _Parser) -> Section:
    """`[` [part] `]`: BINARY takes part numbers only."""
    p.expect(b"[")
    part: list[int] = []
    if not p.at(b"]"):
        part.append(p.nz_number(what="a part number"))
        while p.skip(b"."):
            part.append(p.nz_number(what="a part number"))
    p.expect(b"]")
    return Section(tuple(part))


def _partial(p: _Parser) -> tuple[int, int] | None:
    """`<origin.count>` or nothing."""
    if not p.skip(b"<"):
        return None
    origin = p.number(MAX_NUMBER64, "a partial origin")
    p.expect(b".")
    count = p.nz_number(MAX_NUMBER64, "a partial length")
    p.expect(b">")
    return origin, count


def _store(p: _Parser, uid: bool) -> dict[str, Any]:
    """STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags) | flag *(SP flag)."""
    p.sp()
    sequence = p.sequence_set()
    p.sp()
    args: dict[str, Any] = {"sequence": sequence, "unchangedsince": None}
    if p.at(b"("):

        def modifier() -> None:
            if not p.try_keyword(b"UNCHANGEDSINCE") or args["unchangedsince"] is not None:
                p.expected("UNCHANGEDSINCE, once")
            p.sp()
            args["unchangedsince"] = p.number(MAX_NUMBER64, "a mod-sequence")

        p.paren_list(modifier)
        p.sp()
    mode = "+" if p.skip(b"+") else "-" if p.skip(b"-") else ""
    item = p.word("FLAGS")
    if item not in ("FLAGS", "FLAGS.SILENT"):
        p.fail(f"Unknown STORE item {item[:20]}")
    p.sp()
    if p.at(b"("):
        flags = p.flag_list()
    else:
        flags = [p.flag()]
        while p.skip(b" "):
            flags.append(p.flag())
    return {**args, "mode": mode, "silent": item == "FLAGS.SILENT", "flags": flags}


def _copy(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    sequence = p.sequence_set()
    p.sp()
    return {"sequence": sequence, "mailbox": p.mailbox()}


def _expunge(p: _Parser, uid: bool) -> dict[str, Any]:
    if not uid:
        return {"sequence": None}
    p.sp()
    return {"sequence": p.sequence_set()}


def _getquota(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    return {"root": p.astring("a quota root")}


def _setquota(p: _Parser, uid: bool) -> dict[str, Any]:
    p.sp()
    root = p.astring("a quota root")
    p.sp()

    def limit() -> tuple[str, int]:
        resource = p.keyword("a resource name")
        p.sp()
        return resource, p.number(MAX_NUMBER64, "a resource limit")

    return {"root": root, "limits": p.paren_list(limit, empty_ok=True)}


_COMMANDS: dict[str, Callable[[_Parser, bool], dict[str, Any]]] = {
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "STARTTLS": _no_args,
    "IDLE": _no_args,
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "UNSELECT": _no_args,
    "NAMESPACE": _no_args,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "ID": _id,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox_only,
    "SUBSCRIBE": _mailbox_only,
    "UNSUBSCRIBE": _mailbox_only,
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "EXPUNGE": _expunge,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _mailbox_only,
    "SETQUOTA": _setquota,
}
_UID_COMMANDS = frozenset({"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"})


# -- modified UTF-7 (RFC 3501 5.1.3) ----------------------------------------------------


def mutf7_decode(s: str) -> str:
    """A mailbox name in modified UTF-7 as text, for clients that did not ENABLE
    UTF8=ACCEPT. Raises ParseError (without a tag) for anything a strict encoder could
    not have written: unprintable or 8-bit characters, bad base64, odd or nonzero
    padding bits, lone surrogates, printable ASCII encoded."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "&":
            if not " " <= c <= "~":
                raise ParseError("Invalid character in a modified UTF-7 name")
            out.append(c)
            i += 1
            continue
        close = s.find("-", i + 1)
        if close < 0:
            raise ParseError("Unterminated modified UTF-7 shift")
        out.append("&" if close == i + 1 else _mutf7_run(s[i + 1 : close]))
        i = close + 1
    return "".join(out)


def _mutf7_run(chunk: str) -> str:
    if _MUTF7_BASE64.fullmatch(chunk) is None:
        raise ParseError("Invalid modified base64 in a mailbox name")
    b64 = chunk.replace(",", "/").encode("ascii")
    try:
        raw = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
        text = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise ParseError("Invalid modified UTF-7 in a mailbox name") from None
    # The canonical encoding of the decoded octets catches padding bits that are not zero.
    if base64.b64encode(raw).rstrip(b"=") != b64:
        raise ParseError("Invalid modified UTF-7 padding in a mailbox name")
    if any(" " <= ch <= "~" for ch in text):
        raise ParseError("Printable ASCII encoded in modified UTF-7")
    return text


def mutf7_encode(s: str) -> str:
    """A mailbox name in modified UTF-7, for clients that did not ENABLE UTF8=ACCEPT.
    Raises UnicodeEncodeError (a ValueError) for a lone surrogate, which has no encoding."""
    out: list[str] = []
    pending: list[str] = []
    for c in s:
        if " " <= c <= "~":
            if pending:
                out.append(_mutf7_shift("".join(pending)))
                pending.clear()
            out.append("&-" if c == "&" else c)
        else:
            pending.append(c)
    if pending:
        out.append(_mutf7_shift("".join(pending)))
    return "".join(out)


def _mutf7_shift(text: str) -> str:
    b64 = base64.b64encode(text.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
    return "&" + b64.decode("ascii") + "-"

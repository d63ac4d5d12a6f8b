"""IMAP wire encoding of values: atoms, quoted strings, literals, flag lists, dates.

RFC 3501 section 4 (RFC 9051 likewise) says which octets each form may carry. A server
only ever sends non-synchronising literals (`{N}` then the octets; a server never waits
for a continuation). With UTF8=ACCEPT enabled (RFC 6855) a quoted string may also carry
8-bit UTF-8; without it, any 8-bit octet must go as a literal.

The choices between quoted and literal follow Dovecot's, so that the bytes of an ENVELOPE
or BODYSTRUCTURE are the ones clients already see from it (tests/test_imap_vs_dovecot.py).
NUL may not appear in any IMAP string: these functions refuse it (ValueError), so callers
replace it first (mailnode.imap.message replaces it with U+FFFD, as Dovecot does).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

# A longer value goes as a literal: a client reads a literal by its count instead of
# scanning one very long line. Header values rarely come near this (RFC 5322: 998 a line).
QUOTED_MAX = 4096
# More quoted-specials than this make a literal shorter than the escaped quoted string
# (Dovecot's QUOTED_MAX_ESCAPE_CHARS, for the same bytes on the wire).
_QUOTED_MAX_ESCAPES = 4
_CR, _LF, _NUL = 0x0D, 0x0A, 0x00
_WHITESPACE = b" \t\r\n"
# RFC 3501 ATOM-CHAR excludes atom-specials; ASTRING-CHAR adds "]" back.
_ASTRING_SPECIALS = frozenset(b'(){ %*"\\')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _check_no_nul(b: bytes) -> None:
    if b"\x00" in b:
        raise ValueError("NUL cannot be sent in an IMAP string")


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _quotable(b: bytes, utf8: bool) -> bool:
    """Whether `b` may go as a quoted string (and is worth quoting rather than a literal)."""
    if len(b) > QUOTED_MAX or b"\r" in b or b"\n" in b:
        return False
    if b.count(b'"') + b.count(b"\\") > _QUOTED_MAX_ESCAPES:
        return False
    return b.isascii() or (utf8 and _is_utf8(b))


def literal(b: bytes) -> bytes:
    """`b` as a server literal `{N}\\r\\n<octets>`: it carries any octet but NUL."""
    _check_no_nul(b)
    return b"{%d}\r\n" % len(b) + b


def quoted(b: bytes) -> bytes:
    """`b` as a quoted string, `"` and `\\` escaped; `b` must be quotable (no CR/LF/NUL)."""
    _check_no_nul(b)
    if b"\r" in b or b"\n" in b:
        raise ValueError("CR and LF cannot be sent in a quoted string")
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def quoted_or_literal(b: bytes, utf8: bool = False) -> bytes:
    """An IMAP string for `b`: quoted when short 7-bit text (or UTF-8 under UTF8=ACCEPT)
    without CR/LF, otherwise a literal."""
    return quoted(b) if _quotable(b, utf8) else literal(b)


def nstring(b: bytes | None, utf8: bool = False) -> bytes:
    """An IMAP nstring: NIL for None, else `quoted_or_literal(b)`."""
    return b"NIL" if b is None else quoted_or_literal(b, utf8)


def nstring_oneline(b: bytes | None, utf8: bool = False) -> bytes:
    """An nstring for a header value that may still hold the line breaks of its folding:
    CR and LF are dropped, and a space is put where a line did not begin with whitespace
    (Dovecot's imap_append_nstring_nolf), so that a folded value goes as one line."""
    if b is None or (b"\r" not in b and b"\n" not in b):
        return nstring(b, utf8)
    out = bytearray()
    for i, c in enumerate(b):
        if c not in (_CR, _LF):
            out.append(c)
        elif i + 1 < len(b) and b[i + 1] not in _WHITESPACE:
            out.append(0x20)
    return nstring(bytes(out), utf8)


def display_string(b: bytes, utf8: bool = False) -> bytes:
    """A string meant for people (ENVELOPE subject, address names), whitespace normalised:
    each run of SP/TAB/CR/LF becomes one space, none at either end. As Dovecot does, a
    value that needed any change, or has `"`, `\\` or 8-bit octets, goes as a literal."""
    _check_no_nul(b)
    words = b.replace(b"\t", b" ").replace(b"\r", b" ").replace(b"\n", b" ").split(b" ")
    text = b" ".join(w for w in words if w)
    if not text:
        return b'""'
    plain = text == b and b'"' not in b and b"\\" not in b
    if plain and len(b) <= QUOTED_MAX and (b.isascii() or (utf8 and _is_utf8(b))):
        return b'"' + b + b'"'
    return literal(text)


def astring(s: str, utf8: bool = False) -> bytes:
    """An IMAP astring for `s` (a mailbox name, a header field name): an atom when every
    character allows it, else quoted or a literal. "" and NIL are quoted, so that they are
    not read as an empty token or as NIL."""
    b = s.encode("utf-8")
    if b and b.upper() != b"NIL" and all(0x20 < c < 0x7F and c not in _ASTRING_SPECIALS for c in b):
        return b
    return quoted_or_literal(b, utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    """A parenthesised flag list, `(\\Seen $Forwarded)`, in the order given."""
    return b"(" + b" ".join(f.encode("ascii") for f in flags) + b")"


def imap_date(dt: datetime) -> bytes:
    """INTERNALDATE date-time, `"02-Dec-2026 10:11:12 +0000"`, with English month names
    whatever the locale; the zone is `dt`'s own offset, so `dt` must be aware."""
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError("an INTERNALDATE needs an aware datetime")
    minutes = int(offset // timedelta(minutes=1))
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    text = (
        f'"{dt.day:02d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} '
        f'{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{hours:02d}{mins:02d}"'
    )
    return text.encode("ascii")

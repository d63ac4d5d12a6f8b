"""What FETCH (and SEARCH) needs from one stored message: ENVELOPE, BODY/BODYSTRUCTURE,
BODY[section], BINARY[section], and decoded header and body text.

IMAP needs the exact octets of every MIME part of the stored message (RFC822.SIZE,
BODYSTRUCTURE sizes and line counts, BODY[1.2] slices). The stdlib `email` parser keeps
no offsets and re-serialises what it parses, and it splits messages by other rules than
IMAP servers do (a line without a colon ends its header; a delimiter must match its
boundary exactly), so offsets found beside it would describe a different tree. The MIME
structure is therefore found here, on the raw bytes, by the rules of Dovecot's lib-mail
(message-parser.c, message-header-parser.c, rfc822-parser.c, rfc2231-parser.c,
message-address.c), so that the answers are the bytes clients see from Dovecot
(tests/test_imap_vs_dovecot.py); `email.utils` reads Date: fields.

Stored messages may have CRLF or bare-LF line ends; every size and offset is of the
stored bytes (Dovecot counts a CR it adds for each bare LF). No input, however broken,
makes a method raise: a message without a header/body separator is all header, an
unterminated multipart runs to the end, and MIME nesting deeper than MAX_DEPTH is opaque
(application/octet-stream).
"""

from __future__ import annotations

import binascii
import datetime
import email.utils
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from mailnode.imap import encode

MAX_DEPTH = 20  # MIME parts nested deeper are opaque (Dovecot's limit is 100)
MAX_PARTS = 10_000  # after this many parts no more boundaries are looked for (as Dovecot)
_MAX_BOUNDARY = 80  # longer boundary parameters are cut (RFC 2046 allows 70)
_MAX_BOUNDARY_LINE = _MAX_BOUNDARY + 4
_MAX_FIELD_NAME = 1000  # a longer "name" before a colon is taken as a line without a name
_NUL_REPLACEMENT = "\ufffd".encode()
_CR, _LF, _SP, _TAB = 0x0D, 0x0A, 0x20, 0x09
_LWSP = (_SP, _TAB)

# -- RFC 822 tokens (Dovecot's rfc822-parser.c) ------------------------------------------
# 1: atext, 2: atext (alpha, digit, 8-bit), 4: atext that is a MIME tspecial ("/", "=", "?").
_ATEXT = bytearray(256)
for _c in b"!#$%&'*+-^_`{|}~":
    _ATEXT[_c] = 1
for _c in b"/=?":
    _ATEXT[_c] = 4
for _c in list(range(0x30, 0x3A)) + list(range(0x41, 0x5B)) + list(range(0x61, 0x7B)):
    _ATEXT[_c] = 2
for _c in range(0x80, 0x100):
    _ATEXT[_c] = 2


def _is_atext(c: int) -> bool:
    return _ATEXT[c] != 0


def _is_token_char(c: int) -> bool:
    return _ATEXT[c] & 3 != 0 or c == 0x2E  # "."


class _Tokens:
    """A cursor over one header value, reading RFC 822/2045 tokens the way Dovecot's
    rfc822-parser.c does (comments and folding skipped, NUL replaced by U+FFFD inside
    quoted strings, comments and domain literals).

    Methods return 1 (more input follows), 0 (input ended) or -1 (invalid input), like
    the C functions, so that the ports of the address and parameter parsers built on
    them keep Dovecot's recovery from broken input."""

    def __init__(self, data: bytes, keep_comments: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        # The text of the last comment skipped (an address's display name in
        # "user@host (Name)"), when the caller wants it.
        self.last_comment: bytearray | None = bytearray() if keep_comments else None

    def peek(self) -> int:
        """The octet at the cursor; 0 at the end (C reads the string's terminator)."""
        return self.data[self.pos] if self.pos < self.end else 0

    def more(self) -> int:
        return 1 if self.pos < self.end else 0

    def skip_comment(self) -> int:
        d, comment = self.data, self.last_comment
        if comment is not None:
            comment.clear()
        level = 1
        self.pos += 1
        start = self.pos
        while self.pos < self.end:
            c = d[self.pos]
            if c == 0:
                if comment is not None:
                    comment += d[start : self.pos] + _NUL_REPLACEMENT
                    start = self.pos + 1
            elif c == 0x28:  # "("
                level += 1
            elif c == 0x29:  # ")"
                level -= 1
                if level == 0:
                    if comment is not None:
                        comment += d[start : self.pos]
                    self.pos += 1
                    return self.more()
            elif c == _LF:
                if comment is not None:
                    stop = self.pos - 1 if self.pos > start and d[self.pos - 1] == _CR else self.pos
                    comment += d[start:stop]
                    start = self.pos + 1
            elif c == 0x5C:  # "\\"
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if d[self.pos] in (_CR, _LF, 0):
                    self.pos -= 1
                else:
                    if comment is not None:
                        comment += d[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        while self.pos < self.end:
            c = self.data[self.pos]
            if c in (_SP, _TAB, _CR, _LF):
                self.pos += 1
            elif c != 0x28:
                break
            elif self.skip_comment() < 0:
                return -1
        return self.more()

    def _run(self, accept: Callable[[int], bool], out: bytearray) -> int:
        """Append the octets `accept` takes to `out`, then skip whitespace and comments."""
        start = self.pos
        while self.pos < self.end and accept(self.data[self.pos]):
            self.pos += 1
        out += self.data[start : self.pos]
        return self.skip_lwsp() if self.pos < self.end else 0

    def atom(self, out: bytearray) -> int:
        if self.pos >= self.end or not _is_atext(self.data[self.pos]):
            return -1
        return self._run(_is_atext, out)

    def dot_atom(self, out: bytearray) -> int:
        if self.pos >= self.end or not _is_atext(self.data[self.pos]):
            return -1
        while True:
            ret = self._run(_is_atext, out)
            if ret <= 0:
                return ret
            if self.peek() != 0x2E:
                return 1
            self.pos += 1
            out += b"."
            if self.skip_lwsp() <= 0 or not _is_atext(self.peek()):
                return -1

    def mime_token(self, out: bytearray) -> int:
        return self._run(_is_token_char, out)

    def _delimited(self, out: bytearray, close: int, keep_close: bool) -> int:
        """A quoted string or domain literal; the cursor is on its opening octet."""
        d = self.data
        start = self.pos if keep_close else self.pos + 1
        self.pos += 1
        while self.pos < self.end:
            c = d[self.pos]
            if c == 0:
                out += d[start : self.pos] + _NUL_REPLACEMENT
                start = self.pos + 1
            elif c == close:
                out += d[start : self.pos + 1] if keep_close else d[start : self.pos]
                self.pos += 1
                return self.skip_lwsp()
            elif keep_close and c == 0x5B:  # "[" inside a domain literal
                return -1
            elif c == _LF:
                stop = self.pos - 1 if self.pos > start and d[self.pos - 1] == _CR else self.pos
                out += d[start:stop]
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if d[self.pos] in (_CR, _LF, 0):
                    if keep_close:  # a domain literal keeps the backslash
                        out += d[start : self.pos]
                        start = self.pos
                    self.pos -= 1
                elif not keep_close:
                    out += d[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def quoted_string(self, out: bytearray) -> int:
        return self._delimited(out, 0x22, keep_close=False)

    def phrase(self, out: bytearray) -> int:
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            if self.peek() == 0x22:
                ret = self.quoted_string(out)
            else:
                ret = self._run(lambda c: _is_atext(c) or c == 0x2E, out)
            if ret <= 0:
                return ret
            c = self.peek()
            if not _is_atext(c) and c not in (0x22, 0x2E):
                break
            out += b" "
        return self.skip_lwsp()

    def domain(self, out: bytearray) -> int:
        self.pos += 1  # "@"
        if self.skip_lwsp() <= 0:
            return -1
        if self.peek() == 0x5B:
            return self._delimited(out, 0x5D, keep_close=True)
        return self.dot_atom(out)

    def content_type(self, out: bytearray) -> int:
        """`type/subtype` into `out`; on -1, `out` holds what could be read (maybe "")."""
        if self.skip_lwsp() <= 0:
            return -1
        if self.mime_token(out) <= 0 or not out:
            return -1
        if self.peek() != 0x2F:
            out.clear()
            return -1
        self.pos += 1
        if self.skip_lwsp() <= 0:
            out.clear()
            return -1
        out += b"/"
        subtype_at = len(out)
        ret = self.mime_token(out)
        if ret < 0 or len(out) == subtype_at or (self.pos != self.end and self.peek() != 0x3B):
            out.clear()
            return -1
        return ret

    def content_param(self) -> tuple[int, bytes, bytes]:
        """One `; name=value` parameter: (1, name, value), (0, ...) at the end, or -1."""
        if self.pos >= self.end:
            return 0, b"", b""
        if self.data[self.pos] != 0x3B:
            return -1, b"", b""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1, b"", b""
        key = bytearray()
        if self.mime_token(key) <= 0 or self.peek() != 0x3D:
            return -1, b"", b""
        self.pos += 1
        value = bytearray()
        ret = self.skip_lwsp()
        if ret <= 0:
            pass  # no value
        elif self.peek() == 0x22:
            ret = self.quoted_string(value)
        elif self.peek() == 0x3D:  # broken input: name==?utf-8?b?...?=
            start = self.pos
            while self.pos < self.end and self.data[self.pos] not in b"; \t\r\n":
                self.pos += 1
            value += self.data[start : self.pos]
        else:
            ret = self.mime_token(value)
        return (-1 if ret < 0 else 1), bytes(key), bytes(value)


Params = list[tuple[bytes, bytes]]


@dataclass
class _Continuation:
    """One `name*N[*]` piece of an RFC 2231 parameter."""

    key: bytes
    index: int
    extended: bool
    value: bytes


def _parameters(tokens: _Tokens) -> Params:
    """The parameters after a Content-Type or Content-Disposition value, RFC 2231 pieces
    joined into one `name*` (charset'language'%-encoded value, as sent) or `name` value;
    pieces with a gap in their numbering are kept apart (Dovecot's rfc2231_parse)."""
    plain: Params = []
    pieces: list[_Continuation] = []
    index = 0  # carried over from the previous piece, as in Dovecot, for a bare "name*"
    while True:
        ret, key, value = tokens.content_param()
        if ret == 0:
            break
        if ret < 0:
            if tokens.pos >= tokens.end:
                break
            tokens.pos += 1  # try to resynchronise on the next octet
            continue
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        rest = key[star:]  # "*", "*N", "*N*"
        if len(rest) > 1:
            rest = rest[1:]
            digits = len(rest) - len(rest.lstrip(b"0123456789"))
            index = int(rest[:digits] or b"0") & 0xFFFFFFFF
            rest = rest[digits:]
        extended = rest[:1] == b"*"
        if rest[1 if extended else 0 :]:
            plain.append((key, value))
        else:
            pieces.append(_Continuation(key[:star], index, extended, value))
    return plain + _join_continuations(pieces)


def _join_continuations(pieces: list[_Continuation]) -> Params:
    pieces.sort(key=lambda p: (p.key, p.index))
    out: Params = []
    i = 0
    while i < len(pieces):
        j = i
        while j < len(pieces) and pieces[j].key.lower() == pieces[i].key.lower():
            j += 1
        group = pieces[i:j]
        in_order = all(p.index == n for n, p in enumerate(group))
        extended = any(p.extended for p in group)
        if not in_order:
            for p in group:
                suffix = b"*%d*" % p.index if p.extended else b"*%d" % p.index
                out.append((p.key + suffix, p.value))
        else:
            value = b"''" if extended and not group[0].extended else b""
            for p in group:
                plain_piece = extended and not p.extended
                value += p.value.replace(b"%", b"%25") if plain_piece else p.value
            out.append((group[0].key + (b"*" if extended else b""), value))
        i = j
    return out


# -- addresses (Dovecot's message-address.c, with its MISSING_* fill-ins) -----------------
@dataclass
class _Address:
    """One ENVELOPE address; a group is a start (mailbox = group name, no domain) and an
    end (all None) around its members, as RFC 3501 section 7.4.2 encodes groups."""

    name: bytes | None = None
    route: bytes | None = None
    mailbox: bytes | None = None
    domain: bytes | None = None


class _AddressParser:
    """An address-list header value to ENVELOPE addresses, recovering from broken input
    the way Dovecot's message_address_parse() does (MESSAGE_ADDRESS_PARSE_FLAG_FILL_MISSING)."""

    def __init__(self, value: bytes) -> None:
        self.t = _Tokens(value, keep_comments=True)
        self.out: list[_Address] = []
        self.cur = _Address()
        # Whether the current address's addr-spec was found broken, which decides if a
        # lone word is a display name (Dovecot's invalid_syntax, as far as it matters).
        self.invalid = False
        self.buf = bytearray()

    def parse(self) -> list[_Address]:
        if self.t.skip_lwsp() > 0:
            self._address_list()
        return self.out

    def _add(self) -> None:
        self.out.append(self.cur)
        self.cur = _Address()
        self.invalid = False

    def _add_fixed(self) -> None:
        if self.cur.mailbox is None:
            self.cur.mailbox = b"MISSING_MAILBOX"
        if not self.cur.domain:
            self.cur.domain = b"MISSING_DOMAIN"
        self._add()

    def _local_part(self) -> int:
        t = self.t
        self.buf.clear()
        ret = t.quoted_string(self.buf) if t.peek() == 0x22 else self._loose_dot_atom()
        if ret >= 0:
            self.cur.mailbox = bytes(self.buf)
        return ret

    def _loose_dot_atom(self) -> int:
        """A local part that may have leading, trailing or doubled dots."""
        t = self.t
        ret = -1
        while True:
            while t.peek() == 0x2E:
                self.buf += b"."
                t.pos += 1
                if t.pos == t.end:
                    return 0
                ret = 1
            if t.peek() == 0x40:
                return ret
            ret = t.atom(self.buf)
            if ret <= 0 or t.peek() != 0x2E:
                return ret

    def _domain(self) -> int:
        self.buf.clear()
        ret = self.t.domain(self.buf)
        if ret >= 0:
            self.cur.domain = bytes(self.buf)
        return ret

    def _route(self) -> int:
        t = self.t
        self.buf.clear()
        while True:
            if t.pos >= t.end:
                return 0
            if t.peek() != 0x40:
                break
            if self.buf:
                self.buf += b","
            self.buf += b"@"
            ret = t.domain(self.buf)
            if ret <= 0:
                return ret
            while t.skip_lwsp() > 0 and t.peek() == 0x2C:
                t.pos += 1
        self.cur.route = bytes(self.buf)
        return 1

    def _angle_addr(self) -> int:
        t = self.t
        t.pos += 1  # "<"
        if t.skip_lwsp() <= 0:
            return -1
        if t.peek() == 0x40:
            if self._route() > 0 and t.peek() == 0x3A:
                t.pos += 1
            else:
                self.cur.route = b"INVALID_ROUTE"
                if t.pos >= t.end:
                    return -1
            if t.skip_lwsp() <= 0:
                return -1
        if t.peek() != 0x3E:
            if self._local_part() <= 0:
                return -1
            if t.peek() == 0x40 and self._domain() <= 0:
                return -1
        if t.peek() != 0x3E:
            return -1
        t.pos += 1
        return t.skip_lwsp()

    def _name_addr(self) -> int:
        t = self.t
        self.buf.clear()
        if t.phrase(self.buf) <= 0 or t.peek() != 0x3C:
            return -1
        self.cur.name = bytes(self.buf) or None
        if self._angle_addr() < 0:
            self.cur.domain = b"SYNTAX_ERROR"
        return t.more()

    def _addr_spec(self) -> int:
        t = self.t
        assert t.last_comment is not None
        t.last_comment.clear()
        quoted = t.peek() == 0x22
        ret = self._local_part()
        if ret <= 0:
            self.invalid = True
        got_domain = False
        if ret != 0 and t.pos < t.end and t.peek() == 0x40:
            got_domain = True
            ret2 = self._domain()
            if ret2 <= 0:
                ret = ret2
        if t.last_comment:
            self.cur.name = bytes(t.last_comment)
        elif not got_domain:
            # "user" alone is a mailbox; "some words" without @domain a display name.
            self.buf += b" "
            before = len(self.buf)
            t.phrase(self.buf)
            if len(self.buf) != before:
                self.cur.mailbox = None
                self.cur.name = bytes(self.buf)
            elif not quoted:
                self.cur.domain = b""
            self.invalid = True
            ret = -1
        return ret

    def _mailbox(self) -> int:
        start = self.t.pos
        ret = self._name_addr()
        if ret < 0:
            self.t.pos = start
            ret = self._addr_spec()
            c = self.cur
            if self.invalid and c.name is None and c.mailbox is not None and c.domain is None:
                c.name, c.mailbox = c.mailbox, None
        self._add_fixed()
        return ret

    def _group(self) -> int:
        t = self.t
        self.buf.clear()
        if t.phrase(self.buf) <= 0 or t.peek() != 0x3A:
            return -1
        t.pos += 1
        ret = t.skip_lwsp()
        self.cur.mailbox = bytes(self.buf)
        self._add()
        if ret > 0 and t.peek() != 0x3B:
            while True:
                self._mailbox()
                if t.pos >= t.end or t.peek() != 0x2C:
                    break
                t.pos += 1
                if t.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if t.pos >= t.end or t.peek() != 0x3B:
                ret = -1
            else:
                t.pos += 1
                ret = t.skip_lwsp()
        self._add()
        return 0 if ret == 0 else 1

    def _address(self) -> int:
        start = self.t.pos
        ret = self._group()
        if ret < 0:
            self.t.pos = start
            ret = self._mailbox()
        return ret

    def _address_list(self) -> None:
        t = self.t
        while self._address() != 0:
            if t.pos >= t.end or t.peek() != 0x2C:
                return
            t.pos += 1
            ret = t.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self._add_fixed()
                return


# -- header fields ---------------------------------------------------------------------
@dataclass
class _Field:
    """One header field: its name (b"" for a line without a colon), its value with the
    initial whitespace skipped and continuation lines joined by LF (CRs dropped), and the
    offsets of its original lines, line ends included."""

    name: bytes
    value: bytes
    start: int
    end: int

    def is_named(self, lower_name: bytes) -> bool:
        return self.name.lower() == lower_name


@dataclass
class _Header:
    """A header block [start, end); `blank` is the empty line that ended it (b"" when the
    input or a boundary line ended it first)."""

    start: int
    end: int
    fields: list[_Field]
    blank: bytes

    def first(self, lower_name: bytes) -> _Field | None:
        return next((f for f in self.fields if f.is_named(lower_name)), None)

    def newline(self, raw: bytes) -> bytes:
        """The line end this header uses, for lines we add to its copies."""
        if self.blank:
            return self.blank
        lf = raw.find(b"\n", self.start, self.end)
        return b"\n" if lf > self.start and raw[lf - 1] != _CR else b"\r\n"


def _field_from_line(raw: bytes, start: int, stop: int) -> _Field:
    """A field from its first line raw[start:stop] (line end excluded); its end is set
    when the next field starts."""
    line = raw[start:stop]
    colon = line.find(b":")
    if colon < 0:
        return _Field(b"", line, start, start)
    name = line[:colon].rstrip(b" \t")
    if len(name) > _MAX_FIELD_NAME:
        return _Field(b"", line, start, start)
    value = line[colon + 1 :]
    stripped = value.lstrip(b" \t")
    # A value of only whitespace loses just its first octet (as in Dovecot).
    return _Field(name, stripped if stripped or not value else value[1:], start, start)


class _Fields:
    """Collects the fields of a header as its lines are read; continuation lines are
    gathered and joined once (a header may have many thousands of them)."""

    def __init__(self) -> None:
        self.fields: list[_Field] = []
        self.pieces: list[bytes] = []

    def _close_last(self, end: int) -> None:
        if self.fields:
            last = self.fields[-1]
            if self.pieces:
                last.value = b"\n".join([last.value, *self.pieces])
                self.pieces = []
            last.end = end

    def start_new(self, f: _Field) -> None:
        self._close_last(f.start)
        self.fields.append(f)

    def continue_with(self, line: bytes) -> bool:
        """Add a continuation line to the last field; False when there is none."""
        if not self.fields:
            return False
        self.pieces.append(line)
        return True

    def done(self, end: int) -> list[_Field]:
        self._close_last(end)
        return self.fields


@dataclass(eq=False)
class _Boundary:
    """An open multipart's boundary; compared by identity, as nested multiparts may
    share a boundary text."""

    text: bytes


@dataclass
class _Hit:
    """A boundary delimiter line found at `line_start`; `newline` is the length of the
    [CR]LF before it (0 on a body's first line), which belongs to the delimiter."""

    boundary: _Boundary
    line_start: int
    newline: int
    closing: bool
    line_end: int | None  # after the rest of the delimiter line and its LF; None: no LF


# -- MIME structure --------------------------------------------------------------------
@dataclass
class _Mime:
    """The Content-* data of one part (Dovecot's message_part_data), as BODYSTRUCTURE
    writes it: values as sent, parameters unquoted."""

    type: bytes | None = None
    subtype: bytes = b""
    params: Params = field(default_factory=list)
    id: bytes | None = None
    description: bytes | None = None
    encoding: bytes | None = None
    md5: bytes | None = None
    disposition: bytes | None = None
    disposition_params: Params | None = None
    language: list[bytes] | None = None
    location: bytes | None = None


@dataclass(eq=False)
class _Part:
    """One MIME part: header [start, header.end), body [header.end, body_end)."""

    start: int
    header: _Header
    body_end: int
    mime: _Mime
    text: bool = False
    multipart: bool = False
    digest: bool = False
    rfc822: bool = False
    # A multipart or message/rfc822 part not parsed into (too deep, too many parts).
    opaque: bool = False
    boundary: bytes | None = None  # a multipart's boundary parameter
    children: list[_Part] = field(default_factory=list)

    @property
    def body_start(self) -> int:
        return self.header.end


def _header_string(value: bytes) -> bytes:
    """A header value kept as a string (Dovecot's message_header_strdup): NUL replaced."""
    return value.replace(b"\x00", _NUL_REPLACEMENT)


def _content_type(value: bytes) -> tuple[int, bytes, _Tokens]:
    tokens = _Tokens(value)
    tokens.skip_lwsp()
    out = bytearray()
    ret = tokens.content_type(out)
    return ret, bytes(out), tokens


def _encoding_token(value: bytes) -> bytes | None:
    tokens = _Tokens(value)
    tokens.skip_lwsp()
    out = bytearray()
    if tokens.mime_token(out) >= 0 and tokens.skip_lwsp() == 0 and out:
        return bytes(out)
    return None


def _languages(value: bytes) -> list[bytes] | None:
    tokens = _Tokens(value)
    tokens.skip_lwsp()
    langs: list[bytes] = []
    while True:
        out = bytearray()
        if tokens.atom(out) < 0:
            break
        langs.append(bytes(out))
        if tokens.peek() != 0x2C or tokens.pos >= tokens.end:
            break
        tokens.pos += 1
        tokens.skip_lwsp()
    return langs or None


def _content_field(m: _Mime, name: bytes, value: bytes) -> None:
    """Take one Content-* field into `m`; as Dovecot, the first of each kind counts."""
    if name == b"type" and m.type is None:
        ret, ctype, tokens = _content_type(value)
        m.type, _, m.subtype = ctype.partition(b"/")
        if ret >= 0:
            m.params = _parameters(tokens)
    elif name == b"transfer-encoding" and m.encoding is None:
        m.encoding = _encoding_token(value)
    elif name == b"id" and m.id is None:
        m.id = _header_string(value)
    elif name == b"md5" and m.md5 is None:
        m.md5 = _header_string(value)
    elif name == b"description" and m.description is None:
        m.description = _header_string(value)
    elif name == b"location" and m.location is None:
        m.location = _header_string(value)
    elif name == b"language" and m.language is None:
        m.language = _languages(value)
    elif name == b"disposition" and m.disposition_params is None:
        tokens = _Tokens(value)
        tokens.skip_lwsp()
        out = bytearray()
        if tokens.mime_token(out) >= 0:
            m.disposition = bytes(out)
            m.disposition_params = _parameters(tokens) or None


def _mime_data(header: _Header, is_mime: bool) -> _Mime:
    m = _Mime()
    if not is_mime:  # without MIME-Version or Content-Type, Content-* fields mean nothing
        return m
    for f in header.fields:
        lower = f.name.lower()
        if lower.startswith(b"content-"):
            _content_field(m, lower[8:], f.value)
    return m


class _TreeBuilder:
    """Finds the MIME parts of a message on its raw bytes (Dovecot's message-parser.c):
    delimiter lines are recognised by prefix, the innermost and then longest boundary
    first; the line break before a delimiter belongs to it; an unterminated multipart
    ends where an enclosing one's delimiter or the input does."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.boundaries: list[_Boundary] = []
        self.parts = 0

    def root(self) -> _Part:
        part, _hit, _extent = self._entity(0, None, 0)
        return part

    def _entity(self, pos: int, parent: _Part | None, depth: int) -> tuple[_Part, _Hit | None, int]:
        """The part at `pos`, the delimiter that ended it (None: the input's end), and
        where its parent's body has got to: the part's end, or past the line break a
        delimiter took from it."""
        self.parts += 1
        header, cut, moved = self._header(pos)
        part = _Part(pos, header, header.end, _Mime())
        self._classify(part, parent)
        own = None
        if cut is None and header.blank:
            own = self._open_multipart(part, depth)
            cut, moved = self._delimiter_after_blank(part, own)
        if cut is not None:
            if own is not None:
                self.boundaries.remove(own)
            return self._cut_short(part, cut, moved, depth)
        if own is not None:
            return self._multipart(part, own, depth)
        if part.rfc822:
            if self._can_nest(depth) and self.parts < MAX_PARTS:
                child, hit, extent = self._entity(header.end, part, depth + 1)
                part.children.append(child)
                part.body_end = extent
                return part, hit, extent
            part.rfc822, part.opaque = False, True
        hit = self._next_delimiter(header.end)
        part.body_end = hit.line_start - hit.newline if hit else len(self.raw)
        return part, hit, part.body_end

    @staticmethod
    def _can_nest(depth: int) -> bool:
        return depth + 1 < MAX_DEPTH

    def _open_multipart(self, part: _Part, depth: int) -> _Boundary | None:
        """At the end of a multipart's header: its boundary, now open; None if it has
        none, or if it is nested too deep (then it is opaque)."""
        if not part.multipart or part.boundary is None:
            return None
        if not self._can_nest(depth):
            part.multipart, part.opaque = False, True
            return None
        own = _Boundary(part.boundary)
        self.boundaries.append(own)
        return own

    def _delimiter_after_blank(self, part: _Part, own: _Boundary | None) -> tuple[_Hit | None, int]:
        """An enclosing multipart's delimiter right after the header's empty line takes
        that line's line break (Dovecot checks for a delimiter there before it ends the
        header): the part then has a header without an empty line, and no body."""
        header = part.header
        if not self.boundaries or not self.raw.startswith(b"--", header.end):
            return None, 0
        hit = self._delimiter_at(header.end, len(header.blank))
        if hit is None or hit.boundary is own:
            return None, 0
        moved = len(header.blank)
        header.end -= moved
        header.blank = b""
        part.body_end = header.end
        return hit, moved

    def _cut_short(self, part: _Part, hit: _Hit, moved: int, depth: int) -> tuple[_Part, _Hit, int]:
        """A part ended by a delimiter before its body: the line break before the
        delimiter, `moved` octets, goes to the parent's body (Dovecot's accounting, kept
        for identical sizes); a message/rfc822 part holds an empty message."""
        end = part.header.end
        if part.rfc822:
            if self._can_nest(depth) and self.parts < MAX_PARTS:
                empty = _Part(end, _Header(end, end, [], b""), end, _Mime())
                self._classify(empty, part)
                self.parts += 1
                part.children.append(empty)
            else:
                part.rfc822, part.opaque = False, True
        return part, hit, end + moved

    def _multipart(self, part: _Part, own: _Boundary, depth: int) -> tuple[_Part, _Hit | None, int]:
        hit = self._next_delimiter(part.body_start)
        extent = hit.line_start - hit.newline if hit else len(self.raw)
        while hit is not None and hit.boundary is own:
            after = hit.line_end
            if after is None:  # the input ends on the delimiter line
                hit, extent = None, len(self.raw)
            elif hit.closing:
                self.boundaries.remove(own)
                hit = self._next_delimiter(after)
                extent = hit.line_start - hit.newline if hit else len(self.raw)
                break
            else:
                child, hit, extent = self._entity(after, part, depth + 1)
                part.children.append(child)
        if own in self.boundaries:
            self.boundaries.remove(own)
        part.body_end = extent
        return part, hit, extent

    def _classify(self, part: _Part, parent: _Part | None) -> None:
        """Set the part's kind from its header (message-parser.c's parse_content_type and
        end-of-header rules), and its Content-* data."""
        header = part.header
        in_multipart = parent is not None and parent.multipart
        ctype_field = header.first(b"content-type")
        is_mime = (
            in_multipart or ctype_field is not None or header.first(b"mime-version") is not None
        )
        part.mime = _mime_data(header, is_mime)
        part.boundary = None
        if ctype_field is not None:
            ret, ctype, tokens = _content_type(ctype_field.value)
            lower = ctype.lower()
            part.rfc822 = lower == b"message/rfc822"
            part.text = lower[:4] == b"text" and (len(lower) == 4 or lower[4:5] == b"/")
            part.multipart = lower.startswith(b"multipart/")
            part.digest = lower == b"multipart/digest"
            if ret >= 0 and part.multipart:
                part.boundary = next(
                    (v[:_MAX_BOUNDARY] for k, v in _parameters(tokens) if k.lower() == b"boundary"),
                    None,
                )
        else:
            if parent is not None and parent.digest:
                part.rfc822 = True
            else:
                part.text = True

    def _header(self, pos: int) -> tuple[_Header, _Hit | None, int]:
        """The header block at `pos`, ended by an empty line, the input's end or a
        delimiter line of an enclosing multipart (then returned, with the length of the
        line break before it, which the header then gives up)."""
        raw, size = self.raw, len(self.raw)
        fields = _Fields()
        start = pos
        last_newline = 0
        while pos < size:
            if self.boundaries and raw.startswith(b"--", pos):
                hit = self._delimiter_at(pos, last_newline)
                if hit is not None:
                    end = pos - last_newline
                    return _Header(start, end, fields.done(end), b""), hit, last_newline
            if raw[pos] == _LF or raw.startswith(b"\r\n", pos):
                blank = b"\n" if raw[pos] == _LF else b"\r\n"
                return _Header(start, pos + len(blank), fields.done(pos), blank), None, 0
            lf = raw.find(b"\n", pos)
            line_end = size if lf < 0 else lf + 1
            stop = size if lf < 0 else (lf - 1 if lf > pos and raw[lf - 1] == _CR else lf)
            last_newline = line_end - stop
            if not (raw[pos] in _LWSP and fields.continue_with(raw[pos:stop])):
                fields.start_new(_field_from_line(raw, pos, stop))
            pos = line_end
        return _Header(start, size, fields.done(size), b""), None, 0

    def _delimiter_at(self, pos: int, newline: int) -> _Hit | None:
        """The delimiter line of an open multipart at `pos` (which starts with "--")."""
        if self.parts >= MAX_PARTS:
            return None
        raw = self.raw
        text_at = pos + 2
        lf = raw.find(b"\n", text_at)
        if lf >= 0:
            length = lf - text_at
            if length > 0 and raw[lf - 1] == _CR:
                length -= 1
            dashes = length > 2 and raw.startswith(b"--", text_at + length - 2)
        else:
            length = min(len(raw) - text_at, _MAX_BOUNDARY_LINE)
            dashes = False
        best: _Boundary | None = None
        for b in reversed(self.boundaries):
            n = len(b.text)
            if (
                n <= length
                and raw.startswith(b.text, text_at)
                and (best is None or len(best.text) < n)
            ):
                best = b
                if n == length or (n == length - 2 and dashes):
                    break
        if best is None:
            return None
        closing = raw.startswith(b"--", text_at + len(best.text))
        return _Hit(best, pos, newline, closing, None if lf < 0 else lf + 1)

    def _next_delimiter(self, pos: int) -> _Hit | None:
        """The first delimiter line of an open multipart at or after `pos`, a line start."""
        if not self.boundaries:
            return None
        raw = self.raw
        if raw.startswith(b"--", pos):
            hit = self._delimiter_at(pos, 0)
            if hit is not None:
                return hit
        at = pos
        while True:
            lf = raw.find(b"\n--", at)
            if lf < 0:
                return None
            newline = 2 if lf > pos and raw[lf - 1] == _CR else 1
            hit = self._delimiter_at(lf + 1, newline)
            if hit is not None:
                return hit
            at = lf + 1


# -- ENVELOPE and BODYSTRUCTURE --------------------------------------------------------
_ENVELOPE_STRINGS = (b"date", b"subject", b"in-reply-to", b"message-id")
_ENVELOPE_ADDRESSES = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")
_NIL = b"NIL"


@dataclass
class _Envelope:
    """The ENVELOPE fields of a header: of Date, Subject, In-Reply-To and Message-ID the
    last one counts, and repeated address fields are merged (both as Dovecot does)."""

    strings: dict[bytes, bytes]
    addresses: dict[bytes, list[_Address]]

    @classmethod
    def of(cls, header: _Header) -> _Envelope:
        env = cls({}, {})
        for f in header.fields:
            lower = f.name.lower()
            if lower in _ENVELOPE_STRINGS:
                env.strings[lower] = _header_string(f.value)
            elif lower in _ENVELOPE_ADDRESSES:
                env.addresses.setdefault(lower, []).extend(_AddressParser(f.value).parse())
        return env

    def write(self, utf8: bool) -> bytes:
        s, a = self.strings, self.addresses
        subject = s.get(b"subject")
        from_ = a.get(b"from")
        fields = [
            encode.nstring_oneline(s.get(b"date"), utf8),
            _NIL if subject is None else encode.display_string(subject, utf8),
            _write_addresses(from_, utf8),
            _write_addresses(a.get(b"sender") or from_, utf8),
            _write_addresses(a.get(b"reply-to") or from_, utf8),
            _write_addresses(a.get(b"to"), utf8),
            _write_addresses(a.get(b"cc"), utf8),
            _write_addresses(a.get(b"bcc"), utf8),
            encode.nstring_oneline(s.get(b"in-reply-to"), utf8),
            encode.nstring_oneline(s.get(b"message-id"), utf8),
        ]
        return b"(" + b" ".join(fields) + b")"


def _write_addresses(addresses: list[_Address] | None, utf8: bool) -> bytes:
    if not addresses:
        return _NIL
    out = bytearray(b"(")
    for a in addresses:
        name = _NIL if a.name is None else encode.display_string(a.name, utf8)
        route = encode.nstring(a.route, utf8)
        out += b"(%s %s %s %s)" % (
            name,
            route,
            encode.nstring(a.mailbox, utf8),
            encode.nstring(a.domain, utf8),
        )
    return bytes(out + b")")


class _StructureWriter:
    """BODY (non-extensible) or BODYSTRUCTURE of a part tree, RFC 3501 section 7.4.2,
    in Dovecot's spelling (lower-case defaults, charset default last)."""

    def __init__(self, raw: bytes, extensible: bool, utf8: bool) -> None:
        self.raw = raw
        self.extensible = extensible
        self.utf8 = utf8

    def _string(self, b: bytes) -> bytes:
        return encode.quoted_or_literal(b, self.utf8)

    def _params(self, params: Params | None, default_charset: bool) -> bytes:
        params = params or []
        if not params and not default_charset:
            return _NIL
        items = [self._string(k) + b" " + self._string(v) for k, v in params]
        if default_charset and not any(k.lower() == b"charset" for k, _ in params):
            items.append(b'"charset" "us-ascii"')
        return b"(" + b" ".join(items) + b")"

    def _extension(self, m: _Mime) -> list[bytes]:
        """body-fld-dsp, body-fld-lang and body-fld-loc."""
        if m.disposition is None:
            disposition = _NIL
        else:
            disposition = b"(%s %s)" % (
                self._string(m.disposition),
                self._params(m.disposition_params, False),
            )
        if m.language is None:
            language = _NIL
        else:
            language = b"(" + b" ".join(self._string(lang) for lang in m.language) + b")"
        return [disposition, language, encode.nstring_oneline(m.location, self.utf8)]

    def write(self, p: _Part) -> bytes:
        return b"(" + (self._multipart(p) if p.multipart else self._single(p)) + b")"

    def _multipart(self, p: _Part) -> bytes:
        if p.children:
            out = b"".join(self.write(c) for c in p.children)
        else:  # a multipart without parts (no boundary): one empty text/plain part
            out = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'
            out += b" NIL NIL NIL NIL)" if self.extensible else b")"
        out += b" " + self._string(p.mime.subtype)
        if self.extensible:
            out += b" " + b" ".join([self._params(p.mime.params, False), *self._extension(p.mime)])
        return out

    def _single(self, p: _Part) -> bytes:
        m = p.mime
        text = False
        if p.rfc822:
            fields = [b'"message" "rfc822"']
        elif p.opaque:  # a multipart or message/rfc822 not parsed into
            fields = [b'"application" "octet-stream"']
        elif m.type is None:
            fields, text = [b'"text" "plain"'], True
        else:
            fields, text = (
                [self._string(m.type) + b" " + self._string(m.subtype)],
                m.type.lower() == b"text",
            )
        size = p.body_end - p.body_start
        lines = b"%d" % self.raw.count(b"\n", p.body_start, p.body_end)
        fields += [
            self._params(m.params, text),
            encode.nstring_oneline(m.id, self.utf8),
            encode.nstring_oneline(m.description, self.utf8),
            b'"7bit"' if m.encoding is None else self._string(m.encoding),
            b"%d" % size,
        ]
        if text:
            fields.append(lines)
        elif p.rfc822:
            child = p.children[0]
            fields += [_Envelope.of(child.header).write(self.utf8), self.write(child), lines]
        if self.extensible:
            fields += [encode.nstring_oneline(m.md5, self.utf8), *self._extension(m)]
        return b" ".join(fields)


# -- decoding --------------------------------------------------------------------------
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_QP_SOFT_BREAK = re.compile(rb"=[ \t]*$")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_IDENTITY = (b"7bit", b"8bit", b"binary")


def _unhex(data: bytes) -> bytes:
    return _QP_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), data)


def _decode_qp(data: bytes) -> bytes:
    """Quoted-printable, leniently: soft line breaks joined, trailing whitespace dropped,
    =XX decoded (either case), any other "=" kept; line ends are kept as stored."""
    out = bytearray()
    for line in data.splitlines(keepends=True):
        content = line.rstrip(b"\r\n")
        ending = line[len(content) :]
        soft = _QP_SOFT_BREAK.search(content)
        if soft is not None and ending:
            out += _unhex(content[: soft.start()])
        else:
            out += _unhex(content.rstrip(b" \t")) + ending
    return bytes(out)


def _decode_base64(data: bytes) -> bytes:
    """Base64, leniently: octets outside the alphabet skipped, missing padding supplied."""
    data = _NOT_BASE64.sub(b"", data)
    extra = len(data) % 4
    if extra == 1:
        data = data[:-1]
    elif extra:
        data += b"=" * (4 - extra)
    return binascii.a2b_base64(data)


def _transfer_decoder(encoding: bytes | None) -> Callable[[bytes], bytes] | None:
    """How to remove a Content-Transfer-Encoding; None for one we do not know."""
    lower = (encoding or b"7bit").lower()
    if lower in _IDENTITY:
        return bytes
    if lower == b"base64":
        return _decode_base64
    if lower == b"quoted-printable":
        return _decode_qp
    return None


def _to_text(data: bytes, charset: str | None) -> str:
    """`data` in `charset`, bad octets replaced. Without a charset Python knows, 8-bit
    text is taken as UTF-8 when it is valid UTF-8, else as ISO-8859-1."""
    if charset:
        try:
            return data.decode(charset, "replace")
        except (LookupError, ValueError, TypeError):
            pass  # unknown or unusable charset name
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_word(m: re.Match[str]) -> str:
    charset = m[1].split("*", 1)[0]  # RFC 2231 section 5: charset*language
    payload = m[3].encode("utf-8")
    data = _decode_base64(payload) if m[2] in "Bb" else _unhex(payload.replace(b"_", b" "))
    return _to_text(data, charset)


def _decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded; whitespace between two of them dropped (6.2)."""
    pieces: list[str] = []
    pos = 0
    after_word = False
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        pieces.append("" if after_word and not gap.strip() else gap)
        pieces.append(_decode_word(m))
        pos = m.end()
        after_word = True
    pieces.append(text[pos:])
    return "".join(pieces)


def _field_text(value: bytes) -> str:
    """A header value as text: unfolded, NUL replaced, RFC 2047 words decoded."""
    unfolded = value.replace(b"\r", b"").replace(b"\n", b"")
    return _decode_words(_to_text(_header_string(unfolded), None)).strip()


def _charset(m: _Mime) -> str | None:
    for k, v in m.params:
        if k.lower() == b"charset":
            return v.decode("ascii", "replace").strip()
    return None


# -- the message -----------------------------------------------------------------------
class ParsedMessage:
    """One stored message as FETCH and SEARCH see it, parsed lazily: an ENVELOPE reads
    only the header; a BODYSTRUCTURE, a section or the body text parse the MIME tree once.

    Part numbers are RFC 3501's: (1, 2) is BODY[1.2]; () is the whole message. A
    non-multipart message's part 1 is its body; part N of a message/rfc822 part is part
    N of the message inside it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def size(self) -> int:
        """RFC822.SIZE: the octets of the message as stored."""
        return len(self._raw)

    @cached_property
    def _root_header(self) -> _Header:
        header, _cut, _newline = _TreeBuilder(self._raw)._header(0)
        return header

    @cached_property
    def _tree(self) -> _Part:
        return _TreeBuilder(self._raw).root()

    def envelope(self, utf8: bool = False) -> bytes:
        """The parenthesised RFC 3501 ENVELOPE. Subject and names are the header's text
        as sent (RFC 2047 words not decoded, as RFC 3501 and Dovecot have it); 8-bit text
        goes as a literal unless the session enabled UTF8=ACCEPT (`utf8`)."""
        return _Envelope.of(self._root_header).write(utf8)

    def bodystructure(self, extensible: bool = True, utf8: bool = False) -> bytes:
        """The parenthesised BODYSTRUCTURE (`extensible`) or BODY (not): types as sent,
        parameter values unquoted, body sizes in stored octets, text line counts."""
        return _StructureWriter(self._raw, extensible, utf8).write(self._tree)

    def _find(self, part: tuple[int, ...]) -> _Part | None:
        """The part a section number names (Dovecot's imap_msgpart_find)."""
        node: _Part | None = self._tree
        for i, number in enumerate(part):
            assert node is not None
            last = i == len(part) - 1
            if node.multipart:
                node = node.children[number - 1] if 0 < number <= len(node.children) else None
            elif number != 1 or (not last and not node.rfc822):
                node = None
            if node is None:
                return None
            if node.rfc822 and not last:
                node = node.children[0]
        return node

    def _body(self, p: _Part) -> bytes:
        return self._raw[p.body_start : p.body_end]

    def _header_bytes(self, p: _Part) -> bytes:
        return self._raw[p.start : p.body_start]

    def section(
        self, part: tuple[int, ...], text: str | None, fields: tuple[str, ...] = ()
    ) -> bytes:
        """BODY[section] content (RFC 3501 6.4.5), NULs sent as 0x80 as Dovecot does.

        `text` is None (the part's body, or the whole message for part ()), "HEADER",
        "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" (of the message, or of the message in
        a message/rfc822 part) or "MIME" (a part's own MIME header); `fields` are the
        HEADER.FIELDS names. A part that does not exist, or HEADER/TEXT of a part that is
        not a message, is b"": Dovecot answers those with an empty string too."""
        kind = (text or "").upper()
        if kind not in ("", "MIME", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
            raise ValueError(f"unknown section text {text!r}")
        if not part and kind != "MIME":
            # The message's own header or text: no MIME tree needed (the common FETCH).
            if kind == "":
                return self._raw.replace(b"\x00", b"\x80")
            h = self._root_header
            if kind == "TEXT":
                data = self._raw[h.end :]
            elif kind == "HEADER":
                data = self._raw[h.start : h.end]
            else:
                data = self._header_fields(h, fields, kind == "HEADER.FIELDS")
            return data.replace(b"\x00", b"\x80")
        target = self._find(part)
        if target is None or (kind == "MIME" and not part):
            return b""
        if kind == "":
            data = self._body(target) if part else self._raw
        elif kind == "MIME":
            data = self._header_bytes(target)
        else:
            if part:
                if not target.rfc822:
                    return b""
                target = target.children[0]
            if kind == "TEXT":
                data = self._body(target)
            elif kind == "HEADER":
                data = self._header_bytes(target)
            else:
                data = self._header_fields(target.header, fields, kind == "HEADER.FIELDS")
        return data.replace(b"\x00", b"\x80")

    def _header_fields(self, header: _Header, names: tuple[str, ...], include: bool) -> bytes:
        """The fields named (`include`) or all others, with their original lines and
        folding, and the header's empty line. HEADER.FIELDS always ends with an empty
        line, so that it reads as a header even from a message that is all header (as
        Dovecot means to: HEADER_FILTER_ADD_MISSING_EOH); HEADER.FIELDS.NOT, like
        HEADER, is a copy of the header and has the empty line only if the header has."""
        wanted = {n.lower().encode("utf-8", "replace") for n in names}
        lines = [
            self._raw[f.start : f.end]
            for f in header.fields
            if (f.name.lower() in wanted) == include
        ]
        if header.blank or not include:
            return b"".join([*lines, header.blank])
        newline = header.newline(self._raw)
        if lines and not lines[-1].endswith(b"\n"):
            lines[-1] += newline
        return b"".join([*lines, newline])

    def binary(self, part: tuple[int, ...]) -> bytes | None:
        """BINARY[section] content (RFC 3516): the part's body with its
        Content-Transfer-Encoding removed; for part () or a part holding other parts,
        their raw text with each one's encoding removed and its header saying
        "Content-Transfer-Encoding: binary" (as Dovecot does). None when an encoding is
        unknown: the server answers NO [UNKNOWN-CTE]. b"" for a part that does not exist.
        Base64 and quoted-printable are decoded leniently (Dovecot fails the FETCH)."""
        target = self._find(part)
        if target is None:
            return b""
        out: list[bytes] = []
        if not self._binary_into(target, not part, out):
            return None
        return b"".join(out)

    def binary_size(self, part: tuple[int, ...]) -> int | None:
        """BINARY.SIZE[section]: the octets binary(part) has; None for an unknown encoding."""
        data = self.binary(part)
        return None if data is None else len(data)

    def _binary_into(self, p: _Part, with_header: bool, out: list[bytes]) -> bool:
        decoder = _transfer_decoder(p.mime.encoding)
        if decoder is None:
            return False
        raw = self._raw
        if with_header:
            out.append(self._header_bytes(p) if decoder is bytes else self._binary_header(p.header))
        if not p.children:
            out.append(decoder(self._body(p)))
            return True
        pos = p.body_start
        for child in p.children:
            out.append(raw[pos : child.start])
            if not self._binary_into(child, True, out):
                return False
            pos = child.body_end
        out.append(raw[pos : p.body_end])
        return True

    def _binary_header(self, header: _Header) -> bytes:
        """A header with its Content-Transfer-Encoding fields replaced by "binary"."""
        kept = [
            self._raw[f.start : f.end]
            for f in header.fields
            if not f.is_named(b"content-transfer-encoding")
        ]
        if header.blank:
            kept += [b"Content-Transfer-Encoding: binary" + header.newline(self._raw), header.blank]
        return b"".join(kept)

    # -- for SEARCH ------------------------------------------------------------------
    def header(self, name: str) -> list[str]:
        """Every value of the header field `name` (any case), unfolded and RFC 2047
        decoded, for SEARCH HEADER/FROM/SUBJECT/..."""
        lower = name.lower().encode("utf-8", "replace")
        return [_field_text(f.value) for f in self._root_header.fields if f.is_named(lower)]

    def sent_date(self) -> datetime.date | None:
        """The Date: field's date in that field's own zone (RFC 3501 SENTBEFORE & co.
        disregard time zones); the last Date: counts, as in the ENVELOPE. None when there
        is none or it cannot be read."""
        value = _Envelope.of(self._root_header).strings.get(b"date")
        if value is None:
            return None
        try:
            parsed = email.utils.parsedate_tz(_to_text(value, None))
            return None if parsed is None else datetime.date(parsed[0], parsed[1], parsed[2])
        except (ValueError, IndexError, TypeError, OverflowError):
            return None

    def _header_text(self, header: _Header) -> str:
        lines = []
        for f in header.fields:
            value = _field_text(f.value)
            lines.append(f"{_to_text(f.name, None)}: {value}" if f.name else value)
        return "\n".join(lines)

    def _texts(self, p: _Part) -> Iterator[str]:
        if p.multipart:
            for child in p.children:
                yield from self._texts(child)
        elif p.rfc822:
            child = p.children[0]
            yield self._header_text(child.header)
            yield from self._texts(child)
        elif p.text:
            decoder = _transfer_decoder(p.mime.encoding) or bytes
            yield _to_text(decoder(self._body(p)), _charset(p.mime))

    def body_text(self) -> str:
        """The text of every text/* part (and of the header of every attached message),
        transfer encoding and charset decoded, bad octets replaced: SEARCH BODY's text."""
        return "\n".join(self._texts(self._tree))

    def text(self) -> str:
        """The decoded header and body text: SEARCH TEXT's text."""
        return self._header_text(self._root_header) + "\n" + self.body_text()


# -- the header cache ------------------------------------------------------------------
# The fields a mail client's message list asks for (Thunderbird, mutt, K-9, Apple Mail
# fetch ENVELOPE or HEADER.FIELDS of these): the store keeps these lines of each
# message in its index, so those FETCHes and SEARCH FROM/SUBJECT/... read no file.
CACHED_FIELDS = frozenset(
    {
        "bcc",
        "cc",
        "content-type",
        "date",
        "from",
        "importance",
        "in-reply-to",
        "list-id",
        "message-id",
        "newsgroups",
        "priority",
        "references",
        "reply-to",
        "sender",
        "subject",
        "to",
        "x-priority",
    }
)
_CACHED = frozenset(n.encode() for n in CACHED_FIELDS)


def cached_header(raw: bytes) -> bytes | None:
    """The message's CACHED_FIELDS lines, as they are and in their order, and the empty
    line after the header: a header-only message whose ENVELOPE, HEADER.FIELDS of
    cached names and header() are the original's. None when that would not hold
    exactly (no empty line ending the header, bare LF line ends, a NUL)."""
    header = ParsedMessage(raw)._root_header
    if header.blank != b"\r\n" or b"\x00" in raw[: header.end]:
        return None
    lines = [raw[f.start : f.end] for f in header.fields if f.name.lower() in _CACHED]
    if not lines or any(line.count(b"\n") != line.count(b"\r\n") for line in lines):
        return None
    return b"".join([*lines, b"\r\n"])

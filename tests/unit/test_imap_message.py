"""mailnode.imap.message and mailnode.imap.encode: exact ENVELOPE, BODYSTRUCTURE and
section bytes for corpus messages (checked by hand against RFC 3501 7.4.2 and 6.4.5),
part sizes against the raw octets, the SEARCH text helpers, and a seeded robustness run
of every method over broken input. tests/test_imap_vs_dovecot.py compares the whole
corpus with Dovecot."""

from __future__ import annotations

import datetime
import itertools
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailnode.imap import encode
from mailnode.imap.message import MAX_DEPTH, ParsedMessage

CORPUS = Path(__file__).parent.parent / "data" / "imap_corpus"


def load(name: str) -> ParsedMessage:
    return ParsedMessage((CORPUS / name).read_bytes())


# -- a reader for what we send: every value must parse as IMAP -------------------------
Value = Any  # bytes (a string), None (NIL), int, or a list of values


def parse_imap(data: bytes, utf8: bool = False) -> Value:
    """One IMAP value (a parenthesised list, string, NIL or number) that must be all of
    `data`; raises AssertionError on anything RFC 3501's grammar would not accept (with
    `utf8`, RFC 6855's: UTF-8 in quoted strings)."""
    value, end = _value(data, 0, utf8)
    assert end == len(data), f"trailing data: {data[end : end + 40]!r}"
    return value


def _value(d: bytes, i: int, utf8: bool) -> tuple[Value, int]:
    c = d[i : i + 1]
    if c == b"(":
        items: list[Value] = []
        i += 1
        while d[i : i + 1] != b")":
            # Items are separated by a space, but lists of addresses or of body parts
            # follow each other without one (RFC 3501: "(" 1*address ")", 1*body).
            if items and not (isinstance(items[-1], list) and d[i : i + 1] == b"("):
                assert d[i : i + 1] == b" ", f"no space at {i}: {d[i : i + 20]!r}"
                i += 1
            item, i = _value(d, i, utf8)
            items.append(item)
        return items, i + 1
    if c == b'"':
        m = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"').match(d, i)
        assert m is not None, f"bad quoted string at {i}: {d[i : i + 40]!r}"
        assert m[1].isascii() or (utf8 and m[1].decode("utf-8")), "8-bit in a quoted string"
        return re.sub(rb"\\(.)", rb"\1", m[1]), m.end()
    if c == b"{":
        m = re.compile(rb"\{(\d+)\}\r\n").match(d, i)
        assert m is not None, f"bad literal at {i}"
        n = int(m[1])
        body = d[m.end() : m.end() + n]
        assert len(body) == n and b"\x00" not in body
        return body, m.end() + n
    m = re.compile(rb"NIL|\d+").match(d, i)
    assert m is not None, f"unexpected {d[i : i + 20]!r}"
    return (None if m[0] == b"NIL" else int(m[0])), m.end()


def part_numbers(pm: ParsedMessage) -> Iterator[tuple[tuple[int, ...], Any]]:
    """(RFC 3501 part number, body structure) of every part, from our BODYSTRUCTURE."""

    def parts(body: Value) -> Iterator[Value]:
        return itertools.takewhile(lambda b: isinstance(b, list), body)  # then the subtype

    def in_message(body: Value, prefix: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Any]]:
        if isinstance(body[0], list):  # multipart
            for i, child in enumerate(parts(body), 1):
                yield from numbered(child, (*prefix, i))
        else:
            yield from numbered(body, (*prefix, 1))

    def numbered(body: Value, number: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Any]]:
        yield number, body
        if isinstance(body[0], list):
            for i, child in enumerate(parts(body), 1):
                yield from numbered(child, (*number, i))
        elif body[0].lower() == b"message" and body[1].lower() == b"rfc822":
            yield from in_message(body[8], number)

    yield from in_message(parse_imap(pm.bodystructure()), ())


# -- encode ----------------------------------------------------------------------------
def test_astring_is_an_atom_only_when_it_can_be() -> None:
    assert encode.astring("INBOX") == b"INBOX"
    assert encode.astring("a]b") == b"a]b"  # ASTRING-CHAR allows "]"
    assert encode.astring("two words") == b'"two words"'
    assert encode.astring("") == b'""'
    assert encode.astring("nil") == b'"nil"'
    assert encode.astring('a"b') == b'"a\\"b"'
    assert encode.astring("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"
    assert encode.astring("Grüße", utf8=True) == b'"Gr\xc3\xbc\xc3\x9fe"'


def test_quoted_or_literal() -> None:
    assert encode.quoted_or_literal(b"plain text") == b'"plain text"'
    assert encode.quoted_or_literal(b'say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert encode.quoted_or_literal(b'"""""') == b'{5}\r\n"""""'  # 5 escapes: a literal
    assert encode.quoted_or_literal(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert encode.quoted_or_literal(b"caf\xc3\xa9") == b"{5}\r\ncaf\xc3\xa9"
    assert encode.quoted_or_literal(b"caf\xc3\xa9", utf8=True) == b'"caf\xc3\xa9"'
    assert encode.quoted_or_literal(b"caf\xe9", utf8=True) == b"{4}\r\ncaf\xe9"  # not UTF-8
    long = b"x" * (encode.QUOTED_MAX + 1)
    assert encode.quoted_or_literal(long).startswith(b"{4097}\r\n")
    with pytest.raises(ValueError):
        encode.quoted_or_literal(b"nul\x00")


def test_nstring_and_oneline() -> None:
    assert encode.nstring(None) == b"NIL"
    assert encode.nstring(b"") == b'""'
    assert encode.nstring_oneline(b"a\r\n b") == b'"a b"'
    assert encode.nstring_oneline(b"a\nb") == b'"a b"'  # a space where the line had none
    assert encode.nstring_oneline(None) == b"NIL"


def test_display_string_normalises_whitespace_as_dovecot() -> None:
    assert encode.display_string(b"Hello") == b'"Hello"'
    assert encode.display_string(b"  a \t b\n c ") == b"{5}\r\na b c"
    assert encode.display_string(b" \t ") == b'""'
    assert encode.display_string(b'say "x"') == b'{7}\r\nsay "x"'
    assert encode.display_string(b"\xc3\xa9t\xc3\xa9", utf8=True) == b'"\xc3\xa9t\xc3\xa9"'


def test_flag_list_and_date() -> None:
    assert encode.flag_list(["\\Seen", "$Forwarded"]) == b"(\\Seen $Forwarded)"
    assert encode.flag_list([]) == b"()"
    utc = datetime.datetime(2026, 12, 2, 10, 11, 12, tzinfo=datetime.UTC)
    assert encode.imap_date(utc) == b'"02-Dec-2026 10:11:12 +0000"'
    minus = datetime.timezone(-datetime.timedelta(hours=3, minutes=30))
    assert encode.imap_date(utc.astimezone(minus)) == b'"02-Dec-2026 06:41:12 -0330"'
    with pytest.raises(ValueError):
        encode.imap_date(datetime.datetime(2026, 1, 1))


# -- ENVELOPE --------------------------------------------------------------------------
def test_envelope_of_a_plain_message() -> None:
    assert load("01-plain-ascii.eml").envelope() == (
        b'("Tue, 1 Dec 2026 10:11:12 +0100" "Quarterly report"'
        b' (("Alice Example" NIL "alice" "example.org"))'
        b' ((NIL NIL "list-bounces" "lists.example.org"))'
        b' (("Alice (work)" NIL "alice.work" "example.org"))'
        b' (("Bob" NIL "bob" "example.net")(NIL NIL "carol" "example.net"))'
        b' (({18}\r\nDave "the dev" Doe NIL "dave" "example.net"))'
        b' ((NIL NIL "eve" "example.net"))'
        b' "<earlier.5678@example.net>" "<20261201101112.1234@example.org>")'
    )


def test_envelope_groups_routes_and_odd_addresses() -> None:
    assert load("09-groups.eml").envelope() == (
        b'("Wed, 9 Dec 2026 09:09:09 +0000" "Groups and odd addresses"'
        b' (("Team Lead" NIL "lead" "example.com"))'
        b' ((NIL "@relay1.example,@relay2.example" "robot" "example.com"))'
        b' ((NIL NIL "Team" NIL)(NIL NIL NIL NIL))'
        b' ((NIL NIL "Project Team" NIL)(NIL NIL "alice" "example.org")'
        b'("Bob B." NIL "bob" "example.net")(NIL NIL NIL NIL)(NIL NIL "solo" "example.net"))'
        b' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
        b' ((NIL NIL "quoted local" "example.com")("Comment Name" NIL "user" "example.com")'
        b'(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'
        b' NIL "<groups@example.com>")'
    )


def test_envelope_without_date_and_from() -> None:
    # Sender and Reply-To fall back to From, which is missing too.
    assert load("10-missing-date-from.eml").envelope() == (
        b'(NIL "Who sent this?" NIL NIL NIL'
        b' ((NIL NIL "justaname" "MISSING_DOMAIN")("Real Person" NIL "real" "example.com"))'
        b" NIL NIL NIL NIL)"
    )


def test_envelope_keeps_encoded_words_and_sends_8bit_as_literals() -> None:
    env = load("04-rfc2047.eml").envelope()
    assert b'(("=?UTF-8?Q?Andr=C3=A9_Pirard?=" NIL "pirard" "example.be"))' in env
    assert (
        b"{75}\r\n=?UTF-8?B?w4lsw6h2ZQ==?= and =?ISO-8859-1?Q?caf=E9?= =?utf-8?q?_continued?="
        in env
    )
    utf8 = load("03-utf8-headers.eml")
    assert b"{15}\r\nJ\xc3\xbcrgen M\xc3\xbcller NIL" in utf8.envelope()
    assert b'(("J\xc3\xbcrgen M\xc3\xbcller" NIL' in utf8.envelope(utf8=True)


def test_envelope_of_folded_and_repeated_fields() -> None:
    env = load("11-folded.eml").envelope()
    assert env.startswith(
        b'("Thu, 10 Dec 2026\t06:05:04 +0000" {39}\r\nThis subject is folded over three lines'
    )
    assert env.endswith(b' " <folded@example.com>")')
    # The last Date, Subject and Message-ID count; From fields are merged (as Dovecot).
    dup = parse_imap(load("24-duplicate-headers.eml").envelope())
    assert dup[0] == b"Wed, 23 Dec 2026 23:23:23 +0000" and dup[1] == b"second subject"
    assert dup[2] == [
        [None, None, b"first", b"example.com"],
        [None, None, b"second", b"example.com"],
    ]
    assert dup[9] == b"<two@example.com>"


# -- BODYSTRUCTURE ---------------------------------------------------------------------
def test_bodystructure_of_text_and_no_content_type() -> None:
    assert load("01-plain-ascii.eml").bodystructure() == (
        b'("text" "plain" ("charset" "us-ascii" "format" "flowed") NIL NIL "7bit" 60 6 NIL NIL NIL NIL)'
    )
    assert load("01-plain-ascii.eml").bodystructure(extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii" "format" "flowed") NIL NIL "7bit" 60 6)'
    )
    # Without MIME-Version and Content-Type its Content-Transfer-Encoding means nothing.
    assert load("02-no-content-type.eml").bodystructure() == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 150 2 NIL NIL NIL NIL)'
    )


def test_bodystructure_of_multipart_with_attachment() -> None:
    assert load("06-mixed-attachment.eml").bodystructure() == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 34 0 NIL NIL ("en-GB" "fr") NIL)'
        b'("application" "pdf" ("name" "contract.pdf") "<part1.abc@example.org>"'
        b' "The signed contract" "base64" 1064 "Q2hlY2sgSW50ZWdyaXR5IQ=="'
        b' ("attachment" ("filename" "contract.pdf" "size" "768")) NIL'
        b' "http://example.org/contract.pdf")'
        b' "mixed" ("boundary" "----=_Part_0_1234.5678") NIL NIL NIL)'
    )


def test_bodystructure_of_an_attached_message() -> None:
    assert load("08-rfc822-attachment.eml").bodystructure(extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 413'
        b' ("Mon, 7 Dec 2026 11:00:00 -0300" "Lunch?" (("Colleague" NIL "colleague" "example.com"))'
        b' (("Colleague" NIL "colleague" "example.com")) (("Colleague" NIL "colleague" "example.com"))'
        b' (("Forwarder" NIL "fwd" "example.com")) NIL NIL NIL "<lunch@example.com>")'
        b' (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 21 0) "alternative") 17) "mixed")'
    )


def test_bodystructure_of_broken_mime() -> None:
    # No closing delimiter: the inner multipart and the message run to the end.
    assert load("13-broken-mime.eml").bodystructure() == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 0 NIL NIL NIL NIL)'
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 22 1 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner-never") NIL NIL NIL)'
        b' "mixed" ("boundary" "never-closed") NIL NIL NIL)'
    )
    # No boundary parameter: a multipart of one empty text part.
    assert load("21-missing-boundary.eml").bodystructure(extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'
    )


def test_bodystructure_of_odd_parameters_and_digest() -> None:
    bs = load("17-rfc2231.eml").bodystructure()
    assert b'("name*" "utf-8\'\'%E2%82%AC%20rates%20for%202027.txt")' in bs
    # RFC 2231 values come after the plain ones, as Dovecot orders them.
    assert b'("attachment" ("creation-date" "Wed, 16 Dec 2026 16:16:16 +0000"' in bs
    assert b' "filename*" "iso-8859-1\'en\'%A3%20price.txt"))' in bs
    assert b'("charset" "us-ascii" "title" "first second")' in bs
    digest = parse_imap(load("18-digest.eml").bodystructure())
    assert [p[:2] for p in digest[:3]] == [[b"message", b"rfc822"]] * 2 + [[b"text", b"plain"]]


def test_mime_nested_deeper_than_the_limit_is_opaque() -> None:
    body = parse_imap(load("22-deep-nesting.eml").bodystructure())
    depth = 0
    while isinstance(body[0], list):
        body, depth = body[0], depth + 1
    assert depth == MAX_DEPTH - 1
    assert body[:2] == [b"application", b"octet-stream"]


# -- sections --------------------------------------------------------------------------
def test_sections_of_a_multipart() -> None:
    pm = load("05-alternative.eml")
    raw = (CORPUS / "05-alternative.eml").read_bytes()
    assert pm.section((1,), None) == b"Plain version.\r\nTwo lines.\r\n"
    assert (
        pm.section((1,), "MIME")
        == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    )
    assert pm.section((), "HEADER") == raw[: raw.index(b"\r\n\r\n") + 4]
    assert pm.section((), "TEXT") == raw[raw.index(b"\r\n\r\n") + 4 :]
    assert pm.section((), None) == raw
    assert pm.section((), "HEADER.FIELDS", ("subject", "FROM")) == (
        b"From: News <news@example.com>\r\nSubject: Newsletter\r\n\r\n"
    )
    assert pm.section((), "header.fields.not", ("Date", "From", "To", "Subject")) == (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt-boundary-1"\r\n\r\n'
    )
    assert pm.section((3,), None) == b"" and pm.section((1, 2), None) == b""
    assert pm.section((1, 1), None) == pm.section((1,), None)  # a leaf's part 1, as Dovecot
    assert pm.section((1,), "HEADER") == b""  # not a message/rfc822 part


def test_sections_of_an_attached_message() -> None:
    pm = load("08-rfc822-attachment.eml")
    assert (
        pm.section((2,), "MIME")
        == b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    )
    assert pm.section((2,), "HEADER").startswith(b"Date: Mon, 7 Dec 2026 11:00:00 -0300\r\n")
    assert pm.section((2,), "HEADER").endswith(b'boundary="inner-alt"\r\n\r\n')
    assert pm.section((2,), "TEXT") == pm.section((2,), None)[len(pm.section((2,), "HEADER")) :]
    assert pm.section((2, 1), None) == b"Lunch at noon?"
    assert pm.section((2, 2), "MIME") == b"Content-Type: text/html; charset=us-ascii\r\n\r\n"
    assert pm.section((2,), "HEADER.FIELDS", ("Subject",)) == b"Subject: Lunch?\r\n\r\n"


def test_sections_of_a_single_part_message() -> None:
    pm = load("01-plain-ascii.eml")
    raw = (CORPUS / "01-plain-ascii.eml").read_bytes()
    assert pm.section((1,), None) == pm.section((), "TEXT") == raw[raw.index(b"\r\n\r\n") + 4 :]
    assert pm.section((1,), "MIME") == pm.section((), "HEADER")  # as Dovecot
    assert pm.section((2,), None) == b""
    top = load("23-rfc822-toplevel.eml")  # part 1 of a message/rfc822 message is inside it
    assert top.section((1,), "HEADER").startswith(b"From: inner@example.com")
    assert top.section((1, 1), None) == b"inner body line 1\r\ninner body line 2\r\n"


def test_header_fields_keep_folding_and_end_with_an_empty_line() -> None:
    pm = load("11-folded.eml")
    assert pm.section((), "HEADER.FIELDS", ("Subject",)) == (
        b"Subject: This subject is folded\r\n   over three\r\n\tlines\r\n\r\n"
    )
    headless = load("16-no-separator.eml")
    assert headless.section((), "HEADER.FIELDS", ("SUBJECT",)) == (
        b"Subject: header only, no blank line, no final newline\r\n\r\n"
    )
    assert headless.section((), "HEADER.FIELDS.NOT", ("FROM", "DATE")) == (
        b"Subject: header only, no blank line, no final newline"
    )
    assert headless.section((), "TEXT") == b""


def test_sections_send_nul_as_0x80() -> None:
    pm = load("20-nul-and-8bit.eml")
    assert b"\x00" not in pm.section((), None)
    assert pm.section((1,), None) == b"Body with NUL \x80 and 8-bit \xe9\xe8.\r\n"


def test_unknown_section_text_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        load("01-plain-ascii.eml").section((), "BODY")


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.name)
def test_part_sizes_are_the_raw_octets(path: Path) -> None:
    raw = path.read_bytes()
    pm = ParsedMessage(raw)
    assert pm.size == len(raw)
    for number, body in part_numbers(pm):
        content = pm.section(number, None)
        mime = pm.section(number, "MIME")
        size_at = 6 if isinstance(body[0], bytes) else None
        if size_at is not None:
            assert body[size_at] == len(content), number
            if body[0].lower() == b"text":
                assert body[size_at + 1] == content.count(b"\n"), number
        # The MIME header and the body are adjacent stored octets.
        assert (mime + content).replace(b"\x80", b"\x00") in raw or (mime + content) in raw


def test_bare_lf_message_has_the_same_structure_as_its_crlf_form() -> None:
    raw = (CORPUS / "12-bare-lf.eml").read_bytes()
    assert b"\r" not in raw
    lf, crlf = ParsedMessage(raw), ParsedMessage(raw.replace(b"\n", b"\r\n"))
    assert lf.envelope() == crlf.envelope()
    assert lf.bodystructure() == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 17 1 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 9 0 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "lf") NIL NIL NIL)'
    )
    for number, _ in part_numbers(crlf):
        for text in (None, "MIME"):
            assert lf.section(number, text) == crlf.section(number, text).replace(b"\r\n", b"\n")
    assert lf.section((), "HEADER.FIELDS", ("Subject",)) == b"Subject: Bare LF line ends\n\n"


# -- BINARY ----------------------------------------------------------------------------
def test_binary_removes_the_transfer_encoding() -> None:
    pm = load("06-mixed-attachment.eml")
    assert pm.binary((2,)) == bytes(range(256)) * 3
    assert pm.binary_size((2,)) == 768
    assert pm.binary((1,)) == pm.section((1,), None)  # 7bit: as is
    qp = load("14-quoted-printable.eml").binary((1,))
    assert qp == (
        b"Soft line break here continues. Equals: =. Hex: \xe9\xe9.\r\n"
        b"Trailing whitespace above is removed. \r\n"
        b"Invalid escape =ZZ stays.\r\n"
        b"Ends without newline="
    )
    assert load("04-rfc2047.eml").binary((1,)) == b"Caf\xe9 cr\xe8me br\xfbl\xe9e.\r\n"


def test_binary_of_a_multipart_decodes_each_part() -> None:
    pm = load("06-mixed-attachment.eml")
    whole = pm.binary(())
    assert whole is not None
    assert bytes(range(256)) * 3 in whole
    assert b"Content-Transfer-Encoding: binary\r\n" in whole
    assert b"Content-Transfer-Encoding: base64" not in whole


def test_binary_of_an_unknown_encoding_is_none() -> None:
    pm = load("26-odd-content-types.eml")
    assert pm.binary((5,)) is None and pm.binary_size((5,)) is None
    assert pm.binary(()) is None
    assert pm.binary((6,)) == b"no such charset"
    assert pm.binary((9,)) == b""


# -- SEARCH helpers --------------------------------------------------------------------
def test_header_values_are_unfolded_and_decoded() -> None:
    pm = load("04-rfc2047.eml")
    assert pm.header("subject") == ["Élève and café continued"]
    assert pm.header("From") == ["André Pirard <pirard@example.be>"]
    assert pm.header("Cc") == ["山田太郎 <yamada@example.jp>"]
    assert pm.header("X-Missing") == []
    assert load("11-folded.eml").header("Subject") == ["This subject is folded   over three\tlines"]
    assert load("24-duplicate-headers.eml").header("SUBJECT") == ["first subject", "second subject"]
    assert load("03-utf8-headers.eml").header("From") == ["Jürgen Müller <juergen@example.de>"]
    assert load("20-nul-and-8bit.eml").header("From") == ["René <rene@example.fr>"]  # Latin-1


def test_sent_date_is_in_the_fields_own_zone() -> None:
    # 23:30 -0800 is already the next day in UTC.
    assert load("04-rfc2047.eml").sent_date() == datetime.date(2026, 12, 4)
    assert load("10-missing-date-from.eml").sent_date() is None
    assert load("25-garbage.eml").sent_date() is None


def test_body_text_decodes_every_text_part() -> None:
    assert load("04-rfc2047.eml").body_text() == "Café crème brûlée.\r\n"
    assert "日本語のテキスト" in load("03-utf8-headers.eml").body_text()
    nested = load("08-rfc822-attachment.eml").body_text()
    assert (
        "See below." in nested and "Subject: Lunch?" in nested and "<p>Lunch at noon?</p>" in nested
    )
    attachment = load("06-mixed-attachment.eml").body_text()
    assert "contract attached" in attachment and "\x00" not in attachment  # the PDF is not text
    assert "no such charset" in load("26-odd-content-types.eml").body_text()


def test_text_is_header_and_body() -> None:
    text = load("04-rfc2047.eml").text()
    assert "Subject: Élève and café continued" in text and "Café crème" in text


# -- robustness ------------------------------------------------------------------------
_GARBAGE = [
    b"",
    b"\r\n",
    b"\n\n\n",
    b"no colon at all",
    b"\x00" * 50,
    b"Subject: \x00\r\n\r\n\x00",
    b'From: (unterminated comment\r\nTo: "unterminated quote\r\nCc: <a@b\r\n\r\n',
    b"From: \\\r\nTo: a@\r\nCc: @\r\nBcc: <@>\r\nReply-To: <@a:>\r\nSender: ,,,;;;:::\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n----\r\n",
    b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n--\r\n',
    b"Content-Type: multipart/mixed; boundary=" + b"b" * 500 + b"\r\n\r\n--" + b"b" * 500 + b"\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n" * 30,
    b"Content-Type: text/plain; charset=idna\r\n\r\n\xff\xfe",
    b"Content-Type: text/plain; charset=base64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!",
    b"Content-Type: text/plain; charset=undefined\r\n\r\nx",
    b'Content-Type: text/plain; charset="utf-8\x00"\r\n\r\nx',
    b"Content-Type: text/plain; a*0*=x; a*=y; a*2=z; a**=w; *=v; =u\r\n\r\nx",
    b"Subject: =?x-unknown?q?=FF?= =?utf-8?b?!!!?= =?utf-8*en?q?ok?=\r\n\r\n",
    b"Date: Mon, 31 Feb 2026 25:61:61 +9999\r\n\r\n",
    b"Date: 0\r\n\r\n",
    b"X: " + b"a" * 200_000 + b"\r\n\r\n",
    b"X: a\r\n" + b" b\r\n" * 50_000 + b"\r\n",
    b":" * 2000 + b"\r\n" + b"N" * 1100 + b": v\r\n\r\n",
]


def _nested(depth: int) -> bytes:
    out = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, depth):
        out += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
    return out + b"--b%d\r\n\r\nleaf\r\n" % (depth - 1)


def _many_parts(n: int) -> bytes:
    return (
        b"Content-Type: multipart/mixed; boundary=p\r\n\r\n"
        + b"--p\r\n\r\nx\r\n" * n
        + b"--p--\r\n"
    )


def exercise(raw: bytes) -> None:
    """Every method of ParsedMessage on `raw`; what goes on the wire must parse."""
    pm = ParsedMessage(raw)
    envelope = parse_imap(pm.envelope())
    assert len(envelope) == 10
    parse_imap(pm.envelope(utf8=True), utf8=True)
    parse_imap(pm.bodystructure())
    parse_imap(pm.bodystructure(extensible=False, utf8=True), utf8=True)
    numbers = [n for n, _ in part_numbers(pm)][:50]
    for number in [(), *numbers, (1, 9, 9)]:
        for text in (None, "MIME", "HEADER", "TEXT"):
            assert b"\x00" not in pm.section(number, text)
        pm.section(number, "HEADER.FIELDS", ("From", "Subject"))
        pm.section(number, "HEADER.FIELDS.NOT", ("From",))
        pm.binary(number)
        pm.binary_size(number)
    pm.header("From")
    pm.header("Subject")
    pm.sent_date()
    pm.body_text()
    pm.text()


@pytest.mark.parametrize("raw", _GARBAGE, ids=range(len(_GARBAGE)))
def test_garbage_never_raises(raw: bytes) -> None:
    exercise(raw)


def test_deep_nesting_and_many_parts_never_raise() -> None:
    exercise(_nested(300))
    exercise(_many_parts(12_000))


def test_mutated_corpus_never_raises() -> None:
    """A bounded, seeded run: cuts, insertions of MIME syntax and flipped octets."""
    rng = random.Random(20261208)
    sources = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    tokens = [b"--", b"\r\n", b"\n\n", b":", b";", b'"', b"(", b")", b"<", b">", b"@", b",", b"=?"]
    tokens += [b"\\", b"\x00", b"\xff", b"boundary=", b"Content-Type: message/rfc822\r\n\r\n"]
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(data) + 1)
            action = rng.randrange(4)
            if action == 0:
                del data[at : at + rng.randint(1, 30)]
            elif action == 1:
                data[at:at] = rng.choice(tokens)
            elif action == 2 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            else:
                data = data[:at]
        exercise(bytes(data))

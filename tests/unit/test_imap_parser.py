"""mailnode.imap.parser: every command and argument form, the RFCs' own examples, the
literal forms, sequence sets, modified UTF-7, and errors (tag recovered, ParseError only)."""

from __future__ import annotations

import datetime as dt

import pytest

from mailnode.imap.parser import (
    MAX_NESTING,
    BadCharset,
    Command,
    FetchAtt,
    ParseError,
    Section,
    SequenceSet,
    literal_at_end,
    mutf7_decode,
    mutf7_encode,
    parse_command,
)

MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.siam.edu.example\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def lit(data: bytes, marker: bytes = b"") -> bytes:
    """A synchronising literal (or, with marker "+", a LITERAL+ one) holding data."""
    return b"{%d%s}\r\n" % (len(data), marker) + data


def parse(line: bytes) -> Command:
    return parse_command(line + b"\r\n")


def args(line: bytes) -> dict:
    return parse(line).args


def bad(data: bytes, tag: str | None = "t1") -> ParseError:
    """The ParseError `data` raises, checked to carry `tag` and a short text."""
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert info.value.tag == tag
    assert 0 < len(info.value.text) <= 120
    assert "\r" not in info.value.text and "\n" not in info.value.text
    return info.value


def seq(text: str) -> SequenceSet:
    """A sequence set parsed the way the server sees one (via FETCH)."""
    return args(b"x FETCH " + text.encode() + b" UID")["sequence"]


# -- framing: literal_at_end --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a LOGIN {5}\r\n", (5, False)),
        (b"a LOGIN {5+}\r\n", (5, True)),
        (b"a APPEND INBOX ~{310}\r\n", (310, False)),
        (b"a APPEND INBOX ~{310+}\r\n", (310, True)),
        (b"a LOGIN {0}\r\n", (0, False)),
        (b"a LOGIN {5}\n", (5, False)),
        (b"a LOGIN {5}", (5, False)),
        (b"a LOGIN fred {12345678901234567890}\r\n", (12345678901234567890, False)),
        (b"a NOOP\r\n", None),
        (b"a LOGIN {5} x\r\n", None),
        (b"a LOGIN {}\r\n", None),
        (b"a LOGIN {+}\r\n", None),
        (b"a LOGIN {5x}\r\n", None),
        (b"a LOGIN {-5}\r\n", None),
        (b"a LOGIN {5-}\r\n", None),  # RFC 7888: LITERAL- uses {N+} too
        (b"a LOGIN }\r\n", None),
        (b"", None),
        (b"\r\n", None),
    ],
)
def test_literal_at_end(line, expected):
    assert literal_at_end(line) == expected


def test_literal_at_end_refuses_absurd_sizes_with_the_tag():
    with pytest.raises(ParseError) as info:
        literal_at_end(b"a17 LOGIN {123456789012345678901}\r\n")
    assert info.value.tag == "a17"
    with pytest.raises(ParseError) as info:
        literal_at_end(b"{123456789012345678901}\r\n")
    assert info.value.tag is None


# -- commands without arguments -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "IDLE", "CHECK", "CLOSE", "UNSELECT", "NAMESPACE"],
)
def test_commands_without_arguments(name):
    cmd = parse(b"a001 " + name.lower().encode())
    assert cmd == Command("a001", name, False, {})
    bad(b"t1 " + name.encode() + b" extra\r\n")
    bad(b"t1 " + name.encode() + b" \r\n")


@pytest.mark.parametrize("data", [b"a002 NOOP\r\n", b"a002 NOOP\n", b"a002 NOOP", b"a002 nOoP\r\n"])
def test_line_ends_and_command_case(data):
    assert parse_command(data) == Command("a002", "NOOP", False, {})


def test_tags_may_hold_any_astring_char_but_plus():
    assert parse(b"A]1.x[y NOOP").tag == "A]1.x[y"
    bad(b"a+1 NOOP\r\n", None)
    bad(b"+ NOOP\r\n", None)
    bad(b"(a) NOOP\r\n", None)
    bad(b" NOOP\r\n", None)
    bad(b"\xc3\xa9 NOOP\r\n", None)


def test_spaces_are_single():
    bad(b"t1  NOOP\r\n", "t1")
    bad(b"t1 LOGIN  fred pw\r\n")
    bad(b"t1 LOGIN fred  pw\r\n")
    bad(b"t1\tNOOP\r\n", None)


# -- authentication and session -----------------------------------------------------------


def test_login_with_atoms_quoted_strings_and_literals():
    assert args(b"a001 LOGIN SMITH SESAME") == {"user": "SMITH", "password": "SESAME"}
    assert args(b'a LOGIN "fred smith" "p\\"w\\\\d"') == {
        "user": "fred smith",
        "password": 'p"w\\d',
    }
    data = b"a LOGIN " + lit(b"fred") + b" " + lit(b"a)\r\n(b", b"+")
    assert args(data) == {"user": "fred", "password": "a)\r\n(b"}
    assert args('a LOGIN "jürgen" "pässwörd"'.encode()) == {
        "user": "jürgen",
        "password": "pässwörd",
    }
    assert args(b"a LOGIN ]x[ y") == {"user": "]x[", "password": "y"}  # ASTRING-CHAR "]"


def test_login_errors():
    bad(b"t1 LOGIN fred\r\n")
    bad(b"t1 LOGIN\r\n")
    bad("t1 LOGIN jürgen pw\r\n".encode())  # 8-bit is not an atom
    bad(b"t1 LOGIN fred NIL\r\n".replace(b"NIL", b"(pw)"))
    assert "UTF-8" in bad(b't1 LOGIN "\xff\xfe" pw\r\n').text
    assert "NUL" in bad(b"t1 LOGIN fred " + lit(b"a\0b") + b"\r\n").text
    bad(b't1 LOGIN "a\\b" pw\r\n')  # only \" and \\ are escapes
    bad(b't1 LOGIN "a\x00" pw\r\n')
    bad(b't1 LOGIN "unterminated pw\r\n')
    bad(b"t1 LOGIN fred ~{2}\r\npw\r\n")  # literal8 only for APPEND


def test_authenticate():
    assert args(b"A001 AUTHENTICATE GSSAPI") == {"mechanism": "GSSAPI", "initial": None}
    assert args(b"a01 AUTHENTICATE plain dGVzdAB0ZXN0AHRlc3Q=") == {
        "mechanism": "PLAIN",
        "initial": "dGVzdAB0ZXN0AHRlc3Q=",
    }
    assert args(b"a AUTHENTICATE PLAIN =") == {"mechanism": "PLAIN", "initial": "="}
    assert args(b"a AUTHENTICATE X-OAUTH2 ab+/cd==")["initial"] == "ab+/cd=="
    for initial in (b"abc", b"==", b"ab=c", b"a===", b"abc!"):
        bad(b"t1 AUTHENTICATE PLAIN " + initial + b"\r\n")


def test_enable():
    assert args(b"t2 ENABLE CONDSTORE X-GOOD-IDEA") == {
        "capabilities": ["CONDSTORE", "X-GOOD-IDEA"]
    }
    assert args(b"a ENABLE utf8=accept")["capabilities"] == ["UTF8=ACCEPT"]
    bad(b"t1 ENABLE\r\n")
    bad(b"t1 ENABLE \r\n")


def test_id_rfc2971():
    cmd = parse(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")')
    assert cmd.args == {
        "params": {"name": "sodr", "version": "19.34", "vendor": "Pink Floyd Music Limited"}
    }
    assert args(b"a ID NIL") == {"params": None}
    assert args(b"a ID ()") == {"params": {}}
    assert args(b'a ID ("os" NIL "x" ' + lit(b"y") + b")") == {"params": {"os": None, "x": "y"}}
    many = b" ".join(b'"k%d" "v"' % i for i in range(30))
    assert len(args(b"a ID (" + many + b")")["params"]) == 30
    bad(b"t1 ID (" + many + b' "k30" "v")\r\n')
    bad(b"t1 ID (name sodr)\r\n")  # fields are strings, not atoms
    bad(b't1 ID ("name")\r\n')


# -- mailboxes ----------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["SELECT", "EXAMINE"])
def test_select_and_examine(verb):
    assert parse(b"A142 " + verb.encode() + b" INBOX") == Command(
        "A142", verb, False, {"mailbox": "INBOX", "condstore": False, "qresync": None}
    )
    assert args(b"a " + verb.encode() + b" blurdybloop")["mailbox"] == "blurdybloop"
    assert args(b"a " + verb.encode() + b' "inBox"')["mailbox"] == "INBOX"
    assert args(b"a " + verb.encode() + b" INBOX/sub")["mailbox"] == "INBOX/sub"
    assert args(b"A160 " + verb.encode() + b" INBOX (CONDSTORE)")["condstore"] is True


def test_select_qresync_rfc7162_examples():
    a = args(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert a["condstore"] is False
    assert a["qresync"] == {
        "uidvalidity": 67890007,
        "modseq": 20050715194045000,
        "known_uids": SequenceSet(((41, 41), (43, 211), (214, 541))),
        "seq_match": None,
    }
    a = args(
        b"B142 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,"
        b"9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,"
        b"29997)))"
    )
    qr = a["qresync"]
    assert qr["known_uids"] == SequenceSet(((1, 29997),))
    seqs, uids = qr["seq_match"]
    assert str(seqs) == "5000,7500,9000,9990:9999"
    assert str(uids).startswith("15000,22500,27000,29970,") and str(uids).endswith(",29997")
    a = args(b"a SELECT INBOX (QRESYNC (1 2 (1,2 10,20)) CONDSTORE)")
    assert a["condstore"] is True
    assert a["qresync"]["known_uids"] is None
    assert a["qresync"]["seq_match"] == (seq("1,2"), seq("10,20"))
    assert args(b"a SELECT INBOX (QRESYNC (1 2))")["qresync"]["modseq"] == 2


@pytest.mark.parametrize(
    "params",
    [
        b"()",
        b"(FOO)",
        b"(CONDSTORE CONDSTORE)",
        b"(QRESYNC (1 2) QRESYNC (1 2))",
        b"(QRESYNC (0 2))",  # uidvalidity is nz-number
        b"(QRESYNC (1 0))",  # so is the mod-sequence
        b"(QRESYNC (1 9223372036854775808))",
        b"(QRESYNC (1 2 1:*))",  # * is not allowed in known-uids
        b"(QRESYNC (1 2 1:5 (1:* 1:5)))",
        b"(QRESYNC (1 2 1:5 (1:5)))",
        b"(QRESYNC (1))",
        b"(QRESYNC)",
        b"CONDSTORE",
    ],
)
def test_select_parameter_errors(params):
    bad(b"t1 SELECT INBOX " + params + b"\r\n")


def test_create_delete_rename_subscribe():
    assert args(b"A003 CREATE owatagusiam/") == {"mailbox": "owatagusiam/", "special_use": []}
    assert args(b't1 CREATE "Everything" (USE (\\All))') == {
        "mailbox": "Everything",
        "special_use": ["\\All"],
    }
    assert args(b"a CREATE x (use (\\sent \\JUNK \\X-Custom))")["special_use"] == [
        "\\Sent",
        "\\Junk",
        "\\X-Custom",
    ]
    assert args(b"a CREATE x (USE ())")["special_use"] == []
    bad(b"t1 CREATE x (FOO (\\All))\r\n")
    bad(b"t1 CREATE x (USE (All))\r\n")
    bad(b"t1 CREATE x ()\r\n")
    assert args(b"A683 DELETE blurdybloop") == {"mailbox": "blurdybloop"}
    assert args(b"A002 SUBSCRIBE #news.comp.mail.mime") == {"mailbox": "#news.comp.mail.mime"}
    assert args(b"A002 UNSUBSCRIBE #news.comp.mail.mime") == {"mailbox": "#news.comp.mail.mime"}
    assert args(b"A683 RENAME blurdybloop sarasoop") == {
        "mailbox": "blurdybloop",
        "new_name": "sarasoop",
    }
    assert args(b"Z434 RENAME inbox old-mail") == {"mailbox": "INBOX", "new_name": "old-mail"}
    # Names stay as sent: modified UTF-7 is the server's to decode.
    assert args(b"a DELETE ~peter/mail/&U,BTFw-/&ZeVnLIqe-")["mailbox"] == (
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    )
    assert args('a DELETE "台北"'.encode())["mailbox"] == "台北"
    bad(b"t1 DELETE\r\n")
    bad(b"t1 RENAME a\r\n")
    bad(b"t1 DELETE foo%\r\n")  # wildcards are not atom chars


def test_list_rfc3501_examples():
    assert parse(b'A101 LIST "" ""').args == {
        "reference": "",
        "patterns": [""],
        "select_options": [],
        "return_options": [],
        "return_status": None,
    }
    assert args(b'A102 LIST #news.comp.mail.misc ""')["reference"] == "#news.comp.mail.misc"
    assert args(b'A103 LIST /usr/staff/jones ""')["reference"] == "/usr/staff/jones"
    a = args(b"A202 LIST ~/Mail/ %")
    assert (a["reference"], a["patterns"]) == ("~/Mail/", ["%"])
    assert args(b'A682 LIST "" *')["patterns"] == ["*"]
    assert args(b'a LIST "" foo/*/b%r]')["patterns"] == ["foo/*/b%r]"]
    assert args(b'a LIST "" ' + lit(b"a b"))["patterns"] == ["a b"]


def test_list_extended_rfc5258_5819_6154():
    a = args(b'A01 LIST (SUBSCRIBED) "" "*"')
    assert a["select_options"] == ["SUBSCRIBED"] and a["patterns"] == ["*"]
    a = args(b'A02 LIST (subscribed REMOTE RecursiveMatch) "" "%" RETURN (CHILDREN)')
    assert a["select_options"] == ["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH"]
    assert a["return_options"] == ["CHILDREN"]
    assert args(b'A03 LIST () "" "%" RETURN (CHILDREN)')["select_options"] == []
    assert args(b'A04 LIST "" ("INBOX" "Drafts" Sent/%)')["patterns"] == [
        "INBOX",
        "Drafts",
        "Sent/%",
    ]
    a = args(b'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))')
    assert a["return_options"] == [] and a["return_status"] == ["MESSAGES", "UNSEEN"]
    a = args(b'A01 LIST "" % RETURN (SUBSCRIBED STATUS (UIDNEXT) SPECIAL-USE)')
    assert a["return_options"] == ["SUBSCRIBED", "SPECIAL-USE"]
    assert a["return_status"] == ["UIDNEXT"]
    assert args(b'a LIST "" % RETURN ()')["return_options"] == []
    assert args(b't2 LIST (SPECIAL-USE) "" "*"')["select_options"] == ["SPECIAL-USE"]
    assert args(b't3 LIST "" "*" RETURN (SPECIAL-USE)')["return_options"] == ["SPECIAL-USE"]


@pytest.mark.parametrize(
    "rest",
    [
        b'(RECURSIVEMATCH) "" %',  # needs another selection option
        b'(REMOTE RECURSIVEMATCH) "" %',
        b'(FOO) "" %',
        b'"" () ',
        b'"" %  RETURN ()',
        b'"" % RETURN (FOO)',
        b'"" % RETURN (STATUS ())',
        b'"" % RETURN (STATUS (MESSAGES) STATUS (UNSEEN))',
        b'"" % RETURN (STATUS (BOGUS))',
        b'"" % FOO ()',
        b'""',
        b"",
    ],
)
def test_list_errors(rest):
    bad(b"t1 LIST " + rest + b"\r\n")


def test_lsub():
    assert args(b'A002 LSUB "#news." "comp.mail.*"') == {
        "reference": "#news.",
        "patterns": ["comp.mail.*"],
    }
    assert args(b'A003 LSUB "#news." comp.%')["patterns"] == ["comp.%"]
    bad(b'a LSUB "" ("a" "b")\r\n', "a")


def test_status():
    assert args(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)") == {
        "mailbox": "blurdybloop",
        "items": ["UIDNEXT", "MESSAGES"],
    }
    every = b"MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE DELETED APPENDLIMIT"
    assert args(b"a STATUS inbox (" + every.lower() + b")") == {
        "mailbox": "INBOX",
        "items": every.decode().split(),
    }
    bad(b"t1 STATUS INBOX (MESSAGES BOGUS)\r\n")
    bad(b"t1 STATUS INBOX ()\r\n")
    bad(b"t1 STATUS INBOX MESSAGES\r\n")


def test_quota_rfc9208():
    assert args(b'G0001 GETQUOTA "!partition/sda4"') == {"root": "!partition/sda4"}
    assert args(b'a GETQUOTA ""') == {"root": ""}
    assert args(b"A003 GETQUOTAROOT INBOX") == {"mailbox": "INBOX"}
    assert args(b'S0000 SETQUOTA "#user/alice" (STORAGE 510 message 1000)') == {
        "root": "#user/alice",
        "limits": [("STORAGE", 510), ("MESSAGE", 1000)],
    }
    assert args(b'a SETQUOTA "" ()') == {"root": "", "limits": []}
    bad(b"t1 SETQUOTA x (STORAGE)\r\n")
    bad(b"t1 SETQUOTA x (STORAGE -1)\r\n")


# -- APPEND -------------------------------------------------------------------------------


def test_append_rfc3501_example():
    cmd = parse(b"A003 APPEND saved-messages (\\Seen) " + lit(MESSAGE))
    assert cmd.name == "APPEND"
    assert cmd.args == {
        "mailbox": "saved-messages",
        "messages": [{"flags": ["\\Seen"], "date": None, "data": MESSAGE, "binary": False}],
    }


def test_append_forms():
    (m,) = args(b"a APPEND INBOX " + lit(b"x"))["messages"]
    assert m == {"flags": [], "date": None, "data": b"x", "binary": False}
    (m,) = args(b'a APPEND INBOX "17-Jul-1996 02:44:25 -0700" ' + lit(b"x", b"+"))["messages"]
    assert m["date"] == dt.datetime(1996, 7, 17, 9, 44, 25, tzinfo=dt.UTC)
    assert m["date"].utcoffset() == dt.timedelta(hours=-7)
    (m,) = args(b'a APPEND INBOX () " 5-Mar-2024 00:00:00 +0130" ' + lit(b"x"))["messages"]
    assert m["flags"] == []
    assert m["date"] == dt.datetime(2024, 3, 5, tzinfo=dt.timezone(dt.timedelta(minutes=90)))
    binary = b"\0\x01\xff\r\n)"
    (m,) = args(b"A003 APPEND Drafts (\\Seen $MDNSent) ~{%d}\r\n" % len(binary) + binary)[
        "messages"
    ]
    assert m == {"flags": ["\\Seen", "$MDNSent"], "date": None, "data": binary, "binary": True}
    (m,) = args(b"a APPEND Drafts ~{3+}\r\nabc")["messages"]
    assert m["binary"] is True and m["data"] == b"abc"
    (m,) = args(b"a APPEND INBOX " + lit(b""))["messages"]
    assert m["data"] == b""


def test_multiappend_rfc3502_example():
    second = b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\n\r\nsecond\r\n"
    a = args(
        b"A003 APPEND saved-messages (\\Seen) "
        + lit(MESSAGE)
        + b' (\\Seen) " 1-Jul-2002 22:00:00 -0700" '
        + lit(second)
    )
    first, other = a["messages"]
    assert first["data"] == MESSAGE and first["date"] is None
    assert other["data"] == second
    assert other["date"] == dt.datetime(2002, 7, 2, 5, 0, tzinfo=dt.UTC)
    assert other["flags"] == ["\\Seen"]


@pytest.mark.parametrize(
    "rest",
    [
        b'INBOX "hello"',  # message data must be a literal
        b"INBOX hello",
        b"INBOX",
        b"INBOX (\\Seen)",
        b'INBOX "17-Jul-1996 02:44:25 -0700"',
        b"INBOX {6}\r\nabc",  # truncated literal (the CRLF counts)
        b"INBOX {2}\r\nabc",  # longer than announced
        b"INBOX {3}abc",  # no CRLF after the announcement
        b"INBOX {3}\r\na\0c",  # NUL needs a binary literal
        b"INBOX {123456789012345678901}\r\nabc",
        b"INBOX (\\*) {1}\r\na",
        b'INBOX "17-Jul-1996 02:44:25" {1}\r\na',
        b'INBOX "17-Jul-96 02:44:25 -0700" {1}\r\na',
        b'INBOX "17-Foo-1996 02:44:25 -0700" {1}\r\na',
        b'INBOX "30-Feb-1996 02:44:25 -0700" {1}\r\na',
        b'INBOX "17-Jul-1996 24:44:25 -0700" {1}\r\na',
        b'INBOX "17-Jul-1996 02:60:25 -0700" {1}\r\na',
        b'INBOX "17-Jul-1996 02:44:60 -0700" {1}\r\na',
        b'INBOX "17-Jul-1996 02:44:25 -0760" {1}\r\na',
        b'INBOX "17-Jul-1996 02:44:25 +2400" {1}\r\na',
        b'INBOX "01-Jan-0001 00:00:00 +0100" {1}\r\na',  # before year 1 in UTC
        b'INBOX "31-Dec-9999 23:59:59 -0100" {1}\r\na',  # after year 9999 in UTC
        b"INBOX {1}\r\na{1}\r\nb",  # each message after the first needs its own SP
        b"INBOX {1}\r\na ",
    ],
)
def test_append_errors(rest):
    bad(b"t1 APPEND " + rest + b"\r\n")


# -- SEARCH -------------------------------------------------------------------------------


def test_search_rfc_examples():
    assert args(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == {
        "return": None,
        "charset": None,
        "key": (
            "AND",
            [
                ("FLAG", "\\Flagged"),
                ("SINCE", dt.date(1994, 2, 1)),
                ("NOT", ("HEADER", "FROM", "Smith")),
            ],
        ),
    }
    a = args(b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
    assert a["return"] == ["MIN", "COUNT"]
    assert args(b'A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')["return"] == [
        "ALL"
    ]
    assert args(b'A283 SEARCH TEXT "string not in mailbox"')["key"] == (
        "TEXT",
        "string not in mailbox",
    )
    a = args(b"A284 SEARCH CHARSET UTF-8 TEXT " + lit("отпуск".encode()))
    assert a == {"return": None, "charset": "UTF-8", "key": ("TEXT", "отпуск")}
    assert args(b"A285 SEARCH RETURN (MIN MAX) UNSEEN")["return"] == ["MIN", "MAX"]
    assert args(b"a SEARCH RETURN (save all) 1:5")["return"] == ["SAVE", "ALL"]
    a = args(b"a UID SEARCH RETURN (COUNT) CHARSET us-ascii UID 1:*")
    assert a == {"return": ["COUNT"], "charset": "US-ASCII", "key": ("UID", seq("1:*"))}
    assert parse(b"a uid search all").uid is True


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("ALL", ("ALL",)),
        ("answered", ("FLAG", "\\Answered")),
        ("DELETED", ("FLAG", "\\Deleted")),
        ("DRAFT", ("FLAG", "\\Draft")),
        ("FLAGGED", ("FLAG", "\\Flagged")),
        ("SEEN", ("FLAG", "\\Seen")),
        ("UNANSWERED", ("NOTFLAG", "\\Answered")),
        ("UNDELETED", ("NOTFLAG", "\\Deleted")),
        ("UNDRAFT", ("NOTFLAG", "\\Draft")),
        ("UNFLAGGED", ("NOTFLAG", "\\Flagged")),
        ("UNSEEN", ("NOTFLAG", "\\Seen")),
        ("KEYWORD $Forwarded", ("FLAG", "$Forwarded")),
        ("UNKEYWORD Junk", ("NOTFLAG", "Junk")),
        ("RECENT", ("RECENT",)),
        ("NEW", ("AND", [("RECENT",), ("NOTFLAG", "\\Seen")])),
        ("OLD", ("NOT", ("RECENT",))),
        ('FROM "Fred Foo"', ("HEADER", "FROM", "Fred Foo")),
        ("TO bob", ("HEADER", "TO", "bob")),
        ("CC bob", ("HEADER", "CC", "bob")),
        ("BCC bob", ("HEADER", "BCC", "bob")),
        ("SUBJECT hi", ("HEADER", "SUBJECT", "hi")),
        ('HEADER Message-ID "<x@y>"', ("HEADER", "MESSAGE-ID", "<x@y>")),
        ('HEADER X-Spam ""', ("HEADER", "X-SPAM", "")),
        ("BODY word", ("BODY", "word")),
        ('TEXT "two words"', ("TEXT", "two words")),
        ("LARGER 1000", ("LARGER", 1000)),
        ("SMALLER 9223372036854775807", ("SMALLER", 2**63 - 1)),
        ("BEFORE 1-Feb-1994", ("BEFORE", dt.date(1994, 2, 1))),
        ('ON "29-feb-2024"', ("ON", dt.date(2024, 2, 29))),
        ("SINCE 01-JAN-2000", ("SINCE", dt.date(2000, 1, 1))),
        ("SENTBEFORE 1-Feb-1994", ("SENTBEFORE", dt.date(1994, 2, 1))),
        ("SENTON 1-Feb-1994", ("SENTON", dt.date(1994, 2, 1))),
        ("SENTSINCE 1-Feb-1994", ("SENTSINCE", dt.date(1994, 2, 1))),
        ("UID 1,3:5", ("UID", SequenceSet(((1, 1), (3, 5))))),
        ("2:4,*", ("SEQ", SequenceSet(((2, 4), (None, None))))),
        ("NOT SEEN", ("NOT", ("FLAG", "\\Seen"))),
        ("OR SEEN FLAGGED", ("OR", ("FLAG", "\\Seen"), ("FLAG", "\\Flagged"))),
        ("(SEEN)", ("FLAG", "\\Seen")),  # a one-key list is that key
        ("(SEEN DRAFT)", ("AND", [("FLAG", "\\Seen"), ("FLAG", "\\Draft")])),
        ("MODSEQ 0", ("MODSEQ", 0)),
        ('MODSEQ "/flags/\\\\draft" all 620162338', ("MODSEQ", 620162338)),
        ('MODSEQ "/flags/$Junk" PRIV 5', ("MODSEQ", 5)),
        ("YOUNGER 259200", ("YOUNGER", 259200)),
        ("OLDER 60", ("OLDER", 60)),
    ],
)
def test_search_keys(text, key):
    assert args(b"a SEARCH " + text.encode())["key"] == key


def test_search_nesting():
    a = args(b"t SEARCH OR NOT MODSEQ 720162338 LARGER 50000")
    assert a["key"] == ("OR", ("NOT", ("MODSEQ", 720162338)), ("LARGER", 50000))
    a = args(b"a SEARCH (OR (FROM a TO b) UNSEEN) 1:10 NOT (DELETED)")
    assert a["key"] == (
        "AND",
        [
            (
                "OR",
                ("AND", [("HEADER", "FROM", "a"), ("HEADER", "TO", "b")]),
                ("NOTFLAG", "\\Seen"),
            ),
            ("SEQ", seq("1:10")),
            ("NOT", ("FLAG", "\\Deleted")),
        ],
    )
    depth = MAX_NESTING
    key = args(b"a SEARCH " + b"(" * depth + b"ALL" + b")" * depth)["key"]
    assert key == ("ALL",)
    key = args(b"a SEARCH " + b"NOT " * depth + b"ALL")["key"]
    for _ in range(depth):
        assert key[0] == "NOT"
        key = key[1]
    assert key == ("ALL",)
    assert "deeply" in bad(b"t1 SEARCH " + b"(" * (depth + 1) + b"ALL" + b")" * (depth + 1)).text
    bad(b"t1 SEARCH " + b"NOT " * (depth + 1) + b"ALL\r\n")
    bad(b"t1 SEARCH " + b"OR ALL " * (depth + 1) + b"ALL\r\n")
    bad(b"t1 SEARCH " + b"(" * 5000 + b"\r\n")


def test_search_charsets():
    with pytest.raises(BadCharset) as info:
        parse_command(b"A1 SEARCH CHARSET KOI8-R TEXT x\r\n")
    assert info.value.tag == "A1"
    assert info.value.text.startswith("BADCHARSET")
    with pytest.raises(BadCharset):
        parse_command(b'A1 UID SEARCH RETURN (ALL) CHARSET "ISO-8859-1" ALL\r\n')
    with pytest.raises(BadCharset) as info:
        parse_command(b"A1 SEARCH CHARSET " + lit(b"x\r\n* OK \x01") + b" ALL\r\n")
    assert info.value.text == "BADCHARSET: X??* OK ? is not supported"
    assert args(b'a SEARCH CHARSET "utf-8" ALL')["charset"] == "UTF-8"
    # A US-ASCII search has no 8-bit text; without a charset (or UTF-8) it is UTF-8.
    bad('t1 SEARCH CHARSET US-ASCII TEXT "é"\r\n'.encode())
    assert args('a SEARCH TEXT "é"'.encode())["key"] == ("TEXT", "é")
    bad(b't1 SEARCH TEXT "\xe9"\r\n')


@pytest.mark.parametrize(
    "rest",
    [
        b"",
        b"BOGUS",
        b"FROM",
        b"SEEN ",
        b"HEADER Subject",
        b'HEADER "Sub:ject" x',
        b'HEADER "" x',
        b"KEYWORD \\Seen",
        b"LARGER -1",
        b"LARGER 9223372036854775808",
        b"LARGER 123456789012345678901234567890",
        b"SINCE 1-Feb-94",
        b"SINCE 1-Foo-1994",
        b"SINCE 31-Apr-1994",
        b'SINCE "1-Feb-1994',
        b"SINCE 100-Feb-1994",
        b"UID",
        b"UID 0",
        b"UID 4294967296",
        b"0",
        b"1:0",
        b"$",  # SEARCHRES is not offered
        b"UID $",
        b"NOT",
        b"OR SEEN",
        b"()",
        b"(SEEN",
        b"SEEN)",
        b"MODSEQ",
        b"MODSEQ -1",
        b'MODSEQ "/flags/\\\\draft" 5',
        b'MODSEQ "/flags/\\\\draft" both 5',
        b'MODSEQ "/other" all 5',
        b"YOUNGER 0",
        b"RETURN (MIN) ",
        b"RETURN (BOGUS) ALL",
        b"RETURN MIN ALL",
        b"CHARSET",
        b"CHARSET UTF-8",
        b"RETURN (MIN) CHARSET UTF-8",
        b"CHARSET UTF-8 RETURN (MIN) ALL",
    ],
)
def test_search_errors(rest):
    bad(b"t1 SEARCH " + rest + b"\r\n")


# -- FETCH --------------------------------------------------------------------------------


def test_fetch_rfc3501_example():
    cmd = parse(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])")
    assert cmd.args == {
        "sequence": SequenceSet(((2, 4),)),
        "items": [
            FetchAtt("FLAGS"),
            FetchAtt("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
        ],
        "changedsince": None,
        "vanished": False,
    }
    assert [i.response_name() for i in cmd.args["items"]] == [
        "FLAGS",
        "BODY[HEADER.FIELDS (DATE FROM)]",
    ]
    cmd = parse(b"A999 UID FETCH 4827313:4828442 FLAGS")
    assert (cmd.name, cmd.uid) == ("FETCH", True)
    assert cmd.args["items"] == [FetchAtt("FLAGS")]
    assert str(cmd.args["sequence"]) == "4827313:4828442"


@pytest.mark.parametrize(
    ("macro", "names"),
    [
        ("FAST", ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]),
        ("all", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]),
        ("FULL", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]),
    ],
)
def test_fetch_macros(macro, names):
    items = args(b"a FETCH 1 " + macro.encode())["items"]
    assert items == [FetchAtt(n) for n in names]
    bad(b"t1 FETCH 1 (" + macro.encode() + b")\r\n")


@pytest.mark.parametrize(
    "name",
    [
        "UID",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "BODY",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",
    ],
)
def test_fetch_plain_items(name):
    (att,) = args(b"a FETCH 1 " + name.lower().encode())["items"]
    assert att == FetchAtt(name)
    assert att.response_name() == name


@pytest.mark.parametrize(
    ("text", "att", "response"),
    [
        ("BODY[]", FetchAtt("BODY", Section()), "BODY[]"),
        ("body.peek[]", FetchAtt("BODY", Section(), peek=True), "BODY[]"),
        ("BODY[HEADER]", FetchAtt("BODY", Section((), "HEADER")), "BODY[HEADER]"),
        ("BODY[TEXT]", FetchAtt("BODY", Section((), "TEXT")), "BODY[TEXT]"),
        ("BODY[1]", FetchAtt("BODY", Section((1,))), "BODY[1]"),
        ("BODY[1.2.3]", FetchAtt("BODY", Section((1, 2, 3))), "BODY[1.2.3]"),
        ("BODY[1.MIME]", FetchAtt("BODY", Section((1,), "MIME")), "BODY[1.MIME]"),
        ("BODY[2.header]", FetchAtt("BODY", Section((2,), "HEADER")), "BODY[2.HEADER]"),
        ("BODY[4.2.TEXT]", FetchAtt("BODY", Section((4, 2), "TEXT")), "BODY[4.2.TEXT]"),
        (
            "BODY.PEEK[HEADER.FIELDS (From to)]",
            FetchAtt("BODY", Section((), "HEADER.FIELDS", ("From", "to")), peek=True),
            "BODY[HEADER.FIELDS (FROM TO)]",
        ),
        (
            'BODY[1.2.HEADER.FIELDS.NOT ("X%Y" subject)]',
            FetchAtt("BODY", Section((1, 2), "HEADER.FIELDS.NOT", ("X%Y", "subject"))),
            'BODY[1.2.HEADER.FIELDS.NOT ("X%Y" SUBJECT)]',
        ),
        ("BODY[]<0.2048>", FetchAtt("BODY", Section(), (0, 2048)), "BODY[]<0>"),
        (
            "BODY.PEEK[TEXT]<100.50>",
            FetchAtt("BODY", Section((), "TEXT"), (100, 50), True),
            "BODY[TEXT]<100>",
        ),
        ("BINARY[]", FetchAtt("BINARY", Section()), "BINARY[]"),
        ("BINARY[1.2]", FetchAtt("BINARY", Section((1, 2))), "BINARY[1.2]"),
        (
            "BINARY.PEEK[1]<0.100>",
            FetchAtt("BINARY", Section((1,)), (0, 100), True),
            "BINARY[1]<0>",
        ),
        ("BINARY.SIZE[1]", FetchAtt("BINARY.SIZE", Section((1,))), "BINARY.SIZE[1]"),
        ("BINARY.SIZE[]", FetchAtt("BINARY.SIZE", Section()), "BINARY.SIZE[]"),
    ],
)
def test_fetch_sections(text, att, response):
    assert args(b"a FETCH 1 " + text.encode())["items"] == [att]
    assert att.response_name() == response
    assert args(b"a FETCH 1 (UID " + text.encode() + b")")["items"] == [FetchAtt("UID"), att]


def test_section_render():
    assert Section().render() == ""
    assert Section((1, 2), "HEADER.FIELDS", ("From", "To")).render() == (
        "1.2.HEADER.FIELDS (FROM TO)"
    )
    assert Section((3,)).render() == "3"
    assert Section((), "HEADER.FIELDS", ('a"b\\',)).render() == 'HEADER.FIELDS ("A\\"B\\\\")'


def test_fetch_modifiers_rfc7162():
    a = args(b"s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345)")
    assert (a["changedsince"], a["vanished"]) == (12345, False)
    cmd = parse(b"s101 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert cmd.uid and cmd.args["vanished"] is True and cmd.args["changedsince"] == 12345
    assert args(b"a UID FETCH 1 FLAGS (vanished changedsince 1)")["changedsince"] == 1
    assert args(b"a FETCH 1 (MODSEQ)")["items"] == [FetchAtt("MODSEQ")]
    assert "VANISHED" in bad(b"t1 FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n").text
    bad(b"t1 UID FETCH 1:* FLAGS (VANISHED)\r\n")
    bad(b"t1 UID FETCH 1:* FLAGS (CHANGEDSINCE 0)\r\n")
    bad(b"t1 UID FETCH 1:* FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n")
    bad(b"t1 UID FETCH 1:* FLAGS (CHANGEDSINCE 9223372036854775808)\r\n")
    bad(b"t1 UID FETCH 1:* FLAGS ()\r\n")
    bad(b"t1 UID FETCH 1:* FLAGS (FOO)\r\n")


@pytest.mark.parametrize(
    "rest",
    [
        b"1",
        b"1 ",
        b"1 ()",
        b"1 (FLAGS",
        b"1 (FLAGS  UID)",
        b"1 BOGUS",
        b"1 X-GM-MSGID",
        b"1 BODY[",
        b"1 BODY[]]",
        b"1 BODY[0]",
        b"1 BODY[1.]",
        b"1 BODY[.1]",
        b"1 BODY[MIME]",  # MIME needs a part number
        b"1 BODY[HEADER.FIELDS]",
        b"1 BODY[HEADER.FIELDS ()]",
        b"1 BODY[HEADER.FIELDS (A:B)]",
        b"1 BODY[HEADER.FIELDS (" + b"{3}\r\na b" + b")]",
        b"1 BODY[HEADER.FIELDS.NOT(FROM)]",
        b"1 BODY[1.BOGUS]",
        b"1 BODY.PEEK",
        b"1 BODY[]<>",
        b"1 BODY[]<0>",
        b"1 BODY[]<0.0>",
        b"1 BODY[]<-1.5>",
        b"1 BINARY",
        b"1 BINARY[HEADER]",
        b"1 BINARY[1.MIME]",
        b"1 BINARY.SIZE[1]<0.5>",
        b"1 RFC822.PEEK",
        b"1:x FLAGS",
        b"0 FLAGS",
        b"4294967296 FLAGS",
        b"1, FLAGS",
        b"1: FLAGS",
        b"$ FLAGS",
        b"FLAGS",
    ],
)
def test_fetch_errors(rest):
    bad(b"t1 FETCH " + rest + b"\r\n")


# -- STORE, COPY, MOVE, EXPUNGE -----------------------------------------------------------


def test_store():
    assert args(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == {
        "sequence": SequenceSet(((2, 4),)),
        "mode": "+",
        "silent": False,
        "flags": ["\\Deleted"],
        "unchangedsince": None,
    }
    a = args(b"a STORE 1 -flags.silent \\seen $Forwarded \\X-Other")
    assert (a["mode"], a["silent"]) == ("-", True)
    assert a["flags"] == ["\\Seen", "$Forwarded", "\\X-Other"]
    a = args(b"a STORE 1 FLAGS ()")
    assert (a["mode"], a["flags"]) == ("", [])
    a = args(b"a STORE 1 FLAGS (\\ANSWERED \\flagged \\Draft \\recent \\DELETED)")
    assert a["flags"] == ["\\Answered", "\\Flagged", "\\Draft", "\\Recent", "\\Deleted"]


def test_store_unchangedsince_rfc7162():
    cmd = parse(b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)")
    assert cmd.uid and cmd.name == "STORE"
    assert cmd.args == {
        "sequence": SequenceSet(((6, 6), (4, 4), (8, 8))),
        "mode": "+",
        "silent": True,
        "flags": ["\\Deleted"],
        "unchangedsince": 12121230045,
    }
    assert args(b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()")["unchangedsince"] == 0


@pytest.mark.parametrize(
    "rest",
    [
        b"1 FLAGS",
        b"1 FLAGS ",
        b"1 +FLAGS",
        b"1 *FLAGS (\\Seen)",
        b"1 FLAGS.LOUD (\\Seen)",
        b"1 LABELS (\\Seen)",
        b"1 FLAGS (\\*)",
        b"1 FLAGS \\*",
        b"1 FLAGS (\\)",
        b"1 FLAGS (\\Seen",
        b"1 FLAGS (%)",
        b'1 FLAGS ("quoted")',
        b"1 () FLAGS (\\Seen)",
        b"1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
        b"1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS (\\Seen)",
        b"1 (FOO 1) FLAGS (\\Seen)",
        b"1 (UNCHANGEDSINCE 1)FLAGS (\\Seen)",
        b"FLAGS (\\Seen)",
    ],
)
def test_store_errors(rest):
    bad(b"t1 STORE " + rest + b"\r\n")


def test_copy_move_expunge():
    assert args(b"A003 COPY 2:4 MEETING") == {"sequence": seq("2:4"), "mailbox": "MEETING"}
    cmd = parse(b"a UID MOVE 42:69 foo")
    assert cmd == Command("a", "MOVE", True, {"sequence": seq("42:69"), "mailbox": "foo"})
    assert parse(b"a MOVE 1 inbox").args["mailbox"] == "INBOX"
    assert parse(b"A202 EXPUNGE") == Command("A202", "EXPUNGE", False, {"sequence": None})
    cmd = parse(b"A003 UID EXPUNGE 3000:3002")
    assert cmd == Command("A003", "EXPUNGE", True, {"sequence": SequenceSet(((3000, 3002),))})
    bad(b"t1 EXPUNGE 1:3\r\n")
    bad(b"t1 UID EXPUNGE\r\n")
    bad(b"t1 COPY 1:3\r\n")
    bad(b"t1 MOVE foo\r\n")


@pytest.mark.parametrize("name", [b"NOOP", b"SELECT INBOX", b"UID FETCH 1 UID", b"LIST"])
def test_uid_prefixes_only_some_commands(name):
    bad(b"t1 UID " + name + b"\r\n")


def test_unknown_commands_keep_the_tag():
    assert "Unknown command" in bad(b"t1 XYZZY\r\n").text
    assert "Unknown command" in bad(b't1 XLIST "" *\r\n').text
    bad(b"t1 UID\r\n")
    bad(b"t1 \r\n")
    bad(b"t1\r\n", None)  # a tag is known only once a space ends it


# -- errors in general --------------------------------------------------------------------


def test_error_texts_quote_little_of_the_input():
    junk = b"\x00\x01\xff" + b"A" * 500
    err = bad(b"t1 LOGIN " + junk + b"\r\n")
    assert err.text.count("A") + err.text.count("?") <= 20
    assert all(0x20 <= ord(c) < 0x7F for c in err.text)
    err = bad(b"t1 " + b"X" * 500 + b"\r\n")
    assert err.text.count("X") <= 20
    err = bad(b"t1 SEARCH CHARSET " + b"Y" * 500 + b" ALL\r\n")
    assert err.text.count("Y") <= 20


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"\xff\xfe",
        b"t1 FETCH 99999999999999999999999999999999999 FLAGS",
        b"t1 FETCH 1:18446744073709551616 FLAGS",
        b"t1 LOGIN {99999999999999999999}\r\n",
        b"t1 LOGIN {" + b"9" * 5000 + b"}\r\nx x",
        b"t1 SEARCH " + b"9" * 5000,
        b"t1 SEARCH LARGER " + b"9" * 5000,
        b"t1 STORE 1 FLAGS " + b"(" * 1000,
        b"t1 FETCH 1 " + b"(" * 1000,
        b"t1 SEARCH " + b"OR " * 10000,
        b't1 SEARCH "' + b"\\" * 1001,
        b"t1 APPEND x ~{5}\r\n",
        b"t1 APPEND x {5}\r\n\x00\x00\x00\x00\x00",
        b"t1 ID (" + b'"a" NIL ' * 100 + b")",
    ],
)
def test_hostile_inputs_raise_parse_error_only(data):
    with pytest.raises(ParseError):
        parse_command(data)


# -- sequence sets ------------------------------------------------------------------------


def test_sequence_set_syntax_and_str():
    s = seq("1:3,5,7:*")
    assert s.ranges == ((1, 3), (5, 5), (7, None))
    assert str(s) == "1:3,5,7:*"
    assert str(seq("*:4,*,4294967295")) == "*:4,*,4294967295"
    assert seq("5:2").ranges == ((5, 2),)


def test_sequence_set_contains():
    s = seq("1:3,5,7:*")
    assert [n for n in range(1, 12) if s.contains(n, 10)] == [1, 2, 3, 5, 7, 8, 9, 10]
    assert s.contains(11, 10) is False
    assert seq("5:2").contains(3, 10) and not seq("5:2").contains(6, 10)
    # RFC 3501 6.4.8: 559:* includes the last UID even when it is below 559.
    assert seq("559:*").contains(500, 500) and not seq("559:*").contains(499, 500)
    assert seq("*").contains(42, 42) and not seq("*").contains(41, 42)
    # In an empty mailbox * matches nothing, explicit numbers still do.
    assert not seq("*").contains(0, 0)
    assert not seq("1:*").contains(1, 0)
    assert seq("1:*,3").contains(3, 0)


def test_sequence_set_iter():
    s = seq("1:3,5,7:*")
    assert list(s.iter(10)) == [1, 2, 3, 5, 7, 8, 9, 10]
    assert list(s.iter(2)) == [1, 2]  # sequence numbers stop at the largest
    assert list(seq("4:2,3,1:2,*").iter(6)) == [1, 2, 3, 4, 6]
    assert list(seq("1:*").iter(0)) == []
    uids = [3, 9, 10, 57, 4000, 4_294_967_295]
    everything = seq("1:*")
    assert list(everything.iter(uids[-1], uids)) == uids
    assert list(seq("4:10,57:4000").iter(uids[-1], uids)) == [9, 10, 57, 4000]
    assert list(seq("5000:*").iter(4000, [3, 4000])) == [4000]  # * is the largest UID
    assert list(seq("1,2,11").iter(57, uids)) == []
    # 4 billion members are never expanded: only the candidates are looked at.
    huge = list(range(1, 200_001))
    assert sum(1 for _ in everything.iter(4_294_967_295, huge)) == 200_000


def test_sequence_set_from_numbers():
    assert str(SequenceSet.from_numbers([1, 2, 3, 5, 7, 8, 9])) == "1:3,5,7:9"
    assert str(SequenceSet.from_numbers([9, 3, 3, 1, 2])) == "1:3,9"
    assert SequenceSet.from_numbers([42]).ranges == ((42, 42),)
    assert str(SequenceSet.from_numbers(iter([4294967295, 1]))) == "1,4294967295"
    for numbers in ([], [0, 1], [4294967296]):
        with pytest.raises(ValueError):
            SequenceSet.from_numbers(numbers)
    s = SequenceSet.from_numbers(range(1, 100_001, 2))
    assert seq(str(s)) == s and len(s.ranges) == 50_000


def test_sequence_sets_with_star_where_refused():
    bad(b"t1 SELECT INBOX (QRESYNC (1 2 *))\r\n")


# -- modified UTF-7 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("INBOX", "INBOX"),
        ("&", "&-"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("é", "&AOk-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("😀", "&2D3eAA-"),
        ("x😀y&z", "x&2D3eAA-y&-z"),
        ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
        ("", ""),
    ],
)
def test_mutf7_round_trips(text, encoded):
    assert mutf7_encode(text) == encoded
    assert mutf7_decode(encoded) == text


@pytest.mark.parametrize(
    "name",
    [
        "&Jjo",  # unterminated
        "&AGE-",  # printable ASCII ("a") must not be encoded
        "&U,BTF2-",  # nonzero padding bits
        "&A-",  # not a whole UTF-16 unit
        "&AOkA6QA-",  # a half unit left over
        "&ImIDkQ.-",  # not modified base64
        "&2D0-",  # lone high surrogate
        "&3gA-",  # lone low surrogate
        "é",  # 8-bit must be encoded
        "a\x7fb",
        "tab\there",
    ],
)
def test_mutf7_decode_rejects_malformed(name):
    with pytest.raises(ParseError) as info:
        mutf7_decode(name)
    assert info.value.tag is None


def test_mutf7_encode_refuses_lone_surrogates():
    with pytest.raises(ValueError):
        mutf7_encode("\ud800")

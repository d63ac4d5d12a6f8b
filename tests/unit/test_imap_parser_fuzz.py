"""A bounded, seeded fuzz of mailnode.imap.parser: whatever a client sends, parse_command
returns a Command or raises ParseError (never anything else), and literal_at_end raises
nothing but ParseError. Mutated valid commands reach deep into the grammar; random bytes
cover the rest. About 30,000 inputs, the same ones on every run."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from mailnode.imap.parser import Command, ParseError, literal_at_end, parse_command

MUTATED_INPUTS = 25_000
RANDOM_INPUTS = 5_000
SEED = 3501

CORPUS = [
    b"a001 CAPABILITY\r\n",
    b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
    b'a LOGIN "fred \\"x\\"" "p\\\\w"\r\n',
    b"a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
    b"t2 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n",
    b'a023 ID ("name" "sodr" "version" "19.34" "os" NIL)\r\n',
    b"A142 SELECT INBOX (CONDSTORE)\r\n",
    b"B142 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,9990:9999 "
    b"15000,29997)))\r\n",
    b"a EXAMINE ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n",
    b't1 CREATE "Everything" (USE (\\All \\Sent))\r\n',
    b"A683 RENAME blurdybloop sarasoop\r\n",
    b"A002 SUBSCRIBE #news.comp.mail.mime\r\n",
    b'A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" Sent/%) RETURN (CHILDREN '
    b"STATUS (MESSAGES UNSEEN))\r\n",
    b"A202 LIST ~/Mail/ %\r\n",
    b'A002 LSUB "#news." "comp.mail.*"\r\n',
    b"A042 STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)\r\n",
    b'A003 APPEND saved-messages (\\Seen $Forwarded) " 1-Jul-2002 22:00:00 -0700" {12}\r\n'
    b"Subject: (x)\r\n",
    b"A003 APPEND Drafts ~{5}\r\na\x00b\r\n (\\Draft) {3+}\r\nxyz\r\n",
    b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n',
    b"A284 SEARCH CHARSET UTF-8 TEXT {12}\r\n\xd0\xbe\xd1\x82\xd0\xbf\xd1\x83\xd1\x81\xd0\xba\r\n",
    b"a UID SEARCH OR (HEADER Message-ID <x@y> UNSEEN) NOT 1:5,7 UID 9:* LARGER 100\r\n",
    b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338 YOUNGER 3600 KEYWORD $Junk\r\n',
    b'a SEARCH BEFORE "1-Feb-1994" SENTON 3-Mar-2003 NEW OLD RECENT UNDRAFT\r\n',
    b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
    b"a FETCH 1:* (UID BODY.PEEK[1.2.MIME] BINARY.PEEK[1]<0.100> BINARY.SIZE[2] "
    b"BODY[]<0.2048> RFC822.SIZE)\r\n",
    b"s101 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
    b"a FETCH 1,3:5 FULL\r\n",
    b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n",
    b"a STORE 1 -FLAGS \\Seen $Forwarded\r\n",
    b"A003 COPY 2:4 MEETING\r\n",
    b"a UID MOVE 42:69 foo\r\n",
    b"A003 UID EXPUNGE 3000:3002\r\n",
    b'S0000 SETQUOTA "#user/alice" (STORAGE 510)\r\n',
    b"A003 GETQUOTAROOT INBOX\r\n",
    b'G0001 GETQUOTA ""\r\n',
    b"a IDLE\r\n",
]

INSERTS = [
    b"{",
    b"}",
    b"(",
    b")",
    b"[",
    b"]",
    b"<",
    b'"',
    b"\\",
    b"\r\n",
    b"\n",
    b"\x00",
    b" ",
    b"*",
    b"%",
    b"~",
    b"+",
    b"$",
    b"NIL",
    b"{0}\r\n",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"~{2}\r\n",
    b"99999999999999999999999",
    b"4294967296",
    b"UID ",
]

_LITERAL_SIZE = re.compile(rb"\{([0-9]+)")


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    piece = rng.choice(INSERTS) if rng.random() < 0.8 else bytes([rng.randrange(128, 256)])
    return data[:i] + piece + data[i:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + data[i + rng.randrange(1, 8) :]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    j = min(len(data), i + rng.randrange(1, 16))
    return data[:j] + data[i:j] + data[j:]


def _literal_size(rng: random.Random, data: bytes) -> bytes:
    """A literal announced one octet too long or too short."""
    sizes = list(_LITERAL_SIZE.finditer(data))
    if not sizes:
        return _insert(rng, data)
    m = rng.choice(sizes)
    size = max(0, int(m.group(1)) + rng.choice((-1, 1)))
    return data[: m.start(1)] + b"%d" % size + data[m.end(1) :]


def _nest(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    unit = rng.choice((b"(", b")", b"NOT ", b"OR ALL ", b"(ALL ", b"[", b"\\\\", b"&"))
    return data[:i] + unit * rng.randrange(1, 300) + data[i:]


def _splice(rng: random.Random, data: bytes) -> bytes:
    other = rng.choice(CORPUS)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip,
    _truncate,
    _insert,
    _delete,
    _duplicate,
    _literal_size,
    _nest,
    _splice,
]


def _mutated(rng: random.Random) -> bytes:
    data = rng.choice(CORPUS)
    for _ in range(rng.randrange(1, 5)):
        data = rng.choice(MUTATIONS)(rng, data)
    return data


def _random_bytes(rng: random.Random) -> bytes:
    """Random octets, half of them behind a tag and a command name to get further in."""
    body = rng.randbytes(rng.randrange(0, 120))
    if rng.random() < 0.5:
        name = rng.choice(CORPUS).split(b" ")[1].split(b"\r")[0]
        body = b"t " + name + b" " + body
    return body


def _check(data: bytes, failures: list[str]) -> None:
    """Record `data` in failures unless both functions behave."""
    try:
        result = parse_command(data)
        if not isinstance(result, Command):
            failures.append(f"{data!r}: returned {result!r}")
    except ParseError as e:
        if e.tag is not None and not data.startswith(e.tag.encode() + b" "):
            failures.append(f"{data!r}: tag {e.tag!r} is not the input's")
    except Exception as e:
        failures.append(f"{data!r}: parse_command raised {e!r}")
    for line in data.splitlines(keepends=True):
        try:
            literal_at_end(line)
        except ParseError:
            pass
        except Exception as e:
            failures.append(f"{line!r}: literal_at_end raised {e!r}")


@pytest.mark.parametrize("data", CORPUS)
def test_corpus_is_valid(data):
    assert isinstance(parse_command(data), Command)


def test_mutated_commands():
    rng = random.Random(SEED)
    failures: list[str] = []
    for _ in range(MUTATED_INPUTS):
        _check(_mutated(rng), failures)
    assert not failures, f"{len(failures)} bad inputs, first: " + "\n".join(failures[:5])


def test_random_bytes():
    rng = random.Random(SEED + 1)
    failures: list[str] = []
    for _ in range(RANDOM_INPUTS):
        _check(_random_bytes(rng), failures)
    assert not failures, f"{len(failures)} bad inputs, first: " + "\n".join(failures[:5])

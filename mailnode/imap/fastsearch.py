"""Fast paths for SEARCH, exact by construction against mailnode.imap.search.

``compile_index_key`` turns a key tree that needs no message content into one Python
predicate over (sequence number, UID) and the session's view (flags, modseqs) plus the
index rows (sizes, internal dates): no Candidate object per message, dates compared as
nanosecond bounds. ``could_match`` is a conservative prefilter for content keys: it
says False only when the key cannot match, because the search text is nowhere in the
message's raw bytes and those bytes are what the decoded text is made of.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from mailnode.imap.parser import SequenceSet

Predicate = Callable[[int, int], bool]
_INDEX_KEYS = frozenset(
    {
        "ALL",
        "AND",
        "OR",
        "NOT",
        "SEQ",
        "UID",
        "FLAG",
        "NOTFLAG",
        "RECENT",
        "LARGER",
        "SMALLER",
        "BEFORE",
        "ON",
        "SINCE",
        "MODSEQ",
        "OLDER",
        "YOUNGER",
    }
)


def _day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def compile_index_key(
    key: tuple,
    uids: list[int],
    flags: dict[int, tuple[str, ...]],
    modseqs: dict[int, int],
    rows: dict[int, tuple[int, int]],
    now: float | None = None,
) -> Predicate | None:
    """A predicate equal to search.matches for this key, or None when the key reads
    message content (then the general path runs). ``uids`` is the view in sequence order,
    ``rows`` uid -> (size, internal date in ns) (view.sizes_and_dates)."""
    if not _index_only(key):
        return None
    now_ns = int((time.time() if now is None else now) * 1_000_000_000)

    def build(k: tuple) -> Predicate:
        op = k[0]
        if op == "ALL":
            return lambda s, u: True
        if op == "AND":
            parts = [build(x) for x in k[1]]
            return lambda s, u: all(p(s, u) for p in parts)
        if op == "OR":
            a, b = build(k[1]), build(k[2])
            return lambda s, u: a(s, u) or b(s, u)
        if op == "NOT":
            inner = build(k[1])
            return lambda s, u: not inner(s, u)
        if op in ("SEQ", "UID"):
            seqset: SequenceSet = k[1]
            if op == "UID":
                members = set(seqset.iter(uids[-1] if uids else 0, uids))
                return lambda s, u: u in members
            members = set(seqset.iter(len(uids)))
            return lambda s, u: s in members
        if op in ("FLAG", "NOTFLAG"):
            want = k[1].casefold()
            if want == "\\recent":  # never set here
                return (lambda s, u: False) if op == "FLAG" else (lambda s, u: True)
            has: Predicate = lambda s, u: any(f.casefold() == want for f in flags.get(u, ()))  # noqa: E731
            return has if op == "FLAG" else (lambda s, u: not has(s, u))
        if op == "RECENT":
            return lambda s, u: False
        if op == "MODSEQ":
            n = k[1]
            return lambda s, u: modseqs.get(u, 1) >= n
        if op in ("LARGER", "SMALLER"):
            n = k[1]
            if op == "LARGER":
                return lambda s, u: u in rows and rows[u][0] > n
            return lambda s, u: u in rows and rows[u][0] < n
        if op in ("BEFORE", "ON", "SINCE"):
            start = _day_ns(k[1])
            end = _day_ns(k[1] + timedelta(days=1))
            if op == "BEFORE":
                return lambda s, u: u in rows and rows[u][1] < start
            if op == "SINCE":
                return lambda s, u: u in rows and rows[u][1] >= start
            return lambda s, u: u in rows and start <= rows[u][1] < end
        # OLDER / YOUNGER: the boundary counts, as in search.py
        bound = now_ns - k[1] * 1_000_000_000
        if op == "OLDER":
            return lambda s, u: u in rows and rows[u][1] <= bound
        return lambda s, u: u in rows and rows[u][1] >= bound

    return build(key)


def _index_only(key: tuple) -> bool:
    if key[0] not in _INDEX_KEYS:
        return False
    if key[0] == "AND":
        return all(_index_only(k) for k in key[1])
    if key[0] == "OR":
        return _index_only(key[1]) and _index_only(key[2])
    if key[0] == "NOT":
        return _index_only(key[1])
    return True


def haystack(raw: bytes) -> bytes | None:
    """The raw bytes lower-cased with line breaks taken out, when every decoded text of
    the message (header values, text parts) is a piece of them: ASCII, no encoded
    words, no base64 or quoted-printable, no UTF-7, no NUL. Else None: no prefilter."""
    if not raw.isascii() or b"\x00" in raw or b"=?" in raw:
        return None
    low = raw.lower()
    if b"base64" in low or b"quoted-printable" in low or b"utf-7" in low:
        return None
    return low.replace(b"\r", b"").replace(b"\n", b"")


def could_match(key: tuple, hay: bytes | None) -> bool:
    """False only if ``key`` cannot match a message whose haystack is ``hay``."""
    if hay is None:
        return True
    op = key[0]
    if op == "HEADER":
        return not key[2] or _present(key[2], hay)
    if op in ("BODY", "TEXT"):
        return _present(key[1], hay)
    if op == "AND":
        return all(could_match(k, hay) for k in key[1])
    if op == "OR":
        return could_match(key[1], hay) or could_match(key[2], hay)
    return True  # NOT and the index keys: no claim


def _present(text: str, hay: bytes) -> bool:
    if not text.isascii() or "\r" in text or "\n" in text:
        return True  # no claim
    return text.casefold().encode() in hay

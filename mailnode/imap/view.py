"""What an IMAP session reads of a shard's index (blocking: called in a thread).

Each function reads in one SQLite read transaction, so what it returns is one
committed state of the index: a session's snapshot and the changes it applies
later never straddle an applier commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mailnode.store.index import Index
from mailnode.store.mailboxes import (
    FOLDER_COLUMNS,
    MESSAGE_COLUMNS,
    Folder,
    Mailboxes,
    Message,
    _folder,
    _message,
    canonical,
)


@contextmanager
def _snapshot(index: Index) -> Iterator:
    conn = index.reader()
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _folder_by_id(conn, folder_id: int) -> Folder | None:
    row = conn.execute(
        f"SELECT {FOLDER_COLUMNS} FROM folders WHERE id = ?", (folder_id,)
    ).fetchone()
    return _folder(row) if row else None


def folder_by_id(index: Index, folder_id: int) -> Folder | None:
    """A folder by its id: what a session selected, whatever it is called now."""
    return _folder_by_id(index.reader(), folder_id)


def folders(index: Index, address: str) -> list[Folder]:
    rows = index.read(
        f"SELECT {FOLDER_COLUMNS} FROM folders WHERE address = ? ORDER BY name", (address,)
    )
    return [_folder(r) for r in rows]


@dataclass(frozen=True)
class Status:
    folder: Folder
    messages: int
    unseen: int
    deleted: int
    size: int


def status(index: Index, address: str, name: str) -> Status | None:
    with _snapshot(index) as conn:
        row = conn.execute(
            f"SELECT {FOLDER_COLUMNS} FROM folders WHERE address = ? AND name = ?",
            (address, canonical(name)),
        ).fetchone()
        if row is None:
            return None
        f = _folder(row)
        n, size, seen, deleted = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0), "
            "coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') > 0), 0), "
            "coalesce(sum(instr(' ' || flags || ' ', ' \\Deleted ') > 0), 0) "
            "FROM messages WHERE folder = ?",
            (f.id,),
        ).fetchone()
        return Status(f, n, n - seen, deleted, size)


@dataclass(frozen=True)
class Snapshot:
    """A folder as SELECT sees it: its messages (uid, flags, modseq) in UID order."""

    folder: Folder
    rows: list[tuple[int, tuple[str, ...], int]]


def snapshot(index: Index, folder_id: int) -> Snapshot | None:
    with _snapshot(index) as conn:
        f = _folder_by_id(conn, folder_id)
        if f is None:
            return None
        rows = conn.execute(
            "SELECT uid, flags, modseq FROM messages WHERE folder = ? ORDER BY uid", (f.id,)
        ).fetchall()
        return Snapshot(f, [(u, tuple(fl.split()) if fl else (), m) for u, fl, m in rows])


@dataclass(frozen=True)
class Changes:
    """What changed in a folder since a modseq: None folder means it is gone."""

    folder: Folder | None
    changed: list[tuple[int, tuple[str, ...], int]]  # new or re-flagged, UID order
    expunged: list[int]


def changes(index: Index, folder_id: int, since: int) -> Changes:
    with _snapshot(index) as conn:
        f = _folder_by_id(conn, folder_id)
        if f is None:
            return Changes(None, [], [])
        if f.highest_modseq <= since:
            return Changes(f, [], [])
        rows = conn.execute(
            "SELECT uid, flags, modseq FROM messages INDEXED BY messages_by_modseq "
            "WHERE folder = ? AND modseq > ? ORDER BY uid",
            (f.id, since),
        ).fetchall()
        gone = conn.execute(
            "SELECT uid FROM expunged WHERE folder = ? AND modseq > ? ORDER BY uid", (f.id, since)
        ).fetchall()
        return Changes(
            f, [(u, tuple(fl.split()) if fl else (), m) for u, fl, m in rows], [g[0] for g in gone]
        )


def messages(index: Index, folder_id: int, uids: list[int]) -> dict[int, Message]:
    """The index rows of these UIDs (those still there)."""
    out: dict[int, Message] = {}
    conn = index.reader()
    # Ranges of consecutive UIDs are one query each: FETCH 1:1000 is one range scan.
    for lo, hi in _runs(uids):
        for row in conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE folder = ? AND uid BETWEEN ? AND ?",
            (folder_id, lo, hi),
        ):
            m = _message(row)
            out[m.uid] = m
    return out


def sizes_and_dates(index: Index, folder_id: int) -> dict[int, tuple[int, int]]:
    """uid -> (size, internal date in ns) of a folder's messages: what SEARCH's size and
    date keys read, without building whole rows."""
    return {
        uid: (size, ns)
        for uid, size, ns in index.reader().execute(
            "SELECT uid, size, internal_ns FROM messages WHERE folder = ?", (folder_id,)
        )
    }


def cached(index: Index, folder_id: int, uids: list[int]) -> dict[int, bytes]:
    """The cached header lines (imap.message.cached_header) of these UIDs, where kept."""
    out: dict[int, bytes] = {}
    conn = index.reader()
    for lo, hi in _runs(uids):
        for uid, blob in conn.execute(
            "SELECT uid, cached FROM messages WHERE folder = ? AND uid BETWEEN ? AND ? "
            "AND cached IS NOT NULL",
            (folder_id, lo, hi),
        ):
            out[uid] = blob
    return out


def _runs(uids: list[int]) -> Iterator[tuple[int, int]]:
    it = iter(sorted(uids))
    try:
        lo = hi = next(it)
    except StopIteration:
        return
    for u in it:
        if u == hi + 1:
            hi = u
            continue
        yield lo, hi
        lo = hi = u
    yield lo, hi


def read_file(store: Mailboxes, address: str, f: Folder, m: Message) -> bytes | None:
    """A message's bytes, found by its indexed path or by its name (renamed by a reader)."""
    return store.read_file(store.folder_path(address, f), m.path, m.name)


def uids_by_name(index: Index, folder_id: int, names: list[str]) -> dict[str, int]:
    """The UIDs of messages by Maildir name (APPENDUID, COPYUID after the commit)."""
    out = {}
    conn = index.reader()
    for name in names:
        row = conn.execute(
            "SELECT uid FROM messages INDEXED BY messages_by_name WHERE folder = ? AND name = ?",
            (folder_id, name),
        ).fetchone()
        if row:
            out[name] = row[0]
    return out

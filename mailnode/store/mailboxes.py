"""Mailboxes in the shard index: folders and messages, with their Maildir files.

Every change here is the effect of one journal record, applied on the index's
writer inside the applier's transaction, so UIDs, UIDVALIDITY and modification
sequences are a function of the journal: a replay, a promoted spare or a
point-in-time restore computes exactly the same numbers.

Files follow Maildir++ (what Dovecot and mutt read): INBOX is the mailbox
directory, folder "A/B" is its subdirectory ".A.B"; a message without Maildir
flags is in new/, one with flags in cur/ as "<name>:2,<letters>".
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from mailnode.errors import AlreadyExists, NotFound, Refused
from mailnode.imap.message import cached_header
from mailnode.store.index import Index
from mailnode.store.maildir import MaildirStore

log = logging.getLogger(__name__)

INBOX = "INBOX"
DELIMITER = "/"
# IMAP system flags that Maildir file names carry (letters in ASCII order in the name).
LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
FROM_LETTER = {v: k for k, v in LETTERS.items()}
# Folders a new user gets, with their RFC 6154 attribute (IMAP LIST shows it).
SPECIAL_USE = {
    "Archive": "\\Archive",
    "Drafts": "\\Drafts",
    "Junk": "\\Junk",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
}


def canonical(name: str) -> str:
    """IMAP: INBOX in any case is INBOX; other names are case-sensitive."""
    return INBOX if name.upper() == INBOX else name


def folder_dir(name: str) -> str:
    """The Maildir++ directory of a folder, relative to the mailbox ("" for INBOX)."""
    if name == INBOX:
        return ""
    parts = [quote(p, safe="").replace(".", "%2E") for p in name.split(DELIMITER)]
    return "." + ".".join(parts)


def folder_of_dir(d: str) -> str:
    return INBOX if d == "" else DELIMITER.join(unquote(p) for p in d[1:].split("."))


def check_folder_name(name: str) -> str | None:
    """Why ``name`` cannot be a folder, or None."""
    if not name or len(name) > 200:
        return "a folder name is 1 to 200 characters"
    if any(not p for p in name.split(DELIMITER)):
        return f"empty hierarchy level in {name!r}"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "control characters in a folder name"
    return None


def letters(flags: Iterable[str]) -> str:
    return "".join(sorted(LETTERS[f] for f in flags if f in LETTERS))


def message_path(name: str, flags: Iterable[str]) -> str:
    ls = letters(flags)
    return f"cur/{name}:2,{ls}" if ls else f"new/{name}"


def join_flags(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def split_flags(text: str) -> list[str]:
    return text.split() if text else []


@dataclass(frozen=True)
class Folder:
    id: int
    address: str
    name: str
    dir: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    subscribed: bool
    messages: int = 0


@dataclass(frozen=True)
class Message:
    uid: int
    name: str
    size: int
    internal_ns: int
    flags: tuple[str, ...]
    modseq: int
    path: str  # relative to the folder's directory


FOLDER_COLUMNS = "id, address, name, dir, uidvalidity, uidnext, highest_modseq, subscribed"
MESSAGE_COLUMNS = "uid, name, size, internal_ns, flags, modseq, path"


def _folder(row: tuple, messages: int = 0) -> Folder:
    fid, address, name, d, uidvalidity, uidnext, modseq, subscribed = row[:8]
    return Folder(fid, address, name, d, uidvalidity, uidnext, modseq, bool(subscribed), messages)


def _message(row: tuple) -> Message:
    return Message(row[0], row[1], row[2], row[3], tuple(split_flags(row[4])), row[5], row[6])


class Mailboxes:
    def __init__(self, index: Index, files: MaildirStore):
        self.index = index
        self.files = files
        self.changed_files = False  # since the last commit: the commit syncs first

    # -- paths ------------------------------------------------------------------------------
    def folder_path(self, address: str, folder: Folder | str) -> str:
        """The directory of a folder (or of a Maildir++ directory name, "" for INBOX)."""
        d = folder.dir if isinstance(folder, Folder) else folder
        return os.path.join(self.files.path(address), d) if d else self.files.path(address)

    # -- the writer: effects of records --------------------------------------------------
    def _w(self):
        return self.index.begin()

    def _wfolder(self, address: str, name: str) -> Folder | None:
        row = (
            self._w()
            .execute(
                f"SELECT {FOLDER_COLUMNS} FROM folders WHERE address = ? AND name = ?",
                (address, canonical(name)),
            )
            .fetchone()
        )
        return _folder(row) if row else None

    def _next_uidvalidity(self, address: str, ts_sec: int) -> int:
        w = self._w()
        row = w.execute(
            "SELECT uidvalidity_last FROM mailboxes WHERE address = ?", (address,)
        ).fetchone()
        v = max(ts_sec, (row[0] if row else 0) + 1) & 0xFFFFFFFF or 1
        w.execute("UPDATE mailboxes SET uidvalidity_last = ? WHERE address = ?", (v, address))
        return v

    def ensure_mailbox(self, address: str, ts_sec: int) -> Folder:
        """The mailbox of ``address`` with its INBOX (made if missing)."""
        w = self._w()
        w.execute("INSERT OR IGNORE INTO mailboxes (address) VALUES (?)", (address,))
        inbox = self._wfolder(address, INBOX)
        if inbox is None:
            inbox = self._create(address, INBOX, ts_sec)
        return inbox

    def _create(self, address: str, name: str, ts_sec: int) -> Folder:
        v = self._next_uidvalidity(address, ts_sec)
        d = folder_dir(name)
        self._w().execute(
            "INSERT INTO folders (address, name, dir, uidvalidity) VALUES (?, ?, ?, ?)",
            (address, name, d, v),
        )
        if name != INBOX:  # the INBOX's directories come with its first message
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(self.folder_path(address, d), sub), exist_ok=True)
            self.changed_files = True
        folder = self._wfolder(address, name)
        assert folder is not None
        return folder

    def create_folder(self, address: str, name: str, ts_sec: int) -> None:
        """The folder, and any superior level missing (RFC 3501 CREATE)."""
        name = canonical(name)
        self.ensure_mailbox(address, ts_sec)
        if check_folder_name(name) is not None:
            return
        parts = name.split(DELIMITER)
        for i in range(1, len(parts) + 1):
            level = canonical(DELIMITER.join(parts[:i]))
            if self._wfolder(address, level) is None:
                self._create(address, level, ts_sec)

    def _subtree(self, conn, address: str, name: str) -> list[tuple[int, str, str]]:
        """(id, name, dir) of the folder and every folder below it. Names compare exactly
        (IMAP names are case-sensitive; SQLite's LIKE is not)."""
        prefix = name + DELIMITER
        return conn.execute(
            "SELECT id, name, dir FROM folders WHERE address = ? "
            "AND (name = ? OR substr(name, 1, ?) = ?)",
            (address, name, len(prefix), prefix),
        ).fetchall()

    def rename_conflict(
        self, address: str, name: str, new_name: str, *, conn=None
    ) -> Refused | None:
        """Why ``name`` cannot be renamed to ``new_name`` (with the folders below it)."""
        name, new_name = canonical(name), canonical(new_name)
        if INBOX in (name, new_name):
            return Refused("INBOX is never renamed (nor is a folder renamed to INBOX)")
        why = check_folder_name(new_name)
        if why:
            return Refused(why)
        if new_name.startswith(name + DELIMITER):
            return Refused(f"{name!r} cannot be renamed below itself")
        conn = conn or self.index.reader()
        rows = self._subtree(conn, address, name)
        if not rows:
            return NotFound(f"{address} has no folder {name!r}")
        for _, old, _ in rows:
            renamed = new_name + old[len(name) :]
            if conn.execute(
                "SELECT 1 FROM folders WHERE address = ? AND name = ?", (address, renamed)
            ).fetchone():
                return AlreadyExists(f"{address} has a folder {renamed!r}")
        return None

    def rename_folder(self, address: str, name: str, new_name: str, ts_sec: int = 0) -> None:
        """Renames the folder and every folder below it (IMAP RENAME), and creates the
        new name's superior levels if missing. A record that cannot apply (its command
        was checked against an older index) changes nothing, the same on every replica."""
        name, new_name = canonical(name), canonical(new_name)
        w = self._w()
        if self.rename_conflict(address, name, new_name, conn=w):
            return
        for fid, old, old_dir in self._subtree(w, address, name):
            renamed = new_name + old[len(name) :]
            new_dir = folder_dir(renamed)
            src, dst = self.folder_path(address, old_dir), self.folder_path(address, new_dir)
            if os.path.isdir(src) and not os.path.exists(dst):
                os.rename(src, dst)
            elif os.path.isdir(src):
                # A replay: a batch lost in a crash had renamed it, and a later record of
                # that batch may have made a new folder of the old name: move only this
                # folder's messages.
                self._move_rows(fid, src, dst)
            w.execute("UPDATE folders SET name = ?, dir = ? WHERE id = ?", (renamed, new_dir, fid))
        parts = new_name.split(DELIMITER)
        for k in range(1, len(parts)):
            level = DELIMITER.join(parts[:k])
            if self._wfolder(address, level) is None:
                self._create(address, level, ts_sec)
        self.changed_files = True

    def _move_rows(self, fid: int, src: str, dst: str) -> None:
        """Move the files of folder ``fid``'s messages from ``src`` to ``dst``."""
        on_disk = dict(self.files.scan(src))
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(dst, sub), exist_ok=True)
        for (name,) in self._w().execute("SELECT name FROM messages WHERE folder = ?", (fid,)):
            rel = on_disk.pop(name, None)
            if rel is not None and not os.path.exists(os.path.join(dst, rel)):
                os.replace(os.path.join(src, rel), os.path.join(dst, rel))
        if not on_disk:  # nothing of a newer folder there: the old directory goes
            shutil.rmtree(src, ignore_errors=True)

    def delete_folder(self, address: str, name: str) -> None:
        name = canonical(name)
        folder = self._wfolder(address, name)
        if folder is None or name == INBOX:
            return
        w = self._w()
        count, total = w.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE folder = ?", (folder.id,)
        ).fetchone()
        w.execute("DELETE FROM messages WHERE folder = ?", (folder.id,))
        w.execute("DELETE FROM expunged WHERE folder = ?", (folder.id,))
        w.execute("DELETE FROM folders WHERE id = ?", (folder.id,))
        self._usage(address, -count, -total)
        shutil.rmtree(self.folder_path(address, folder), ignore_errors=True)
        self.changed_files = True

    def subscribe(self, address: str, name: str, on: bool) -> None:
        self._w().execute(
            "UPDATE folders SET subscribed = ? WHERE address = ? AND name = ?",
            (int(on), address, canonical(name)),
        )

    def _usage(self, address: str, messages: int, nbytes: int) -> None:
        self._w().execute(
            "UPDATE mailboxes SET messages = messages + ?, bytes = bytes + ? WHERE address = ?",
            (messages, nbytes, address),
        )

    def _insert(
        self,
        address: str,
        folder: Folder,
        name: str,
        size: int,
        internal_ns: int,
        flags,
        cached: bytes | None = None,
    ) -> None:
        w = self._w()
        uid, modseq = folder.uidnext, folder.highest_modseq + 1
        w.execute(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}, folder, cached) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                uid,
                name,
                size,
                internal_ns,
                join_flags(flags),
                modseq,
                message_path(name, flags),
                folder.id,
                cached,
            ),
        )
        w.execute(
            "UPDATE folders SET uidnext = ?, highest_modseq = ? WHERE id = ?",
            (uid + 1, modseq, folder.id),
        )
        self._usage(address, 1, size)

    def deliver(
        self,
        name: str,
        data: bytes,
        addresses: list[str],
        internal_ns: int,
        *,
        folder: str = INBOX,
        flags: tuple[str, ...] = (),
        replay: bool = False,
    ) -> int:
        """One message into each mailbox's ``folder``, at most once each: copies made.

        A live record's name is new (lsns are never reused), so only a replay can find
        it indexed already; its file may then have lost its data to a power cut while
        its name survived: a file of the wrong size is written again, in place."""
        made = 0
        targets: list[str] = []
        cached = cached_header(data)
        # One copy per mailbox even if a sender named it twice (RCPT a@x, RCPT A@x).
        for address in dict.fromkeys(addresses):
            box = self.ensure_mailbox(address, internal_ns // 1_000_000_000)
            self.files.ensure(address)
            f = self._wfolder(address, folder) if folder != INBOX else box
            if f is None:
                f = box  # the folder went meanwhile: deliver to INBOX rather than lose it
            if replay:
                row = (
                    self._w()
                    .execute(
                        "SELECT path FROM messages INDEXED BY messages_by_name "
                        "WHERE folder = ? AND name = ?",
                        (f.id, name),
                    )
                    .fetchone()
                )
                if row is not None:
                    path = os.path.join(self.folder_path(address, f), row[0])
                    if _size(path) not in (None, len(data)):
                        self.files.write_in_place(path, name, data)
                        self.changed_files = True  # synced before the commit naming it
                        made += 1
                    continue
            self._insert(address, f, name, len(data), internal_ns, flags, cached)
            target = os.path.join(self.folder_path(address, f), message_path(name, flags))
            if replay and _size(target) not in (None, len(data)):
                # Written before a commit a power cut took back, and damaged by it.
                self.files.write_in_place(target, name, data)
                self.changed_files = True
                made += 1
                continue
            targets.append(target)
        if targets:
            made += self.files.write_linked(name, data, targets)
            self.changed_files = True
        return made

    def _wmessages(self, folder: Folder, uids: Iterable[int]) -> list[Message]:
        w = self._w()
        out = []
        for uid in uids:
            row = w.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE folder = ? AND uid = ?",
                (folder.id, uid),
            ).fetchone()
            if row:
                out.append(_message(row))
        return out

    def _wby_name(self, folder: Folder, names: Iterable[str]) -> list[Message]:
        w = self._w()
        out = []
        for name in names:
            row = w.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_by_name "
                "WHERE folder = ? AND name = ?",
                (folder.id, name),
            ).fetchone()
            if row:
                out.append(_message(row))
        return out

    def set_flags(
        self,
        address: str,
        name: str,
        uids: list[int],
        mode: str,
        flags: list[str],
        uidvalidity: int = 0,
    ) -> None:
        """mode: "add", "remove" or "replace"."""
        folder = self._wfolder(address, name)
        if folder is None or not _same(folder, uidvalidity):
            return
        w = self._w()
        modseq = folder.highest_modseq
        base = self.folder_path(address, folder)
        where = _Where(self.files, base)
        for m in self._wmessages(folder, uids):
            old = set(m.flags)
            new = (
                old | set(flags)
                if mode == "add"
                else old - set(flags)
                if mode == "remove"
                else set(flags)
            )
            if new == old:
                continue
            modseq += 1
            path = message_path(m.name, new)
            if path != m.path:
                self._move_file(where, m.path, path, m.name)
            w.execute(
                "UPDATE messages SET flags = ?, modseq = ?, path = ? WHERE folder = ? AND uid = ?",
                (join_flags(new), modseq, path, folder.id, m.uid),
            )
        if modseq != folder.highest_modseq:
            w.execute("UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, folder.id))

    def _move_file(self, where: _Where, old: str, new: str, name: str) -> None:
        dst = os.path.join(where.base, new)
        src = where.path(old, name, unless=dst)
        if src is None:
            if not os.path.exists(dst):
                log.warning("message file %s is missing in %s", name, where.base)
            return  # else a replay: moved already
        os.replace(src, dst)
        self.changed_files = True

    def copy(
        self,
        address: str,
        name: str,
        uids: list[int],
        target: str,
        *,
        move: bool,
        stamp: str,
        uidvalidity: int = 0,
    ) -> None:
        """Copy (or move) messages to ``target``; a copy's Maildir name is its source's with
        ``stamp`` (from the record's lsn) so names stay unique in the target."""
        src, dst = self._wfolder(address, name), self._wfolder(address, target)
        if src is None or dst is None or not _same(src, uidvalidity):
            return
        src_base, dst_base = self.folder_path(address, src), self.folder_path(address, dst)
        where = _Where(self.files, src_base)
        messages = self._wmessages(src, uids)
        for m in messages:
            dst = self._wfolder(address, target)  # uidnext moved on
            assert dst is not None
            new_name = copy_name(m.name, stamp, m.uid)  # the source UID: COPYUID finds it
            cached = (
                self._w()
                .execute(
                    "SELECT cached FROM messages WHERE folder = ? AND uid = ?", (src.id, m.uid)
                )
                .fetchone()[0]
            )
            self._insert(address, dst, new_name, m.size, m.internal_ns, m.flags, cached)
            target_path = os.path.join(dst_base, message_path(new_name, m.flags))
            source = where.path(m.path, m.name, unless=target_path)
            try:
                if source is not None:
                    os.link(source, target_path)
                elif not os.path.exists(target_path):  # else a replay: copied already
                    raise FileNotFoundError(m.name)
            except FileExistsError:
                pass  # a replay
            except FileNotFoundError:
                log.warning("copy: message file %s is missing in %s", m.name, src_base)
        if move and messages:
            self._remove(address, src, messages)
        self.changed_files = True

    def expunge(
        self,
        address: str,
        name: str,
        uids: Iterable[int] = (),
        names: Iterable[str] = (),
        uidvalidity: int = 0,
    ) -> int:
        folder = self._wfolder(address, name)
        if folder is None or not _same(folder, uidvalidity):
            return 0
        messages = self._wmessages(folder, uids) + self._wby_name(folder, names)
        self._remove(address, folder, messages)
        return len(messages)

    def _remove(self, address: str, folder: Folder, messages: list[Message]) -> None:
        if not messages:
            return
        w = self._w()
        where = _Where(self.files, self.folder_path(address, folder))
        cur = self._wfolder(address, folder.name)
        assert cur is not None
        modseq = cur.highest_modseq + 1
        for m in messages:
            w.execute("DELETE FROM messages WHERE folder = ? AND uid = ?", (folder.id, m.uid))
            w.execute(
                "INSERT OR REPLACE INTO expunged VALUES (?, ?, ?)", (folder.id, m.uid, modseq)
            )
            path = where.path(m.path, m.name)
            if path is not None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        w.execute("UPDATE folders SET highest_modseq = ? WHERE id = ?", (modseq, folder.id))
        self._usage(address, -len(messages), -sum(m.size for m in messages))
        self.changed_files = True

    # -- readers (committed state) --------------------------------------------------------
    def folder(self, address: str, name: str) -> Folder | None:
        row = self.index.read_one(
            f"SELECT {FOLDER_COLUMNS} FROM folders WHERE address = ? AND name = ?",
            (address, canonical(name)),
        )
        return _folder(row) if row else None

    def folders(self, address: str) -> list[Folder]:
        rows = self.index.read(
            f"SELECT {FOLDER_COLUMNS}, (SELECT count(*) FROM messages WHERE folder = f.id) "
            "FROM folders f WHERE address = ? ORDER BY name",
            (address,),
        )
        return [_folder(r[:8], r[8]) for r in rows]

    def messages(self, address: str, name: str = INBOX) -> list[Message]:
        folder = self.folder(address, name)
        if folder is None:
            return []
        rows = self.index.read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE folder = ? ORDER BY uid", (folder.id,)
        )
        return [_message(r) for r in rows]

    def listing(self, address: str) -> list[tuple[str, int]]:
        """(Maildir name, size) of the INBOX's messages in UID order: POP3's maildrop."""
        rows = self.index.read(
            "SELECT m.name, m.size FROM messages m JOIN folders f ON m.folder = f.id "
            "WHERE f.address = ? AND f.name = ? ORDER BY m.uid",
            (address, INBOX),
        )
        return [(r[0], r[1]) for r in rows]

    def read(self, address: str, name: str, folder: str = INBOX) -> bytes | None:
        """The message ``name`` of ``folder`` (blocking), or None."""
        row = self.index.read_one(
            "SELECT f.dir, m.path FROM messages m INDEXED BY messages_by_name "
            "JOIN folders f ON m.folder = f.id "
            "WHERE f.address = ? AND f.name = ? AND m.name = ?",
            (address, canonical(folder), name),
        )
        if row is None:
            return None
        return self.read_file(self.folder_path(address, row[0]), row[1], name)

    def read_file(self, base: str, rel: str, name: str) -> bytes | None:
        """Message ``name``'s bytes from its indexed path ``rel`` under the folder
        directory ``base``, else wherever a reader moved it (a flag change), or None."""
        try:
            with open(os.path.join(base, rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
        path = self.files.locate(base, name)  # a directory listing: only when needed
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def usage(self, address: str) -> tuple[int, int]:
        """(messages, bytes) stored for ``address``, all folders."""
        row = self.index.read_one(
            "SELECT messages, bytes FROM mailboxes WHERE address = ?", (address,)
        )
        return (row[0], row[1]) if row else (0, 0)


def _same(folder: Folder, uidvalidity: int) -> bool:
    """Is this the folder an IMAP command was checked against (0: not checked)? A
    folder renamed away and another made under its name has a new UIDVALIDITY."""
    return not uidvalidity or folder.uidvalidity == uidvalidity


def copy_name(name: str, stamp: str, i: int) -> str:
    """``<sec>.<unique>.<host>,S=<size>``: the stamp goes into the unique part, so the
    size stays where readers look for it."""
    head, sep, size = name.partition(",S=")
    sec, _, rest = head.partition(".")
    return f"{sec}.{stamp}N{i}.{rest.partition('.')[2] or rest}{sep}{size}"


class _Where:
    """Where a folder's message files are when the index's path is stale (a replay, or
    a reader moved one): one directory listing per record, not one per message."""

    def __init__(self, files: MaildirStore, base: str):
        self.files, self.base = files, base
        self._listing: dict[str, str] | None = None

    def path(self, rel: str, name: str, unless: str | None = None) -> str | None:
        """The file of message ``name`` (indexed at ``rel``), or None; None too when it
        is missing and ``unless`` exists (the replayed change was made already)."""
        p = os.path.join(self.base, rel)
        if os.path.exists(p):
            return p
        if unless is not None and os.path.exists(unless):
            return None
        if self._listing is None:
            self._listing = dict(self.files.scan(self.base))
        found = self._listing.get(name)
        return os.path.join(self.base, found) if found else None


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None

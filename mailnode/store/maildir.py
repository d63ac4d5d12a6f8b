"""Maildir folders, materialised from the journal.

A message's file name derives from its journal record (time, shard, lsn,
size), so applying the same record twice finds the file already there: replay
after a crash never duplicates mail. Files are not fsync'd one by one; the
store checkpoint syncs the filesystem before it moves the replay point.
"""

from __future__ import annotations

import builtins
import os
from urllib.parse import quote

SUBDIRS = ("tmp", "new", "cur")


def message_name(shard: int, lsn: int, timestamp_ns: int, size: int) -> str:
    return f"{timestamp_ns // 1_000_000_000}.S{shard}L{lsn}.mailcluster,S={size}"


def size_from_name(name: str) -> int | None:
    _, sep, rest = name.partition(",S=")
    if not sep:
        return None
    digits = rest.split(",", 1)[0].split(":", 1)[0]
    return int(digits) if digits.isdigit() else None


class MaildirStore:
    """The Maildirs of one shard: ROOT/<domain>/<local part>/{tmp,new,cur}."""

    def __init__(self, root: str):
        self.root = root
        self.tmp = os.path.join(root, ".tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self._ensured: set[str] = set()

    def path(self, address: str) -> str:
        local, _, domain = address.lower().rpartition("@")
        # quote() keeps "." so a local part of "." or ".." must not be a path step.
        return os.path.join(self.root, quote(domain, safe=""), "_" + quote(local, safe=""))

    def ensure(self, address: str) -> str:
        path = self.path(address)
        if path not in self._ensured:
            for sub in SUBDIRS:
                os.makedirs(os.path.join(path, sub), exist_ok=True)
            self._ensured.add(path)
        return path

    def deliver(self, name: str, data: bytes, addresses: list[str], *, replay: bool = False) -> int:
        """Put one message into each mailbox, at most once each. Returns copies made.

        A live record's name is new (lsns are never reused), so only a replay can
        find it delivered already, possibly moved to cur/ by a mail reader. Replay
        runs over what came after the last checkpoint, whose files may have lost
        their data to a power cut while their names survived (the link is journaled
        metadata, the data blocks are not yet written): a file of the wrong size is
        written again, in place, keeping the name a reader gave it.
        """
        targets, rewrites = [], []
        for address in addresses:
            box = self.ensure(address)
            found = _locate(box, name) if replay else None
            if found is None:
                targets.append(os.path.join(box, "new", name))
            elif _size(found) not in (None, len(data)):
                rewrites.append(found)
        if not targets and not rewrites:
            return 0
        tmp = os.path.join(self.tmp, name)
        made = 0
        for path in rewrites:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            made += 1
        if targets:
            with open(tmp, "wb") as f:
                f.write(data)
            for target in targets:
                try:
                    os.link(tmp, target)  # one write, hard links for more recipients
                    made += 1
                except FileExistsError:
                    pass
            os.unlink(tmp)
        return made

    def list(self, address: str) -> list[tuple[str, int]]:
        """(uid, size) of every message, oldest first."""
        box = self.path(address)
        out = []
        for sub in ("cur", "new"):
            try:
                names = os.listdir(os.path.join(box, sub))
            except FileNotFoundError:
                continue
            for n in names:
                uid = n.split(":", 1)[0]
                size = size_from_name(uid)
                if size is None:
                    size = os.path.getsize(os.path.join(box, sub, n))
                out.append((uid, size))
        out.sort(key=_order)
        return out

    def read(self, address: str, uid: str) -> bytes | None:
        path = _locate(self.path(address), uid)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def remove(self, address: str, uids: builtins.list[str]) -> int:
        removed = 0
        for uid in uids:
            path = _locate(self.path(address), uid)
            if path is not None:
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed


def _locate(box: str, uid: str) -> str | None:
    """The file of message ``uid`` in new/ or (flags appended) in cur/, if it is there."""
    p = os.path.join(box, "new", uid)
    if os.path.exists(p):
        return p
    try:
        for n in os.listdir(os.path.join(box, "cur")):
            if n == uid or n.startswith(uid + ":"):
                return os.path.join(box, "cur", n)
    except FileNotFoundError:
        pass
    return None


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:  # a reader moved it meanwhile: a reader had it whole
        return None


def _order(item: tuple[str, int]) -> tuple[int, int, str]:
    uid = item[0]
    sec, _, rest = uid.partition(".")
    lsn = rest.partition("L")[2].partition(".")[0]
    return (int(sec) if sec.isdigit() else 0, int(lsn) if lsn.isdigit() else 0, uid)

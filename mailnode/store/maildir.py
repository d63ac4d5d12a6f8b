"""Maildir files of a shard's mailboxes: ROOT/<domain>/_<local part>/ (Maildir++).

A message's file name derives from its journal record (time, shard, lsn, size),
so applying the same record twice finds the file already there: replay after a
crash never duplicates mail. Files are not fsync'd one by one; the index's
commit syncs the filesystem first (see ``ShardState.commit``).

Where a message's file is, the index says; ``locate`` (a directory scan) is
only for a file someone else moved (a mail reader working on the Maildir).
"""

from __future__ import annotations

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

    def write_linked(self, name: str, data: bytes, targets: list[str]) -> int:
        """Write ``data`` once and hard-link it at every target; returns links made
        (a target already there is a replay's)."""
        tmp = os.path.join(self.tmp, name)
        with open(tmp, "wb") as f:
            f.write(data)
        made = 0
        for target in targets:
            try:
                os.link(tmp, target)
                made += 1
            except FileExistsError:
                pass
        os.unlink(tmp)
        return made

    def write_in_place(self, path: str, name: str, data: bytes) -> None:
        """Rewrite a file that lost its data (a power cut after its name was durable)."""
        tmp = os.path.join(self.tmp, name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def scan(self, folder_path: str) -> list[tuple[str, str]]:
        """(name, path relative to the folder) of every message file in new/ and cur/."""
        out: list[tuple[str, str]] = []
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(folder_path, sub))
            except FileNotFoundError:
                continue
            out.extend((n.split(":", 1)[0], f"{sub}/{n}") for n in names)
        return out

    @staticmethod
    def locate(folder_path: str, name: str) -> str | None:
        """The file of message ``name`` in new/ or (flags appended) in cur/, if any."""
        p = os.path.join(folder_path, "new", name)
        if os.path.exists(p):
            return p
        try:
            for n in os.listdir(os.path.join(folder_path, "cur")):
                if n == name or n.startswith(name + ":"):
                    return os.path.join(folder_path, "cur", n)
        except FileNotFoundError:
            pass
        return None


def order_key(name: str) -> tuple[int, int, str]:
    """Arrival order of our Maildir names (time, then lsn): a migrated INBOX's UID order."""
    sec, _, rest = name.partition(".")
    lsn = rest.partition("L")[2].partition(".")[0]
    return (int(sec) if sec.isdigit() else 0, int(lsn) if lsn.isdigit() else 0, name)

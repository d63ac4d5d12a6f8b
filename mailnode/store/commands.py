"""Mailbox operations on a shard's primary: checked against the committed index, then
committed as one journal record each and applied before the answer (so the caller
reads its own change). Used by the admin service (``mailctl mailbox``) and by the
IMAP server to come; the records are what replicas, restores and replays apply.
"""

from __future__ import annotations

import asyncio
import re

from mailnode.errors import AlreadyExists, NotFound, Refused
from mailnode.proto.journal_pb2 import FlagsChanged, FolderChanged, JournalRecord
from mailnode.store.mailboxes import INBOX, LETTERS, canonical, check_folder_name

MODES = {"add": FlagsChanged.ADD, "remove": FlagsChanged.REMOVE, "replace": FlagsChanged.REPLACE}
_KEYWORD = re.compile(r"[!#$&'+-\[^-z|}~]{1,100}")  # RFC 3501 atom characters, no specials


def check_flags(flags: list[str]) -> list[str]:
    for f in flags:
        if f.startswith("\\"):
            if f not in LETTERS:
                raise Refused(f"unknown system flag {f!r} (known: {', '.join(sorted(LETTERS))})")
        elif not _KEYWORD.fullmatch(f):
            raise Refused(f"not a keyword: {f!r}")
    return flags


# Both are primary-key reads of the index (~15 us): on the loop, as RCPT's lookup is;
# a thread hop costs more than the read.
async def _exists(shard, address: str) -> None:
    if address not in shard.state.users:
        raise NotFound(f"no such user: {address}")


async def _folder(shard, address: str, name: str):
    folder = shard.state.mailboxes.folder(address, name)
    if folder is None:
        raise NotFound(f"{address} has no folder {name!r}")
    return folder


async def _commit(shard, rec: JournalRecord) -> int:
    return await shard.commit(rec, applied=True)


async def change_folder(shard, address: str, action: str, name: str, new_name: str = "") -> int:
    """create | rename | delete | subscribe | unsubscribe one folder."""
    await _exists(shard, address)
    name = canonical(name)
    rec = JournalRecord()
    c = rec.folder_changed
    c.mailbox, c.folder = address, name
    if action == "create":
        why = check_folder_name(name)
        if why:
            raise Refused(why)
        if await asyncio.to_thread(shard.state.mailboxes.folder, address, name):
            raise AlreadyExists(f"{address} has a folder {name!r}")
        c.action = FolderChanged.CREATE
    elif action == "rename":
        new_name = canonical(new_name)
        await _folder(shard, address, name)
        conflict = await asyncio.to_thread(
            shard.state.mailboxes.rename_conflict, address, name, new_name
        )
        if conflict:
            raise conflict
        c.action, c.new_name = FolderChanged.RENAME, new_name
    elif action == "delete":
        await _folder(shard, address, name)
        if name == INBOX:
            raise Refused("INBOX is never deleted")
        c.action = FolderChanged.DELETE
    elif action in ("subscribe", "unsubscribe"):
        c.action = FolderChanged.SUBSCRIBE if action == "subscribe" else FolderChanged.UNSUBSCRIBE
    else:
        raise Refused(f"unknown folder action {action!r}")
    return await _commit(shard, rec)


async def set_flags(
    shard,
    address: str,
    folder: str,
    uids: list[int],
    mode: str,
    flags: list[str],
    uidvalidity: int = 0,
) -> int:
    if mode not in MODES:
        raise Refused(f"unknown flag mode {mode!r} (add, remove, replace)")
    await _exists(shard, address)
    f = await _folder(shard, address, folder)
    rec = JournalRecord()
    x = rec.flags_changed
    x.mailbox, x.folder, x.mode = address, f.name, MODES[mode]
    x.uids.extend(uids)
    x.flags.extend(check_flags(flags))
    x.uidvalidity = uidvalidity
    return await _commit(shard, rec)


async def copy(
    shard,
    address: str,
    folder: str,
    uids: list[int],
    target: str,
    *,
    move: bool,
    uidvalidity: int = 0,
) -> int:
    await _exists(shard, address)
    src = await _folder(shard, address, folder)
    dst = await _folder(shard, address, target)
    if src.id == dst.id:
        raise Refused("source and target are the same folder")
    rec = JournalRecord()
    c = rec.messages_copied
    c.mailbox, c.folder, c.target, c.move = address, src.name, dst.name, move
    c.uids.extend(sorted(set(uids)))
    c.uidvalidity = uidvalidity
    return await _commit(shard, rec)


async def expunge(shard, address: str, folder: str, uids: list[int], uidvalidity: int = 0) -> int:
    await _exists(shard, address)
    f = await _folder(shard, address, folder)
    rec = JournalRecord()
    x = rec.expunged
    x.mailbox, x.folder = address, f.name
    x.uid_numbers.extend(sorted(set(uids)))
    x.uidvalidity = uidvalidity
    return await _commit(shard, rec)

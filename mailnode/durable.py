"""Durable file-system steps, named once: what the journal, the store, snapshots,
the archive and the node's own files use to make a write survive power loss."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading

_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path: str) -> None:
    """Flush the filesystem holding ``path`` (the Maildir files written since the last checkpoint)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: all of it or none of it, after a crash too.

    The temporary name is the writer's own (two writers of role.json at once each rename
    their own file; the last rename wins), and ends in ``.tmp`` for ``sweep_tmp``."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def sweep_tmp(directory: str) -> None:
    """Remove what ``write_atomic`` left behind in ``directory`` when a crash cut it short."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".tmp") and os.path.isfile(os.path.join(directory, name)):
            os.unlink(os.path.join(directory, name))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_synced(path: str) -> None:
    """``os.makedirs``, then fsync the parent of every directory it made: POSIX does not
    promise that syncing a file inside also keeps the new directory's name (F13)."""
    made, p = [], os.path.abspath(path)
    while not os.path.isdir(p):
        made.append(p)
        p = os.path.dirname(p)
    if not made:
        return
    os.makedirs(path, exist_ok=True)
    for d in reversed(made):
        fsync_dir(os.path.dirname(d))


async def to_thread_to_the_end(fn, *args):
    """``asyncio.to_thread`` that a cancellation waits for: cancelling the follower must
    not leave a journal cut or a store replacement running in its thread while the node
    follows on or is promoted (seen in a chaos run: a node promoted mid-rebuild answered
    RCPT with 550 from its half-built user table)."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await work
        raise

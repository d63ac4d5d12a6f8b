"""Bootstrap of a new spare: the store at an lsn, streamed while the primary serves.

The primary pauses its applier for as long as it takes to hard-link every
Maildir file into ``snapshots/<id>/`` and copy the index there: a
consistent copy at the applied lsn that costs no data copy. The files are then
streamed in path order; a broken stream resumes after the last whole file.
The spare installs the copy as its store, starts its journal at that lsn and
follows the primary from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
import uuid

import grpc

from mailnode.durable import syncfs, to_thread_to_the_end, write_atomic
from mailnode.proto import replication_pb2 as pb
from mailnode.proto import replication_pb2_grpc
from mailnode.store.index import INDEX_FILE

log = logging.getLogger(__name__)

CHUNK = 1 << 20
KEEP_SECONDS = 3600


def _make(shard) -> tuple[str, int]:
    """Hard-link the store into a new snapshot directory (blocking). Returns (id, lsn)."""
    root = os.path.join(shard.directory, "snapshots")
    os.makedirs(root, exist_ok=True)
    for old in os.listdir(root):  # forget abandoned snapshots
        path = os.path.join(root, old)
        if time.time() - os.path.getmtime(path) > KEEP_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
    snap_id = uuid.uuid4().hex
    target = os.path.join(root, snap_id)
    store = shard.state.store.root
    with shard.apply_lock:
        shard.state.commit()  # nothing is left open outside a batch; to be sure
        lsn = shard.state.committed_lsn
        for dirpath, _, files in os.walk(store):
            rel = os.path.relpath(dirpath, shard.directory)
            os.makedirs(os.path.join(target, rel), exist_ok=True)
            for name in files:
                os.link(os.path.join(dirpath, name), os.path.join(target, rel, name))
        # The index at lsn: users, folders, flags, queue, recent queue ids (a promoted
        # spare dedupes too), quotas.
        shard.state.copy_to(os.path.join(target, INDEX_FILE))
        # Queued messages' bytes live in the journal, which the spare will start at lsn.
        shard.spool_queued(lsn, target)
    with open(os.path.join(target, "snapshot.json"), "w") as f:
        epochs = [(e, s) for e, s in shard.journal.epochs if s < lsn]
        json.dump({"lsn": lsn, "epoch": shard.epoch, "epochs": epochs}, f)
    return snap_id, lsn


def _files(target: str, skip: str) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(target):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), target)
            if rel != skip:
                out.append(rel)
    return sorted(out)


def _read(path: str, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(CHUNK)


async def file_chunks(root: str, *, skip: str = "snapshot.json", after: str = ""):
    """(path, offset, data, end_of_file) for every file under ``root`` in path order,
    CHUNK bytes at a time, skipping the metadata file ``skip`` and paths up to ``after``
    (a resumed stream). Shared by snapshots, backups and the archive's base backups."""
    for rel in await asyncio.to_thread(_files, root, skip):
        if after and rel <= after:
            continue
        offset = 0
        while True:
            data = await asyncio.to_thread(_read, os.path.join(root, rel), offset)
            last = len(data) < CHUNK
            yield rel, offset, data, last
            offset += len(data)
            if last:
                break


def write_chunk(root: str, chunk, *, sync: bool = False) -> None:
    """Write one streamed chunk (path, offset, data, end_of_file) under ``root``; with
    ``sync``, fsync each file at its end. ValueError for a path outside ``root``."""
    path = os.path.abspath(os.path.join(root, chunk.path))
    if not path.startswith(os.path.abspath(root) + os.sep):
        raise ValueError(f"streamed path {chunk.path!r} escapes {root}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "r+b" if chunk.offset else "wb") as f:
        f.seek(chunk.offset)
        f.write(chunk.data)
        if sync and chunk.end_of_file:
            os.fsync(f.fileno())


async def serve_snapshot(shard, request, context):
    snap_id = request.snapshot_id
    if snap_id and not re.fullmatch(r"[0-9a-f]{32}", snap_id):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed snapshot id")
    if not snap_id:
        snap_id, lsn = await asyncio.to_thread(_make, shard)
        log.info("shard %d: snapshot %s at lsn %d for %s", shard.id, snap_id, lsn, request.follower)
    target = os.path.join(shard.directory, "snapshots", snap_id)
    try:
        meta = await asyncio.to_thread(_read_json, os.path.join(target, "snapshot.json"))
    except (FileNotFoundError, ValueError):
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no snapshot {snap_id!r}; start a new one")
    async for rel, offset, data, last in file_chunks(target, after=request.resume_after):
        yield pb.SnapshotChunk(
            snapshot_id=snap_id,
            lsn=meta["lsn"],
            path=rel,
            offset=offset,
            data=data,
            end_of_file=last,
        )
    yield pb.SnapshotChunk(
        snapshot_id=snap_id,
        lsn=meta["lsn"],
        epoch=meta["epoch"],
        end_of_snapshot=True,
        epochs_json=json.dumps(meta["epochs"]),
    )


def _install(shard, staging: str, lsn: int, epochs: list[tuple[int, int]]) -> None:
    """Swap the received copy in as the shard's store; the journal starts at lsn (blocking).

    Crash-safe: the copy is synced before the old store goes, the store is marked
    incomplete while files are swapped (a restart then starts over, see
    Shard._discard_incomplete_store), and the new store is synced before the mark
    goes: a spare is in sync as soon as it follows on, so what it holds must be on disk."""
    os.makedirs(os.path.join(staging, "maildir"), exist_ok=True)  # an empty store sends no files
    syncfs(staging)  # every received file and directory; the same filesystem as the shard
    with shard.apply_lock:
        shard.state.begin_replace(f"snapshot install at lsn {lsn}")
        root = shard.state.store.root
        shutil.rmtree(root, ignore_errors=True)
        os.replace(os.path.join(staging, "maildir"), root)
        shard.state.index.replace_with(os.path.join(staging, INDEX_FILE))
        shutil.rmtree(shard.state.spool, ignore_errors=True)
        if os.path.isdir(os.path.join(staging, "spool")):  # queued messages' only copy
            os.replace(os.path.join(staging, "spool"), shard.state.spool)
        shard.state.reopen()
        shard.journal.reset(lsn, epochs)
        syncfs(shard.directory)  # the renames
        shard.state.end_replace()
    shutil.rmtree(staging, ignore_errors=True)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


async def bootstrap(node, shard, channel) -> None:
    """Receive a snapshot from the primary (resuming a broken one) and install it."""
    staging = os.path.join(shard.directory, "incoming")
    progress_path = os.path.join(staging, "progress.json")
    try:
        progress = await asyncio.to_thread(_read_json, progress_path)
    except (FileNotFoundError, ValueError):
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        progress = {"snapshot_id": "", "resume_after": ""}
    if shard.journal.committed_lsn:
        await shard.wait_applied(shard.journal.committed_lsn - 1)
    stub = replication_pb2_grpc.ReplicationStub(channel)
    req = pb.SnapshotRequest(
        shard=shard.id,
        follower=node.name,
        snapshot_id=progress["snapshot_id"],
        resume_after=progress["resume_after"],
    )
    files = 0
    try:
        async for chunk in stub.Snapshot(req, metadata=node.cluster_metadata):
            if chunk.end_of_snapshot:
                epochs = [tuple(e) for e in json.loads(chunk.epochs_json)]
                await to_thread_to_the_end(_install, shard, staging, chunk.lsn, epochs)
                shard.applied_lsn = chunk.lsn
                shard.adopt_epoch(chunk.epoch)
                await asyncio.to_thread(shard.save_role)
                log.warning(
                    "shard %d: installed snapshot %s at lsn %d (%d files this stream); following on",
                    shard.id,
                    chunk.snapshot_id,
                    chunk.lsn,
                    files,
                )
                return
            await asyncio.to_thread(write_chunk, staging, chunk)
            if chunk.end_of_file:
                files += 1
                progress = {"snapshot_id": chunk.snapshot_id, "resume_after": chunk.path}
                if files % 200 == 0:
                    await asyncio.to_thread(
                        write_atomic, progress_path, json.dumps(progress).encode()
                    )
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            shutil.rmtree(staging, ignore_errors=True)  # the primary forgot it: start over
        elif progress["snapshot_id"]:
            await asyncio.to_thread(write_atomic, progress_path, json.dumps(progress).encode())
        raise

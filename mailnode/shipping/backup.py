"""A shard's online backup on the node: its store hard-linked at an lsn (the applier
is paused while the links are made, so the copy is consistent), then optionally its
journal from that lsn on. The same files serve ``mailctl backup`` (a shard directory
a node can start from) and the base backups uploaded to the archive."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailnode.journal.format import read_range, segment_name
from mailnode.replication import snapshot

if TYPE_CHECKING:
    from mailnode.proto import archive_pb2


@dataclass
class Piece:
    path: str
    offset: int
    data: bytes
    end_of_file: bool


@dataclass
class Backup:
    lsn: int
    end_lsn: int
    created_ns: int
    target: str


async def take(shard) -> Backup:
    snap_id, lsn = await asyncio.to_thread(snapshot._make, shard)
    return Backup(
        lsn,
        shard.journal.committed_lsn,
        time.time_ns(),
        os.path.join(shard.directory, "snapshots", snap_id),
    )


async def pieces(shard, backup: Backup, *, journal: bool):
    """The backup's files in chunks; the snapshot directory is removed afterwards."""
    try:
        async for rel, offset, data, last in snapshot.file_chunks(backup.target):
            yield Piece(rel, offset, data, last)
        # The journal of a copy starts at its lsn, with the epoch history before it.
        epochs = [(e, s) for e, s in shard.journal.epochs if s < backup.lsn]
        yield Piece(
            "journal/epochs.json",
            0,
            json.dumps({"start_lsn": backup.lsn, "epochs": epochs}).encode(),
            True,
        )
        if journal:
            path, pos = f"journal/{segment_name(backup.lsn)}", backup.lsn
            while pos < backup.end_lsn:
                data = await asyncio.to_thread(
                    read_range, shard.journal.directory, pos, backup.end_lsn, 1 << 20
                )
                yield Piece(path, pos - backup.lsn, data, False)
                pos += len(data)
            if pos > backup.lsn:
                yield Piece(path, pos - backup.lsn, b"", True)
    finally:
        await asyncio.to_thread(shutil.rmtree, backup.target, True)


async def upload_base(node, shard, stub) -> archive_pb2.BaseInfo:
    """Send a base backup of ``shard`` to the archive (PutBase); returns its BaseInfo."""
    from mailnode.proto import archive_pb2 as pb

    backup = await take(shard)

    async def chunks():
        async for p in pieces(shard, backup, journal=False):
            yield pb.BaseChunk(
                shard=shard.id,
                lsn=backup.lsn,
                path=p.path,
                offset=p.offset,
                data=p.data,
                end_of_file=p.end_of_file,
                created_ns=backup.created_ns,
                node=node.name,
                epoch=shard.epoch,
            )
        yield pb.BaseChunk(
            shard=shard.id,
            lsn=backup.lsn,
            done=True,
            created_ns=backup.created_ns,
            node=node.name,
            epoch=shard.epoch,
        )

    return await stub.PutBase(chunks(), timeout=3600)

"""Backup and restore, on the operator's side (mailctl): shard directories a node can
start from, built from a node's online backup and/or the remote site's archive.

A restored shard directory holds a journal (and, from a backup, the store at the
backup's lsn); the node replays the journal at start-up, which rebuilds the
Maildirs, the users and the delivery queue: undelivered messages come back queued.
``until`` cuts the journal before the first record written after that time
(point-in-time recovery).
"""

from __future__ import annotations

import json
import os
import shutil

import grpc

from mailnode.durable import fsync_dir
from mailnode.journal.format import BadFrame, iter_frames, list_segments, parse_frame, segment_name
from mailnode.journal.journal import recover
from mailnode.proto import archive_pb2 as pb
from mailnode.proto import archive_pb2_grpc
from mailnode.replication.snapshot import write_chunk
from mailnode.tls import channel_credentials
from mailnode.wire import CHANNEL_OPTIONS


class RestoreError(Exception):
    pass


def archive_channel(
    address: str, tls: tuple[str, str, str] | None, server_name: str
) -> grpc.Channel:
    options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if tls and all(tls):
        options.append(("grpc.ssl_target_name_override", server_name))
        return grpc.secure_channel(address, channel_credentials(*tls), options=options)
    return grpc.insecure_channel(address, options=options)


def archive_call(method, request, timeout: float = 30.0):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise RestoreError(f"archive: {e.code().name.lower()}: {e.details()}") from None


def write_piece(root: str, chunk) -> None:
    """One chunk of a streamed file under ``root``, each file fsync'd at its end."""
    try:
        write_chunk(root, chunk, sync=True)
    except ValueError as e:
        raise RestoreError(str(e)) from None


def write_backup(chunks, dest: str) -> dict:
    """Write a node's Backup stream into ``dest`` (a new shard directory)."""
    if os.path.exists(dest) and os.listdir(dest):
        raise RestoreError(f"{dest}: exists and is not empty")
    os.makedirs(dest, exist_ok=True)
    summary = {}
    try:
        for chunk in chunks:
            if chunk.path:
                write_piece(dest, chunk)
            if chunk.done:
                summary = {
                    "shard": chunk.shard,
                    "lsn": chunk.lsn,
                    "end_lsn": chunk.end_lsn,
                    "created_ns": chunk.created_ns,
                }
    except grpc.RpcError as e:
        raise RestoreError(
            f"backup stream failed: {e.code().name.lower()}: {e.details()}"
        ) from None
    if not summary:
        raise RestoreError("the backup stream ended early")
    with open(os.path.join(dest, "backup.json"), "w") as f:
        json.dump(summary, f)
    for dirpath, _, _ in os.walk(dest):
        fsync_dir(dirpath)
    return summary


def _fetch_base(stub, shard: int, shard_dir: str, until_ns: int) -> str:
    """The archive's newest base backup made before ``until_ns`` into shard_dir ("" if none)."""
    lsn = None
    try:
        for chunk in stub.GetBase(pb.GetBaseRequest(shard=shard, until_ns=until_ns), timeout=3600):
            if chunk.done:
                lsn = chunk.lsn
                break
            write_piece(shard_dir, chunk)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return ""  # no base backup: the journal from its start
        raise RestoreError(
            f"shard {shard}: base backup from the archive: {e.code().name.lower()}: {e.details()}"
        ) from None
    if lsn is None:
        raise RestoreError(f"shard {shard}: the archive's base backup stream ended early")
    for dirpath, _, _ in os.walk(shard_dir):
        fsync_dir(dirpath)
    return f"archive base backup at lsn {lsn}"


def _cut_after(journal: str, until_ns: int) -> None:
    """Cut a backup's journal before its first record written after ``until_ns``."""
    for fr in iter_frames(journal, recover(journal).first_lsn):
        if fr.record.timestamp_ns > until_ns:
            for base, path in list_segments(journal):
                if base >= fr.lsn:
                    os.unlink(path)
                elif base < fr.lsn:
                    with open(path, "r+b") as f:
                        if os.path.getsize(path) > fr.lsn - base:
                            f.truncate(fr.lsn - base)
                            os.fsync(f.fileno())
            fsync_dir(journal)
            return


def restore_shard(
    channel: grpc.Channel, shard: int, shard_dir: str, *, until_ns: int = 0, base: str | None = None
) -> dict:
    """Build ``shard_dir`` from a backup (``base``) and/or the archive, to ``until_ns``."""
    if os.path.exists(os.path.join(shard_dir, "journal")) and os.listdir(
        os.path.join(shard_dir, "journal")
    ):
        raise RestoreError(
            f"{shard_dir}: already has a journal; restore goes to a new node's data directory"
        )
    if base:
        try:
            with open(os.path.join(base, "backup.json")) as f:
                made = json.load(f)
        except (OSError, ValueError):
            raise RestoreError(
                f"{base}: not a backup made by `mailctl backup` (no backup.json)"
            ) from None
        if made.get("shard", shard) != shard:
            raise RestoreError(f"{base} is a backup of shard {made['shard']}, not of shard {shard}")
        if until_ns and made.get("created_ns", 0) > until_ns:
            raise RestoreError(
                f"{base} was made after the point in time asked for; use an older backup"
            )
        shutil.rmtree(shard_dir, ignore_errors=True)
        shutil.copytree(base, shard_dir)
        if until_ns:
            _cut_after(os.path.join(shard_dir, "journal"), until_ns)
    stub = archive_pb2_grpc.ArchiveStub(channel)
    if not base:
        base = _fetch_base(stub, shard, shard_dir, until_ns)
    journal = os.path.join(shard_dir, "journal")
    os.makedirs(journal, exist_ok=True)
    start = recover(journal).end_lsn
    status = {s.shard: s for s in archive_call(stub.Status, pb.StatusRequest()).shards}
    held = status.get(shard)
    if held is None:
        raise RestoreError(f"the archive has nothing of shard {shard}")
    if start < held.first_lsn:
        raise RestoreError(
            f"shard {shard}: the archive starts at lsn {held.first_lsn}, the restore needs lsn "
            f"{start}: give a backup made after that with --base"
        )
    records, last_ns, pos = 0, 0, start
    out = None
    try:
        for chunk in stub.Fetch(pb.FetchRequest(shard=shard, from_lsn=start), timeout=3600):
            if chunk.start_lsn != pos:
                raise RestoreError(
                    f"shard {shard}: the archive sent lsn {chunk.start_lsn}, expected {pos}"
                )
            off, stop = 0, False
            while off < len(chunk.data):
                try:
                    fr = parse_frame(chunk.data, off, chunk.start_lsn)
                except BadFrame as e:
                    raise RestoreError(
                        f"shard {shard}: bad frame from the archive at lsn "
                        f"{chunk.start_lsn + off}: {e.reason}"
                    ) from None
                if until_ns and fr.record.timestamp_ns > until_ns:
                    stop = True
                    break
                records += 1
                last_ns = fr.record.timestamp_ns
                off += fr.size
            if off:
                if out is None:
                    out = open(os.path.join(journal, segment_name(start)), "wb")  # noqa: SIM115 (spans chunks; closed below)
                out.write(chunk.data[:off])
                pos += off
            if stop:
                break
    except grpc.RpcError as e:
        raise RestoreError(
            f"shard {shard}: fetching from the archive: {e.code().name.lower()}: {e.details()}"
        ) from None
    finally:
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()
    fsync_dir(journal)
    return {
        "shard": shard,
        "from_lsn": start,
        "to_lsn": pos,
        "records": records,
        "last_record_ns": last_ns,
        "archive_end_lsn": held.end_lsn,
        "base": base or "",
    }

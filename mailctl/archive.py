"""``mailctl archive status|verify``: the remote site's archive."""

from __future__ import annotations

import time

from mailctl.common import add_command, restoring
from mailctl.output import emit
from mailctl.restore import archive_call
from mailctl.targets import archive_target
from mailnode.proto import archive_pb2, archive_pb2_grpc


def register(sub) -> None:
    ar = sub.add_parser("archive", help="the remote site's archive").add_subparsers(
        dest="action", required=True
    )
    for action, func, text in (
        ("status", cmd_status, "what the archive holds per shard"),
        ("verify", cmd_verify, "re-read every segment"),
    ):
        ap = add_command(ar, action, func, help=text)
        ap.add_argument("--archive", help="host:port (default: the [archive] address of --config)")


def _stub(args):
    return archive_pb2_grpc.ArchiveStub(archive_target(args, args.archive))


@restoring
def cmd_status(args) -> int:
    reply = archive_call(_stub(args).Status, archive_pb2.StatusRequest())
    rows = [
        {
            "shard": s.shard,
            "first_lsn": s.first_lsn,
            "end_lsn": s.end_lsn,
            "epoch": s.epoch,
            "segments": s.segments,
            "bytes": s.bytes,
            "last_node": s.last_node,
            "bases": [
                {
                    "lsn": b.lsn,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b.created_ns / 1e9)),
                    "bytes": b.bytes,
                    "node": b.node,
                }
                for b in s.bases
            ],
        }
        for s in reply.shards
    ]
    if not args.json:
        for r in rows:
            r["bases"] = ", ".join(f"{b['lsn']}@{b['created']}" for b in r["bases"]) or "-"
    columns = ["shard", "first_lsn", "end_lsn", "epoch", "segments", "bytes", "last_node", "bases"]
    emit(rows, columns, args.json)
    return 0


@restoring
def cmd_verify(args) -> int:
    reply = archive_call(_stub(args).Verify, archive_pb2.VerifyRequest(), timeout=3600)
    rows = [
        {
            "shard": r.shard,
            "segments": r.segments,
            "records": r.records,
            "end_lsn": r.end_lsn,
            "result": r.error or "ok",
        }
        for r in reply.results
    ]
    emit(rows, ["shard", "segments", "records", "end_lsn", "result"], args.json)
    return 1 if any(r.error for r in reply.results) else 0

"""What the node-to-node gRPC services (replication, front ends) share."""

from __future__ import annotations

import hmac

import grpc

from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.wire import SECRET_KEY


async def authorize(node, context) -> None:
    """Abort the call unless it carries the cluster secret (when one is configured)."""
    if node.cluster_secret:
        given = dict(context.invocation_metadata()).get(SECRET_KEY, "")
        if not hmac.compare_digest(given.encode(), node.cluster_secret.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad or missing cluster secret")


async def message_record(
    data: bytes, context, kinds: tuple[str, ...] = ("message_accepted",)
) -> JournalRecord:
    """A serialized JournalRecord of one of ``kinds`` (an accepted message), or abort the call."""
    rec = JournalRecord()
    try:
        rec.ParseFromString(data)
    except Exception:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "undecodable record")
    if rec.WhichOneof("body") not in kinds:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"only {', '.join(kinds)} records are accepted here"
        )
    return rec

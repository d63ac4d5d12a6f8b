"""``mailctl shard promote|demote``: a shard's role on one node."""

from __future__ import annotations

from mailctl.common import add_command
from mailctl.output import show_json
from mailctl.targets import admin_for, node_target


def register(sub) -> None:
    sh = sub.add_parser("shard", help="roles of a shard on a node").add_subparsers(
        dest="action", required=True
    )
    pro = add_command(sh, "promote", cmd_promote, help="make the node primary at a new epoch")
    dem = add_command(sh, "demote", cmd_demote, help="stop committing now; follow --to when given")
    for sp in (pro, dem):
        sp.add_argument("--shard", type=int, required=True)
        sp.add_argument("--node", help="which node of a local cluster (default: the first)")
    dem.add_argument("--to", help="gRPC address (host:port) of the primary to follow")


def shard_row(node: str, s) -> dict:
    """One shard of a node's status reply, for tables and JSON."""
    spares = [
        {
            "name": p.name,
            "acked_lsn": p.acked_lsn,
            "lag_bytes": p.lag_bytes,
            "lag_seconds": round(p.lag_seconds, 3),
            "in_sync": p.in_sync,
            "connected": p.connected,
        }
        for p in s.spares
    ]
    return {
        "shard": s.shard,
        "node": node,
        "role": s.role,
        "epoch": s.epoch,
        "primary": s.primary or (node if s.role == "primary" else ""),
        "policy": s.policy,
        "degraded": s.degraded,
        "committed_lsn": s.committed_lsn,
        "applied_lsn": s.applied_lsn,
        "segments": s.segments,
        "journal_bytes": s.journal_bytes,
        "users": s.users,
        "spares": spares,
        "in_sync": ",".join(p["name"] for p in spares if p["in_sync"]),
        "lag": ",".join(f"{p['name']}:{p['lag_bytes']}B" for p in spares),
    }


def _show(args, node: str, reply) -> int:
    if args.json:
        show_json({"sentence": reply.sentence, "shard": shard_row(node, reply.status)}, None)
    else:
        print(reply.sentence)
    return 0


def cmd_promote(args) -> int:
    node = node_target(args, args.node)
    with admin_for(node) as client:
        reply = client.promote(args.shard)
    return _show(args, node.name, reply)


def cmd_demote(args) -> int:
    node = node_target(args, args.node)
    with admin_for(node) as client:
        reply = client.demote(args.shard, args.to or "")
    return _show(args, node.name, reply)

"""``mailctl queue ...``: the postqueue/postsuper of this cluster (any node answers for every shard)."""

from __future__ import annotations

import sys
import time

from mailctl.common import CliError, add_command
from mailctl.output import show_json, table
from mailctl.targets import admin_for, node_target

CHANGES = {  # action: (help, what the reply says was done)
    "hold": ("not tried until released", "held"),
    "release": ("tried again as scheduled", "released"),
    "delete": ("dropped, no DSN", "deleted"),
    "flush": ("tried now", "flushed"),
    "requeue": ("released and tried now", "requeued"),
}
LIST_COLUMNS = [
    "queue_id",
    "shard",
    "state",
    "size",
    "arrival",
    "sender",
    "recipients",
    "attempts",
    "next_attempt",
    "last_reply",
]


def register(sub) -> None:
    qu = sub.add_parser("queue", help="the delivery queue of every shard (postqueue/postsuper)")
    qa = qu.add_subparsers(dest="action", required=True)
    add_command(qa, "list", cmd_list, help="every queued message")
    qs = add_command(qa, "show", cmd_show, help="one message: state, recipients, headers")
    qs.add_argument("ids", nargs=1, metavar="ID")
    for action, (text, _) in CHANGES.items():
        qc = add_command(qa, action, cmd_change, help=text)
        qc.add_argument("ids", nargs="*", metavar="ID", help="queue ids (or SHARD:LSN)")
        qc.add_argument("--all", action="store_true", help="every queued message")


def queue_row(e, now: float) -> dict:
    if e.held:
        state = "held"
    elif e.next_attempt_ns and e.next_attempt_ns / 1e9 > now:
        state = "deferred"
    else:
        state = "active"
    return {
        "queue_id": e.queue_id,
        "shard": e.shard,
        "lsn": e.lsn,
        "state": state,
        "size": e.size,
        "arrival": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.arrival_ns / 1e9)),
        "age_seconds": round(now - e.arrival_ns / 1e9, 1),
        "sender": e.sender or "<>",
        "recipients": list(e.recipients),
        "attempts": e.attempts,
        "next_attempt": (
            time.strftime("%H:%M:%S", time.gmtime(e.next_attempt_ns / 1e9))
            if state == "deferred"
            else ""
        ),
        "last_reply": dict(e.last_reply),
    }


def _ask(args, ids: list[str], every: bool = False):
    """The node's reply and its entries as rows; the shards it could not ask are warned of."""
    with admin_for(node_target(args)) as client:
        reply = client.queue(args.action, ids, every)
    now = time.time()
    for err in reply.errors:
        print(f"mailctl: warning: {err}", file=sys.stderr)
    return reply, [queue_row(e, now) for e in reply.entries]


def cmd_list(args) -> int:
    reply, rows = _ask(args, [])
    if args.json:
        show_json(rows)
    else:
        for r in rows:
            r["recipients"] = ",".join(r["recipients"])
            r["last_reply"] = "; ".join(r["last_reply"].values())[:60]
        print(table(rows, LIST_COLUMNS))
        print(f"{len(rows)} queued message(s)")
    return 1 if reply.errors else 0


def cmd_show(args) -> int:
    reply, rows = _ask(args, args.ids)
    if not rows:
        raise CliError(f"no queued message {' '.join(args.ids)}")
    headers = reply.headers.decode("utf-8", "replace")
    if args.json:
        show_json(dict(rows[0], headers=headers))
    else:
        for key, value in rows[0].items():
            print(f"{key}: {value}")
        print()
        print(headers.replace("\r\n", "\n"), end="")
    return 1 if reply.errors else 0


def cmd_change(args) -> int:
    """hold, release, delete, flush, requeue: of the ids named, or of --all."""
    if not args.ids and not args.all:
        raise CliError(f"queue {args.action}: name queue ids, or --all")
    reply, rows = _ask(args, args.ids, args.all)
    if args.json:
        show_json({"action": args.action, "messages": rows})
    else:
        print(
            f"{CHANGES[args.action][1]} {len(rows)} message(s)"
            + (": " + " ".join(r["queue_id"] for r in rows) if rows else "")
        )
    found = {r["queue_id"] for r in rows} | {f"{r['shard']}:{r['lsn']}" for r in rows}
    missing = [i for i in args.ids if i not in found]
    if missing and not args.all:
        print(f"mailctl: not queued: {' '.join(missing)}", file=sys.stderr)
        return 1
    return 1 if reply.errors else 0

"""``mailctl mailbox ADDRESS ...`` and ``mailctl store verify|rebuild``: what the shard
index holds for a mailbox (folders, UIDs, flags), changed as journal records at the
mailbox's primary; and the index itself, checked or built again."""

from __future__ import annotations

import sys

from mailctl.common import CliError, add_command
from mailctl.output import emit, show_json
from mailctl.targets import admin_for, node_target, primary_node, zk_target
from mailnode.proto import admin_pb2

FOLDER_COLUMNS = ["name", "messages", "uidvalidity", "uidnext", "highest_modseq", "subscribed"]
MESSAGE_COLUMNS = ["uid", "size", "flags", "modseq", "name"]


def register(sub) -> None:
    mb = sub.add_parser("mailbox", help="folders, messages and flags of a mailbox")
    mb.add_argument("address")
    acts = mb.add_subparsers(dest="action", required=True)
    add_command(acts, "folders", cmd_mailbox)
    add_command(acts, "messages", cmd_mailbox).add_argument("folder", nargs="?", default="INBOX")
    for name in ("create", "delete", "subscribe", "unsubscribe"):
        add_command(acts, name, cmd_mailbox).add_argument("folder")
    ren = add_command(acts, "rename", cmd_mailbox)
    ren.add_argument("folder")
    ren.add_argument("new_name")
    fl = add_command(acts, "flags", cmd_mailbox, help="add, remove or replace flags of UIDs")
    fl.add_argument("folder")
    fl.add_argument("mode", choices=["add", "remove", "replace"])
    fl.add_argument("uids", help="UIDs: 1,3,7-9")
    fl.add_argument("flags", nargs="*", help="e.g. '\\Seen' '\\Flagged' or a keyword")
    for name in ("copy", "move"):
        cp = add_command(acts, name, cmd_mailbox)
        cp.add_argument("folder")
        cp.add_argument("uids")
        cp.add_argument("target")
    ex = add_command(acts, "expunge", cmd_mailbox, help="remove messages by UID")
    ex.add_argument("folder")
    ex.add_argument("uids")

    st = sub.add_parser("store", help="the shard index").add_subparsers(
        dest="action", required=True
    )
    for name, what in (
        ("verify", "compare the index with the Maildir files"),
        (
            "rebuild",
            "drop the index and the Maildirs and build them from the journal "
            "(the shard answers 451 meanwhile)",
        ),
    ):
        sp = add_command(st, name, cmd_store, help=what)
        sp.add_argument("--shard", type=int, required=True)
        sp.add_argument("--node", help="which node of a local cluster (default: the first)")


def parse_uids(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise CliError(f"not a UID set: {text!r} (say 1,3,7-9)")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def cmd_mailbox(args) -> int:
    request = admin_pb2.MailboxRequest(
        address=args.address,
        action=args.action,
        folder=getattr(args, "folder", ""),
        new_name=getattr(args, "new_name", ""),
        uids=parse_uids(args.uids) if getattr(args, "uids", None) else [],
        flags=getattr(args, "flags", None) or [],
        mode=getattr(args, "mode", ""),
        target=getattr(args, "target", ""),
    )
    target = zk_target(args)
    node = primary_node(target, args.address) if target else None
    with admin_for(node_target(args, node)) as client:
        r = client.call("Mailbox", request)
    folders = [{c: getattr(f, c) for c in FOLDER_COLUMNS} for f in r.folders]
    messages = [
        {
            "uid": m.uid,
            "size": m.size,
            "flags": list(m.flags),
            "modseq": m.modseq,
            "name": m.name,
        }
        for m in r.messages
    ]
    if args.json:
        show_json({"lsn": r.lsn, "folders": folders, "messages": messages})
    elif args.action == "folders" or (not messages and args.action != "messages"):
        emit(folders, FOLDER_COLUMNS, False)
    else:
        emit([{**m, "flags": " ".join(m["flags"])} for m in messages], MESSAGE_COLUMNS, False)
    return 0


def cmd_store(args) -> int:
    with admin_for(node_target(args, args.node)) as client:
        r = client.call(
            "Store", admin_pb2.StoreRequest(shard=args.shard, action=args.action), timeout=3600
        )
    if args.action == "rebuild":
        print(f"shard {args.shard}: rebuilt from the journal ({r.replayed} records)")
        return 0
    for p in r.problems:
        print(p)
    verdict = "ok" if r.ok else f"{len(r.problems)}+ problems"
    print(
        f"shard {args.shard}: {r.mailboxes} mailboxes, {r.messages} messages: {verdict}",
        file=sys.stdout,
    )
    return 0 if r.ok else 1

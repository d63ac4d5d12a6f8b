"""``mailctl journal inspect|verify|salvage``: offline journal tools."""

from __future__ import annotations

import os

from mailctl.common import CliError, add_command
from mailctl.output import emit, show_json
from mailctl.targets import node_target
from mailnode.journal import tools as jtools


def register(sub) -> None:
    jr = sub.add_parser("journal", help="offline journal tools").add_subparsers(
        dest="action", required=True
    )
    for action, func in (
        ("inspect", cmd_inspect),
        ("verify", cmd_verify),
        ("salvage", cmd_salvage),
    ):
        j = add_command(jr, action, func)
        j.add_argument(
            "path", nargs="?", help="a journal directory (else --dir/--config with --shard)"
        )
        j.add_argument("--shard", type=int)


def journal_dir(args) -> str:
    if args.path:
        return args.path
    if args.shard is None:
        raise CliError("name the journal: a PATH, or --dir/--config with --shard N")
    return os.path.join(node_target(args).data_dir, "shards", str(args.shard), "journal")


def cmd_inspect(args) -> int:
    rows = jtools.as_dicts(jtools.inspect(journal_dir(args)))
    emit(rows, ["segment", "first_lsn", "bytes", "records", "last_epoch", "status"], args.json)
    return 0


def cmd_verify(args) -> int:
    path = journal_dir(args)
    bad = jtools.as_dicts(jtools.verify(path))
    if args.json:
        show_json({"journal": path, "ok": not bad, "problems": bad})
    elif bad:
        for b in bad:
            print(f"{os.path.join(path, b['segment'])}: {b['status']}")
        print(
            f"journal {path}: {len(bad)} problem segment(s); `mailctl journal salvage {path}` "
            "recovers what is readable"
        )
    else:
        print(f"journal {path}: ok")
    return 1 if bad else 0


def cmd_salvage(args) -> int:
    path = journal_dir(args)
    repairs = jtools.as_dicts(jtools.salvage(path))
    if args.json:
        show_json({"journal": path, "repairs": repairs})
    elif repairs:
        for r in repairs:
            print(
                f"{os.path.join(path, r['segment'])} at offset {r['offset']}: {r['action']}, "
                f"{r['bytes']} bytes lost"
            )
    else:
        print(f"journal {path}: nothing to salvage")
    return 0

"""``mailctl backup`` (online, of one shard) and ``mailctl restore`` (a stopped node's
shards, from the archive and/or a backup)."""

from __future__ import annotations

import os
import time

from mailctl.common import CliError, add_command, parse_at, restoring
from mailctl.output import show_json
from mailctl.restore import restore_shard, write_backup
from mailctl.targets import admin_for, archive_target, node_target
from mailnode import config as configmod
from mailnode.node import cluster_layout


def register(sub) -> None:
    bk = add_command(sub, "backup", cmd_backup, help="online backup of a shard into DEST")
    bk.add_argument("--shard", type=int, required=True)
    bk.add_argument("--node", help="which node of a local cluster (default: the first)")
    bk.add_argument(
        "dest", nargs="?", help="a new directory: the shard directory a node can start from"
    )
    bk.add_argument(
        "--to-archive", action="store_true", help="upload a base backup to the archive instead"
    )
    rs = add_command(
        sub, "restore", cmd_restore, help="rebuild shards of a stopped node from the archive"
    )
    rs.add_argument("--shard", default="all", help="a shard number, or all (default)")
    rs.add_argument(
        "--until", help="point in time: HH:MM, an ISO date-time or Unix seconds (default: the end)"
    )
    rs.add_argument(
        "--base", help="a backup (mailctl backup) to start from; the archive adds what follows"
    )
    rs.add_argument(
        "--archive", help="the archive's host:port (default: the node's [archive] address)"
    )


@restoring
def cmd_backup(args) -> int:
    if args.to_archive == bool(args.dest):
        raise CliError(
            "backup: give DEST (a directory here) or --to-archive (a base backup at the archive)"
        )
    node = node_target(args, args.node)
    if args.to_archive:
        with admin_for(node) as client:
            r = client.base_backup(args.shard)
        if args.json:
            show_json(
                {
                    "shard": args.shard,
                    "node": node.name,
                    "lsn": r.lsn,
                    "bytes": r.bytes,
                    "files": r.files,
                },
                None,
            )
        else:
            print(
                f"base backup of shard {args.shard} from {node.name} at lsn {r.lsn} is at the archive "
                f"({r.files} files, {r.bytes} bytes)"
            )
        return 0
    with admin_for(node) as client:
        summary = write_backup(client.backup(args.shard), args.dest)
    summary = {"shard": args.shard, "node": node.name, "dest": args.dest, **summary}
    if args.json:
        show_json(summary, None)
    else:
        print(
            f"backup of shard {args.shard} from {node.name}: store at lsn {summary['lsn']}, journal to "
            f"lsn {summary['end_lsn']}, in {args.dest}"
        )
    return 0


@restoring
def cmd_restore(args) -> int:
    if not args.config:
        raise CliError("restore: --config of the (stopped, new) node to restore onto")
    cfg = configmod.load(args.config)
    shards = cluster_layout(cfg.node.data_dir, cfg.node.shards)
    if args.base and args.shard == "all":
        raise CliError("restore --base: say which shard the backup is of (--shard N)")
    wanted = range(shards) if args.shard == "all" else [int(args.shard)]
    until_ns = int(parse_at(args.until, past=True, option="--until") * 1e9) if args.until else 0
    channel = archive_target(args, args.archive)
    results = []
    for n in wanted:
        if not 0 <= n < shards:
            raise CliError(f"no shard {n}: the node has {shards}")
        results.append(
            restore_shard(
                channel,
                n,
                os.path.join(cfg.node.data_dir, "shards", str(n)),
                until_ns=until_ns,
                base=args.base,
            )
        )
    if args.json:
        show_json(results)
        return 0
    for r in results:
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["last_record_ns"] / 1e9))
            if r["records"]
            else "-"
        )
        print(
            f"shard {r['shard']}: journal lsn {r['from_lsn']}..{r['to_lsn']} ({r['records']} records from the "
            f"archive, last written {when} UTC; the archive ends at {r['archive_end_lsn']})"
            + (f", on the backup {r['base']}" if r["base"] else "")
        )
    print(
        f"start the node ({cfg.node.name}): it replays the journal into mailboxes and the delivery queue"
    )
    return 0

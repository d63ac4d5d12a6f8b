"""``mailctl local up|down|status``: the whole cluster on loopback (devtools.localcluster)."""

from __future__ import annotations

import sys

from devtools import localcluster
from mailctl.cluster import cluster_rows
from mailctl.common import add_command
from mailctl.output import show_json, table
from mailctl.targets import zookeeper


def register(sub) -> None:
    loc = sub.add_parser("local", help="the cluster on loopback").add_subparsers(
        dest="action", required=True
    )
    lup = add_command(loc, "up", cmd_up, help="start everything, return when ready")
    lup.add_argument(
        "--nodes", type=int, default=3, help="1: a standalone node; more: a cluster with ZooKeeper"
    )
    lup.add_argument("--shards", type=int, default=2)
    lup.add_argument("--domain", default="example.test")
    lup.add_argument(
        "--base-address", help="loopback /24 prefix to use, e.g. 127.0.5 (default: from DIR)"
    )
    add_command(loc, "down", cmd_down, help="stop everything started there")
    add_command(loc, "status", cmd_status, help="what runs, with liveness")


def _needs_dir(command):
    """``mailctl local ...`` without --dir: a usage error (exit 2), as argparse would give."""

    def run(args) -> int:
        if not args.dir:
            print("mailctl: local needs --dir DIR", file=sys.stderr)
            return 2
        return command(args)

    return run


@_needs_dir
def cmd_up(args) -> int:
    state = localcluster.up(
        args.dir,
        nodes=args.nodes,
        shards=args.shards,
        domain=args.domain,
        base_address=args.base_address,
    )
    if args.json:
        show_json(localcluster.public_map(state), None)
        return 0
    rows = [{k: n.get(k, "") for k in localcluster.PUBLIC_KEYS} for n in state["nodes"]]
    print(table(rows, [k for k in localcluster.PUBLIC_KEYS if any(r[k] for r in rows)]))
    if "zookeeper" in state:
        print(
            f"\nZooKeeper {state['zookeeper']}; coordinators "
            + ", ".join(f"{c['name']} (pid {c['pid']})" for c in state["coordinators"])
        )
        with zookeeper((state["zookeeper"], state["root"])) as store:
            rows = cluster_rows(store)
        print(table(rows, ["shard", "node", "role", "alive", "epoch", "in_sync", "smtp"]))
        print("\nEach shard is served by its primary's SMTP and POP3 listeners (see the table);")
    else:
        print(f"\nmail for @{state['domain']} goes to SMTP {state['nodes'][0]['smtp']};")
    print(f"add a mailbox with: mailctl --dir {args.dir} user add someone@{state['domain']}")
    return 0


@_needs_dir
def cmd_down(args) -> int:
    stopped = localcluster.down(args.dir)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


@_needs_dir
def cmd_status(args) -> int:
    state = localcluster.status(args.dir)
    if args.json:
        show_json(localcluster.public_map(state), None)
        return 0 if all(n["alive"] for n in state["nodes"]) else 1
    rows = [
        {
            "name": n["name"],
            "pid": n.get("pid", ""),
            "alive": n["alive"],
            "health": (n["health"] or {}).get("status", "down"),
            "smtp": n["smtp"],
            "pop3": n["pop3"],
            "http": n["http"],
        }
        for n in state["nodes"]
    ]
    if "archive" in state:
        a = state["archive"]
        rows.append(
            {
                "name": a["name"],
                "pid": a.get("pid", ""),
                "alive": a["alive"],
                "smtp": a["grpc"],
                "http": a["http"],
            }
        )
    print(table(rows, ["name", "pid", "alive", "health", "smtp", "pop3", "http"]))
    return 0 if all(n["alive"] for n in state["nodes"]) else 1

"""The cluster as a whole: ``status``, ``init``, ``pause``/``resume``, ``history``,
``switchover`` (planned) and ``failover`` (forced)."""

from __future__ import annotations

import time

from coordinator.decide import forced_failover
from mailctl.common import CliError, add_command, parse_at
from mailctl.output import emit, show_json, table
from mailctl.shard import shard_row
from mailctl.targets import admin_for, node_targets, zk_target, zookeeper


def register(sub) -> None:
    add_command(sub, "status", cmd_status, help="shards of the node(s)")
    sw = add_command(
        sub, "switchover", cmd_switchover, help="planned: drain, catch up, swap (zero loss)"
    )
    sw.add_argument("--shard", type=int, required=True)
    sw.add_argument(
        "--to", help="the spare to promote (default: the in-sync spare with most journal)"
    )
    sw.add_argument("--at", help="when: HH:MM, an ISO date-time or Unix seconds (default: now)")
    fo = add_command(
        sub, "failover", cmd_failover, help="disaster: make NODE primary now (may lose mail)"
    )
    fo.add_argument("--shard", type=int, required=True)
    fo.add_argument("--to", required=True)
    fo.add_argument("--force", action="store_true", help="do it, having read what may be lost")
    ini = add_command(sub, "init", cmd_init, help="create the cluster's data in ZooKeeper")
    ini.add_argument("--shards", type=int, required=True)
    ini.add_argument("--domain", required=True, help="hosted domain(s), comma-separated")
    ini.add_argument("--spares", type=int, default=1, help="hot spares per shard")
    ini.add_argument(
        "--failover-min-interval",
        type=float,
        default=30.0,
        help="seconds between two automatic failovers of one shard (flap damping)",
    )
    pause = add_command(sub, "pause", cmd_pause, help="no automatic failover until resume")
    pause.set_defaults(paused=True)
    add_command(sub, "resume", cmd_pause).set_defaults(paused=False)
    hist = add_command(sub, "history", cmd_history, help="the coordinators' decisions")
    hist.add_argument("--limit", type=int, default=50)


def _cluster(args, missing: str) -> tuple[str, str]:
    target = zk_target(args)
    if target is None:
        raise CliError(missing)
    return target


NEEDS_ZK = "this needs the cluster's ZooKeeper: --zk HOST:PORT,... or --dir of a local cluster"


def cluster_rows(store) -> list[dict]:
    """Every shard's primary and spares, as ZooKeeper knows them."""
    cluster = store.snapshot()
    rows = []
    for n, info in sorted(cluster.shards.items()):
        primary = cluster.members.get(info.primary)
        plsn = primary.shard(n).get("lsn", 0) if primary else 0
        for name in (info.primary, *info.spares):
            m = cluster.members.get(name)
            lsn = m.shard(n).get("lsn", 0) if m else None
            rows.append(
                {
                    "shard": n,
                    "node": name,
                    "role": "primary" if name == info.primary else "spare",
                    "alive": m is not None,
                    "epoch": info.epoch,
                    "lsn": lsn if lsn is not None else "",
                    "lag_bytes": ""
                    if lsn is None or not primary or name == info.primary
                    else max(0, plsn - lsn),
                    "in_sync": "" if name == info.primary else name in info.in_sync,
                    "grpc": m.grpc if m else "",
                    "smtp": m.data.get("smtp", "") if m else "",
                }
            )
    return rows


CLUSTER_COLUMNS = ["shard", "node", "role", "alive", "epoch", "lsn", "lag_bytes", "in_sync", "smtp"]
NODE_COLUMNS = [
    "shard",
    "node",
    "role",
    "epoch",
    "committed_lsn",
    "applied_lsn",
    "in_sync",
    "lag",
    "degraded",
    "users",
]


def cmd_status(args) -> int:
    """In a cluster, what ZooKeeper knows; standalone, what each node's admin service says."""
    target = zk_target(args)
    if target is not None:
        with zookeeper(target) as store:
            rows = cluster_rows(store)
            paused = store.snapshot().paused
        if args.json:
            show_json({"paused": paused, "members": rows})
        else:
            print(table(rows, CLUSTER_COLUMNS))
            if paused:
                print("automatic failover is PAUSED (mailctl resume)")
        return 0
    rows = []
    for node in node_targets(args):
        with admin_for(node) as client:
            st = client.status()
        rows.extend(shard_row(st.node, s) for s in st.shards)
    rows.sort(key=lambda r: (r["shard"], r["role"] != "primary", r["node"]))
    emit({"shards": rows} if args.json else rows, NODE_COLUMNS, args.json)
    return 0


def cmd_init(args) -> int:
    target = _cluster(args, NEEDS_ZK)
    domains = [d.strip().lower() for d in args.domain.split(",")]
    with zookeeper(target) as store:
        made = store.init(args.shards, domains, args.spares, args.failover_min_interval)
        print(
            f"cluster {target[1]} {'created' if made else 'exists already (unchanged)'}: "
            f"{store.config()['shards']} shards"
        )
    return 0


def cmd_pause(args) -> int:
    """pause and resume."""
    done = "paused" if args.paused else "resumed"
    with zookeeper(_cluster(args, NEEDS_ZK)) as store:
        store.set_paused(args.paused)
        store.append_history(f"automatic failover {done} by operator", kind=args.command)
    print(f"automatic failover {done}")
    return 0


def cmd_history(args) -> int:
    with zookeeper(_cluster(args, NEEDS_ZK)) as store:
        history = store.history(args.limit)
    rows = [
        {
            "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["time"])),
            "shard": h.get("shard", ""),
            "coordinator": h.get("coordinator", "operator"),
            "decision": h["sentence"],
        }
        for h in history
    ]
    emit(rows, ["time", "shard", "decision"], args.json)
    return 0


def cmd_switchover(args) -> int:
    """Ask the coordinators for a switchover; follow the history until it is done or refused."""
    target = _cluster(
        args, "switchover needs the cluster's ZooKeeper: --zk or --dir of a local cluster"
    )
    with zookeeper(target) as store:
        seen = len(store.history(1000))
        at = parse_at(args.at)
        store.request_switchover(
            {"shard": args.shard, "to": args.to or "", "at": at, "requested": time.time()}
        )
        print(
            f"switchover of shard {args.shard} requested"
            + (f" to {args.to}" if args.to else "")
            + (f" at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))}" if at else ""),
            flush=True,
        )
        deadline = max(time.time(), at) + 60
        while time.time() < deadline:
            for h in store.history(1000)[seen:]:
                seen += 1
                if h.get("shard") != args.shard:
                    continue
                print(
                    f"  {time.strftime('%H:%M:%S', time.localtime(h['time']))} {h['sentence']}",
                    flush=True,
                )
                if h.get("kind") == "switchover-done":
                    return 0
                if h.get("kind") == "switchover-refused":
                    return 1
            time.sleep(0.2)
    raise CliError("no outcome within 60s; see `mailctl history` (is a coordinator running?)")


def cmd_failover(args) -> int:
    """Show what forcing ``--to`` as primary may lose; with --force, write it (compare-and-set)."""
    target = _cluster(
        args, "failover needs the cluster's ZooKeeper: --zk or --dir of a local cluster"
    )
    with zookeeper(target) as store:
        d = forced_failover(store.snapshot(), args.shard, args.to, time.time())
        if d.changes is None:
            raise CliError(d.sentence)
        print(d.warning)
        if not args.force:
            print("not done: add --force to fail over anyway")
            return 2
        if not store.update_shard(d.info, **d.changes):
            raise CliError("the shard changed while deciding; run the command again")
        store.append_history(d.sentence, shard=d.shard, kind=d.kind)
    print(d.sentence)
    return 0

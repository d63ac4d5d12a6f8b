"""``mailctl``: the operator's command line. Tables for people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time

from coordinator.model import CoordinationError
from mailnode import config as configmod
from mailnode import localcluster
from mailnode.admin.client import AdminClient, AdminError
from mailnode.archive.restore import RestoreError
from mailnode.journal import JournalError
from mailnode.journal import tools as jtools


class CliError(Exception):
    pass


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    line = "+" + "+".join("-" * (widths[c] + 2) for c in columns) + "+"
    out = [line, "| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) + " |")
    out.append(line)
    return "\n".join(out)


def emit(args, rows: list[dict] | dict, columns: list[str] | None = None) -> None:
    if args.json or columns is None:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows, columns))


# -- where the node is ------------------------------------------------------------------
def node_targets(args) -> list[tuple[str, str, str]]:
    """(name, grpc address, data_dir) of the nodes named by --dir or --config."""
    if args.config:
        cfg = configmod.load(args.config)
        return [(cfg.node.name, cfg.grpc.listen, cfg.node.data_dir)]
    directory = args.dir or os.environ.get("MAILCLUSTER_DIR")
    if not directory:
        raise CliError("say which cluster: --dir DIR (a local cluster) or --config node.toml")
    state = localcluster.load_state(directory)
    if state is None:
        raise CliError(
            f"{directory}: no local cluster here (no local.json); run `mailctl local up --dir {directory}`"
        )
    return [(n["name"], n["grpc"], n["data_dir"]) for n in state["nodes"]]


def admin(args) -> AdminClient:
    targets = node_targets(args)
    if getattr(args, "node", None):
        targets = [t for t in targets if t[0] == args.node]
        if not targets:
            raise CliError(f"no node named {args.node}")
    name, address, data_dir = targets[0]
    args.node_name = name
    return admin_for(address, data_dir)


def admin_for(address: str, data_dir: str) -> AdminClient:
    token_path = os.path.join(data_dir, "admin.token")
    try:
        with open(token_path) as f:
            token = f.read().strip()
    except OSError as e:
        raise CliError(f"cannot read the admin token {token_path}: {e.strerror}") from None
    return AdminClient(address, token)


def read_password(args) -> str:
    if args.password is not None:
        return args.password
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    pw = getpass.getpass("password: ")
    if pw != getpass.getpass("again: "):
        raise CliError("passwords differ")
    return pw


# -- commands ---------------------------------------------------------------------------
def cmd_user(args) -> None:
    target = zk_target(args)
    if target is not None and args.action != "list":
        args.node = primary_node_for(target, args.address)
    with admin(args) as client:
        if args.action == "add":
            r = client.add_user(args.address, read_password(args))
            print(f"added {r.address} (shard {r.shard})")
        elif args.action == "passwd":
            r = client.set_password(args.address, read_password(args))
            print(f"password of {r.address} changed")
        elif args.action == "del":
            r = client.delete_user(args.address)
            print(f"deleted {r.address}; its Maildir is kept on disk")
        else:
            rows = [{"address": u.address, "shard": u.shard} for u in client.list_users()]
            emit(args, rows, ["address", "shard"])


def shard_row(node: str, s) -> dict:
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


def zk_target(args) -> tuple[str, str] | None:
    """(ensemble, root) from --zk, or from the local cluster's map, or None (standalone)."""
    if getattr(args, "zk", None):
        return args.zk, args.root
    directory = args.dir or os.environ.get("MAILCLUSTER_DIR")
    state = localcluster.load_state(directory) if directory else None
    if state and state.get("zookeeper"):
        return state["zookeeper"], state.get("root", "/mailcluster")
    return None


class ZkSession:
    def __init__(self, target: tuple[str, str]):
        from kazoo.client import KazooClient

        from coordinator.model import Store

        self.zk = KazooClient(hosts=target[0], timeout=10)
        try:
            self.zk.start(15)
        except Exception:
            raise CliError(f"cannot reach ZooKeeper at {target[0]}") from None
        self.store = Store(self.zk, target[1])

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        self.zk.stop()
        self.zk.close()


def cluster_rows(store) -> list[dict]:
    cluster = store.snapshot()
    rows = []
    for n, info in sorted(cluster.shards.items()):
        primary = cluster.members.get(info.primary)
        plsn = primary.shard(n).get("lsn", 0) if primary else 0
        for name in [info.primary] + list(info.spares):
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


def cmd_status(args) -> None:
    target = zk_target(args)
    if target is not None:
        with ZkSession(target) as store:
            rows = cluster_rows(store)
            paused = store.snapshot().paused
        if args.json:
            print(json.dumps({"paused": paused, "members": rows}, indent=2))
        else:
            print(
                table(
                    rows,
                    [
                        "shard",
                        "node",
                        "role",
                        "alive",
                        "epoch",
                        "lsn",
                        "lag_bytes",
                        "in_sync",
                        "smtp",
                    ],
                )
            )
            if paused:
                print("automatic failover is PAUSED (mailctl resume)")
        return
    rows = []
    for name, address, data_dir in node_targets(args):
        with admin_for(address, data_dir) as client:
            st = client.status()
        rows.extend(shard_row(st.node, s) for s in st.shards)
    rows.sort(key=lambda r: (r["shard"], r["role"] != "primary", r["node"]))
    emit(
        args,
        rows if not args.json else {"shards": rows},
        [
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
        ],
    )


def primary_node_for(target, address: str) -> str:
    """The node that is primary of the address's shard: user changes are its journal records."""
    from mailnode.users import shard_of

    with ZkSession(target) as store:
        cluster = store.snapshot()
    info = cluster.shards[shard_of(address, cluster.config["shards"])]
    if info.primary not in cluster.members:
        raise CliError(
            f"shard {info.id} of {address} has no live primary right now; try again shortly"
        )
    return info.primary


def cmd_cluster(args) -> None:
    target = zk_target(args)
    if target is None:
        raise CliError(
            "this needs the cluster's ZooKeeper: --zk HOST:PORT,... or --dir of a local cluster"
        )
    with ZkSession(target) as store:
        if args.command == "init":
            domains = [d.strip().lower() for d in args.domain.split(",")]
            made = store.init(args.shards, domains, args.spares, args.failover_min_interval)
            print(
                f"cluster {target[1]} {'created' if made else 'exists already (unchanged)'}: "
                f"{store.config()['shards']} shards"
            )
        elif args.command in ("pause", "resume"):
            store.set_paused(args.command == "pause")
            store.append_history(
                f"automatic failover {'paused' if args.command == 'pause' else 'resumed'} "
                "by operator",
                kind=args.command,
            )
            print(f"automatic failover {'paused' if args.command == 'pause' else 'resumed'}")
        else:
            rows = [
                {
                    "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["time"])),
                    "shard": h.get("shard", ""),
                    "coordinator": h.get("coordinator", "operator"),
                    "decision": h["sentence"],
                }
                for h in store.history(args.limit)
            ]
            emit(args, rows, ["time", "shard", "decision"])


def parse_at(text: str | None, past: bool = False, option: str = "--at") -> float:
    """--at: "HH:MM" (the next such time; with past, the last), an ISO date-time, or Unix seconds."""
    import datetime

    if not text:
        return 0.0
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        if len(text) <= 5 and ":" in text:
            hh, mm = map(int, text.split(":"))
            now = datetime.datetime.now()
            at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
            if past:
                return (at if at <= now else at - datetime.timedelta(days=1)).timestamp()
            return (at if at > now else at + datetime.timedelta(days=1)).timestamp()
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CliError(
            f"{option} {text!r}: expected HH:MM, an ISO date-time or Unix seconds"
        ) from None


def cmd_switchover(args) -> int:
    target = zk_target(args)
    if target is None:
        raise CliError("switchover needs the cluster's ZooKeeper: --zk or --dir of a local cluster")
    with ZkSession(target) as store:
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
    target = zk_target(args)
    if target is None:
        raise CliError("failover needs the cluster's ZooKeeper: --zk or --dir of a local cluster")
    with ZkSession(target) as store:
        cluster = store.snapshot()
        info = cluster.shards[args.shard]
        if args.to not in cluster.members:
            raise CliError(f"{args.to} is not an alive node of the cluster")
        if args.to == info.primary:
            raise CliError(f"{args.to} is already primary of shard {args.shard}")
        plsn = max(
            (
                m.shard(args.shard).get("lsn", 0)
                for m in cluster.members.values()
                if m.name == info.primary
            ),
            default=None,
        )
        have = cluster.members[args.to].shard(args.shard).get("lsn", 0)
        risk = (
            f"{args.to} holds shard {args.shard}'s journal up to lsn {have}; "
            + (
                f"the primary {info.primary} last reported lsn {plsn}: up to {max(0, plsn - have)} bytes of "
                "acknowledged mail may be lost"
                if plsn is not None
                else f"the primary {info.primary} is gone, so what it had beyond that is unknown"
            )
            + ("" if args.to in info.in_sync else f"; {args.to} is NOT in the in-sync set")
            + ". The old primary salvages what it accepted alone if it comes back."
        )
        print(risk)
        if not args.force:
            print("not done: add --force to fail over anyway")
            return 2
        spares = [s for s in info.spares if s != args.to] + ([info.primary] if info.primary else [])
        if not store.update_shard(
            info,
            primary=args.to,
            spares=spares,
            epoch=info.epoch + 1,
            in_sync=[],
            last_failover=time.time(),
            draining=None,
            switchover_to=None,
        ):
            raise CliError("the shard changed while deciding; run the command again")
        sentence = f"forced failover of shard {args.shard} to {args.to} at epoch {info.epoch + 1} by operator"
        store.append_history(sentence, shard=args.shard, kind="forced-failover")
        print(sentence)
    return 0


def cmd_shard(args) -> None:
    with admin(args) as client:
        if args.action == "promote":
            reply = client.promote(args.shard)
        else:
            reply = client.demote(args.shard, args.to or "")
    if args.json:
        print(
            json.dumps(
                {"sentence": reply.sentence, "shard": shard_row(args.node_name, reply.status)}
            )
        )
    else:
        print(reply.sentence)


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


def cmd_queue(args) -> int:
    """The postqueue/postsuper of this cluster: any node answers for every shard."""
    if args.action not in ("list", "show") and not args.ids and not args.all:
        raise CliError(f"queue {args.action}: name queue ids, or --all")
    with admin(args) as client:
        reply = client.queue(
            args.action, getattr(args, "ids", []) or [], getattr(args, "all", False)
        )
    now = time.time()
    rows = [queue_row(e, now) for e in reply.entries]
    for err in reply.errors:
        print(f"mailctl: warning: {err}", file=sys.stderr)
    if args.action == "list":
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                r["recipients"] = ",".join(r["recipients"])
                r["last_reply"] = "; ".join(r["last_reply"].values())[:60]
            print(
                table(
                    rows,
                    [
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
                    ],
                )
            )
            print(f"{len(rows)} queued message(s)")
    elif args.action == "show":
        if not rows:
            raise CliError(f"no queued message {' '.join(args.ids)}")
        if args.json:
            print(
                json.dumps(
                    dict(rows[0], headers=reply.headers.decode("utf-8", "replace")), indent=2
                )
            )
        else:
            for key, value in rows[0].items():
                print(f"{key}: {value}")
            print()
            print(reply.headers.decode("utf-8", "replace").replace("\r\n", "\n"), end="")
    else:
        if args.json:
            print(json.dumps({"action": args.action, "messages": rows}, indent=2))
        else:
            done = {
                "hold": "held",
                "release": "released",
                "delete": "deleted",
                "flush": "flushed",
                "requeue": "requeued",
            }[args.action]
            print(
                f"{done} {len(rows)} message(s)"
                + (": " + " ".join(r["queue_id"] for r in rows) if rows else "")
            )
        found = {r["queue_id"] for r in rows} | {f"{r['shard']}:{r['lsn']}" for r in rows}
        missing = [i for i in args.ids if i not in found]
        if missing and not args.all:
            print(f"mailctl: not queued: {' '.join(missing)}", file=sys.stderr)
            return 1
    return 1 if reply.errors else 0


def cmd_backup(args) -> int:
    from mailnode.archive.restore import write_backup

    if args.to_archive == bool(args.dest):
        raise CliError(
            "backup: give DEST (a directory here) or --to-archive (a base backup at the archive)"
        )
    if args.to_archive:
        with admin(args) as client:
            r = client.base_backup(args.shard)
        if args.json:
            print(
                json.dumps(
                    {
                        "shard": args.shard,
                        "node": args.node_name,
                        "lsn": r.lsn,
                        "bytes": r.bytes,
                        "files": r.files,
                    }
                )
            )
        else:
            print(
                f"base backup of shard {args.shard} from {args.node_name} at lsn {r.lsn} is at the archive "
                f"({r.files} files, {r.bytes} bytes)"
            )
        return 0
    with admin(args) as client:
        summary = write_backup(client.backup(args.shard), args.dest)
    summary = {"shard": args.shard, "node": args.node_name, "dest": args.dest, **summary}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"backup of shard {args.shard} from {args.node_name}: store at lsn {summary['lsn']}, journal to "
            f"lsn {summary['end_lsn']}, in {args.dest}"
        )
    return 0


def archive_target(args):
    """A channel to the archive: --archive, else the [archive] section of --config's node."""
    from mailnode.archive.restore import archive_channel

    config = args.config
    directory = args.dir or os.environ.get("MAILCLUSTER_DIR")
    if not config and directory:  # a local cluster: its nodes' [archive] settings
        state = localcluster.load_state(directory)
        config = state["nodes"][0].get("config") if state else None
    cfg = configmod.load(config) if config else None
    address = args.archive or (cfg.archive.address if cfg else "")
    if not address:
        raise CliError(
            "say which archive: --archive HOST:PORT, or a --config whose [archive] address is set"
        )
    tls, name = None, "archive"
    if cfg is not None and cfg.archive.tls_ca:
        tls, name = (
            (cfg.archive.tls_ca, cfg.archive.tls_cert, cfg.archive.tls_key),
            cfg.archive.server_name,
        )
    return archive_channel(address, tls, name)


def cmd_archive(args) -> int:
    from mailnode.archive.restore import archive_call
    from mailnode.proto import archive_pb2, archive_pb2_grpc

    channel = archive_target(args)
    stub = archive_pb2_grpc.ArchiveStub(channel)
    if args.action == "status":
        reply = archive_call(stub.Status, archive_pb2.StatusRequest())
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
                        "created": time.strftime(
                            "%Y-%m-%d %H:%M:%S", time.gmtime(b.created_ns / 1e9)
                        ),
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
        emit(
            args,
            rows,
            ["shard", "first_lsn", "end_lsn", "epoch", "segments", "bytes", "last_node", "bases"],
        )
        return 0
    reply = archive_call(stub.Verify, archive_pb2.VerifyRequest(), timeout=3600)
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
    emit(args, rows, ["shard", "segments", "records", "end_lsn", "result"])
    return 1 if any(r.error for r in reply.results) else 0


def cmd_restore(args) -> int:
    from mailnode.archive.restore import restore_shard
    from mailnode.node import cluster_layout

    if not args.config:
        raise CliError("restore: --config of the (stopped, new) node to restore onto")
    cfg = configmod.load(args.config)
    shards = cluster_layout(cfg.node.data_dir, cfg.node.shards)
    if args.base and args.shard == "all":
        raise CliError("restore --base: say which shard the backup is of (--shard N)")
    wanted = range(shards) if args.shard == "all" else [int(args.shard)]
    until_ns = int(parse_at(args.until, past=True, option="--until") * 1e9) if args.until else 0
    channel = archive_target(args)
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
        print(json.dumps(results, indent=2))
    else:
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


def journal_dir(args) -> str:
    if args.path:
        return args.path
    if args.shard is None:
        raise CliError("name the journal: a PATH, or --dir/--config with --shard N")
    _, _, data_dir = node_targets(args)[0]
    return os.path.join(data_dir, "shards", str(args.shard), "journal")


def cmd_journal(args) -> int:
    path = journal_dir(args)
    if args.action == "inspect":
        rows = jtools.as_dicts(jtools.inspect(path))
        emit(args, rows, ["segment", "first_lsn", "bytes", "records", "last_epoch", "status"])
        return 0
    if args.action == "verify":
        bad = jtools.as_dicts(jtools.verify(path))
        if args.json:
            print(json.dumps({"journal": path, "ok": not bad, "problems": bad}, indent=2))
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
    repairs = jtools.as_dicts(jtools.salvage(path))
    if args.json:
        print(json.dumps({"journal": path, "repairs": repairs}, indent=2))
    elif repairs:
        for r in repairs:
            print(
                f"{os.path.join(path, r['segment'])} at offset {r['offset']}: {r['action']}, "
                f"{r['bytes']} bytes lost"
            )
    else:
        print(f"journal {path}: nothing to salvage")
    return 0


def cmd_local(args) -> int:
    if args.action == "up":
        state = localcluster.up(
            args.dir,
            nodes=args.nodes,
            shards=args.shards,
            domain=args.domain,
            base_address=args.base_address,
        )
        if args.json:
            print(json.dumps(localcluster.public_map(state)))
        else:
            rows = [{k: n.get(k, "") for k in localcluster.PUBLIC_KEYS} for n in state["nodes"]]
            print(table(rows, [k for k in localcluster.PUBLIC_KEYS if any(r[k] for r in rows)]))
            if "zookeeper" in state:
                print(
                    f"\nZooKeeper {state['zookeeper']}; coordinators "
                    + ", ".join(f"{c['name']} (pid {c['pid']})" for c in state["coordinators"])
                )
                with ZkSession((state["zookeeper"], state["root"])) as store:
                    print(
                        table(
                            cluster_rows(store),
                            ["shard", "node", "role", "alive", "epoch", "in_sync", "smtp"],
                        )
                    )
                print(
                    "\nEach shard is served by its primary's SMTP and POP3 listeners (see the table);"
                )
            else:
                print(f"\nmail for @{state['domain']} goes to SMTP {state['nodes'][0]['smtp']};")
            print(
                f"add a mailbox with: mailctl --dir {args.dir} user add someone@{state['domain']}"
            )
        return 0
    if args.action == "down":
        stopped = localcluster.down(args.dir)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    state = localcluster.status(args.dir)
    if args.json:
        print(json.dumps(localcluster.public_map(state)))
    else:
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


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the subcommand must not be reset by the subparser.
    common.add_argument(
        "--dir", default=argparse.SUPPRESS, help="a local cluster directory (or $MAILCLUSTER_DIR)"
    )
    common.add_argument("--config", default=argparse.SUPPRESS, help="a node's TOML file")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--zk",
        default=argparse.SUPPRESS,
        help="ZooKeeper ensemble host:port,... (cluster commands)",
    )
    common.add_argument(
        "--root", default=argparse.SUPPRESS, help="the cluster's root znode (default /mailcluster)"
    )
    p = argparse.ArgumentParser(
        prog="mailctl", description="Operate a mailcluster.", parents=[common]
    )
    sub = p.add_subparsers(dest="command", required=True)

    loc = sub.add_parser("local", help="the cluster on loopback").add_subparsers(
        dest="action", required=True
    )
    lup = loc.add_parser("up", parents=[common], help="start everything, return when ready")
    lup.add_argument(
        "--nodes", type=int, default=3, help="1: a standalone node; more: a cluster with ZooKeeper"
    )
    lup.add_argument("--shards", type=int, default=2)
    lup.add_argument("--domain", default="example.test")
    lup.add_argument(
        "--base-address", help="loopback /24 prefix to use, e.g. 127.0.5 (default: from DIR)"
    )
    loc.add_parser("down", parents=[common], help="stop everything started there")
    loc.add_parser("status", parents=[common], help="what runs, with liveness")

    usr = sub.add_parser("user", help="mailboxes").add_subparsers(dest="action", required=True)
    for action in ("add", "passwd"):
        u = usr.add_parser(action, parents=[common])
        u.add_argument("address")
        u.add_argument("--password", help="the password (else asked, or --password-stdin)")
        u.add_argument("--password-stdin", action="store_true")
    usr.add_parser("del", parents=[common]).add_argument("address")
    usr.add_parser("list", parents=[common])

    sub.add_parser("status", parents=[common], help="shards of the node(s)")

    sw = sub.add_parser(
        "switchover", parents=[common], help="planned: drain, catch up, swap (zero loss)"
    )
    sw.add_argument("--shard", type=int, required=True)
    sw.add_argument(
        "--to", help="the spare to promote (default: the in-sync spare with most journal)"
    )
    sw.add_argument("--at", help="when: HH:MM, an ISO date-time or Unix seconds (default: now)")
    fo = sub.add_parser(
        "failover", parents=[common], help="disaster: make NODE primary now (may lose mail)"
    )
    fo.add_argument("--shard", type=int, required=True)
    fo.add_argument("--to", required=True)
    fo.add_argument("--force", action="store_true", help="do it, having read what may be lost")
    ini = sub.add_parser("init", parents=[common], help="create the cluster's data in ZooKeeper")
    ini.add_argument("--shards", type=int, required=True)
    ini.add_argument("--domain", required=True, help="hosted domain(s), comma-separated")
    ini.add_argument("--spares", type=int, default=1, help="hot spares per shard")
    ini.add_argument(
        "--failover-min-interval",
        type=float,
        default=30.0,
        help="seconds between two automatic failovers of one shard (flap damping)",
    )
    sub.add_parser("pause", parents=[common], help="no automatic failover until resume")
    sub.add_parser("resume", parents=[common])
    hist = sub.add_parser("history", parents=[common], help="the coordinators' decisions")
    hist.add_argument("--limit", type=int, default=50)

    sh = sub.add_parser("shard", help="roles of a shard on a node").add_subparsers(
        dest="action", required=True
    )
    pro = sh.add_parser("promote", parents=[common], help="make the node primary at a new epoch")
    dem = sh.add_parser(
        "demote", parents=[common], help="stop committing now; follow --to when given"
    )
    for sp in (pro, dem):
        sp.add_argument("--shard", type=int, required=True)
        sp.add_argument("--node", help="which node of a local cluster (default: the first)")
    dem.add_argument("--to", help="gRPC address (host:port) of the primary to follow")

    qu = sub.add_parser("queue", help="the delivery queue of every shard (postqueue/postsuper)")
    qa = qu.add_subparsers(dest="action", required=True)
    qa.add_parser("list", parents=[common], help="every queued message")
    qs = qa.add_parser("show", parents=[common], help="one message: state, recipients, headers")
    qs.add_argument("ids", nargs=1, metavar="ID")
    for action, text in (
        ("hold", "not tried until released"),
        ("release", "tried again as scheduled"),
        ("delete", "dropped, no DSN"),
        ("flush", "tried now"),
        ("requeue", "released and tried now"),
    ):
        qc = qa.add_parser(action, parents=[common], help=text)
        qc.add_argument("ids", nargs="*", metavar="ID", help="queue ids (or SHARD:LSN)")
        qc.add_argument("--all", action="store_true", help="every queued message")

    bk = sub.add_parser("backup", parents=[common], help="online backup of a shard into DEST")
    bk.add_argument("--shard", type=int, required=True)
    bk.add_argument("--node", help="which node of a local cluster (default: the first)")
    bk.add_argument(
        "dest", nargs="?", help="a new directory: the shard directory a node can start from"
    )
    bk.add_argument(
        "--to-archive", action="store_true", help="upload a base backup to the archive instead"
    )
    rs = sub.add_parser(
        "restore", parents=[common], help="rebuild shards of a stopped node from the archive"
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
    ar = sub.add_parser("archive", help="the remote site's archive").add_subparsers(
        dest="action", required=True
    )
    for action, text in (
        ("status", "what the archive holds per shard"),
        ("verify", "re-read every segment"),
    ):
        ap = ar.add_parser(action, parents=[common], help=text)
        ap.add_argument("--archive", help="host:port (default: the [archive] address of --config)")

    jr = sub.add_parser("journal", help="offline journal tools").add_subparsers(
        dest="action", required=True
    )
    for action in ("inspect", "verify", "salvage"):
        j = jr.add_parser(action, parents=[common])
        j.add_argument(
            "path", nargs="?", help="a journal directory (else --dir/--config with --shard)"
        )
        j.add_argument("--shard", type=int)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for key, default in (
        ("dir", None),
        ("config", None),
        ("json", False),
        ("zk", None),
        ("root", "/mailcluster"),
    ):
        if not hasattr(args, key):
            setattr(args, key, default)
    if args.command == "local" and not args.dir:
        print("mailctl: local needs --dir DIR", file=sys.stderr)
        return 2
    try:
        if args.command == "user":
            cmd_user(args)
            return 0
        if args.command == "status":
            cmd_status(args)
            return 0
        if args.command == "shard":
            cmd_shard(args)
            return 0
        if args.command == "switchover":
            return cmd_switchover(args)
        if args.command == "failover":
            return cmd_failover(args)
        if args.command in ("init", "pause", "resume", "history"):
            cmd_cluster(args)
            return 0
        if args.command == "journal":
            return cmd_journal(args)
        if args.command == "queue":
            return cmd_queue(args)
        if args.command == "backup":
            return cmd_backup(args)
        if args.command == "restore":
            return cmd_restore(args)
        if args.command == "archive":
            return cmd_archive(args)
        return cmd_local(args)
    except (
        CliError,
        AdminError,
        CoordinationError,
        configmod.ConfigError,
        localcluster.LocalError,
        JournalError,
        FileNotFoundError,
        ValueError,
        RestoreError,
    ) as e:
        print(f"mailctl: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``mailctl user add|passwd|del|delete|list|show|quota|import``: mailboxes."""

from __future__ import annotations

import getpass
import re
import sys
import time

from mailctl.common import CliError, add_command
from mailctl.output import emit, show_json
from mailctl.targets import (
    admin_for,
    node_target,
    node_targets,
    primary_node,
    shard_primaries,
    zk_target,
    zookeeper,
)
from mailnode.passwd_file import parse_passwd_file
from mailnode.proto import admin_pb2
from mailnode.users import shard_of

IMPORT_BATCH = 2000  # users per record (and per call): thousands a second, small records
SIZE = re.compile(r"(\d+)([kmgt]?)i?b?", re.IGNORECASE)


def register(sub) -> None:
    usr = sub.add_parser("user", help="mailboxes").add_subparsers(dest="action", required=True)
    for action, func in (("add", cmd_add), ("passwd", cmd_passwd)):
        u = add_command(usr, action, func)
        u.add_argument("address")
        u.add_argument("--password", help="the password (else asked, or --password-stdin)")
        u.add_argument("--password-stdin", action="store_true")
    for name in ("del", "delete"):
        add_command(usr, name, cmd_del).add_argument("address")
    add_command(usr, "list", cmd_list)
    add_command(usr, "show", cmd_show, help="usage, quota and folders").add_argument("address")
    q = add_command(usr, "quota", cmd_quota, help="set a storage quota (0: no limit)")
    q.add_argument("scope", help="an address, or @domain for its users' default")
    q.add_argument("--storage", default="0", help="bytes, or with K/M/G/T (1024-based)")
    q.add_argument("--messages", type=int, default=0)
    imp = add_command(
        usr, "import", cmd_import, help="users from a Dovecot passwd-file (hashes as they are)"
    )
    imp.add_argument("file")


def read_password(args) -> str:
    if args.password is not None:
        return args.password
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    pw = getpass.getpass("password: ")
    if pw != getpass.getpass("again: "):
        raise CliError("passwords differ")
    return pw


def _owner(args):
    """The admin service to change ``args.address`` at: in a cluster, its shard's primary."""
    target = zk_target(args)
    return admin_for(node_target(args, primary_node(target, args.address) if target else None))


def cmd_add(args) -> int:
    with _owner(args) as client:
        r = client.add_user(args.address, read_password(args))
    print(f"added {r.address} (shard {r.shard})")
    return 0


def cmd_passwd(args) -> int:
    with _owner(args) as client:
        r = client.set_password(args.address, read_password(args))
    print(f"password of {r.address} changed")
    return 0


def cmd_del(args) -> int:
    with _owner(args) as client:
        r = client.delete_user(args.address)
    print(f"deleted {r.address}; its Maildir is kept on disk")
    return 0


def cmd_list(args) -> int:
    with admin_for(node_target(args)) as client:
        users = client.list_users()
        if args.json:
            emit([{"address": u.address, "shard": u.shard} for u in users], [], True)
        else:  # streamed: a million users are not held to be lined up
            print(f"{'address':<40} shard")
            for u in users:
                print(f"{u.address:<40} {u.shard}")
    return 0


def parse_size(text: str) -> int:
    m = SIZE.fullmatch(text.strip())
    if not m:
        raise CliError(f"not a size: {text!r} (say 500M, 2G or a number of bytes)")
    return int(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower())


def cmd_show(args) -> int:
    with _owner(args) as client:
        r = client.call("UserInfo", admin_pb2.UserRequest(address=args.address))
    doc = {
        "address": r.address,
        "shard": r.shard,
        "messages": r.messages,
        "bytes": r.bytes,
        "quota_bytes": r.quota_bytes,
        "quota_messages": r.quota_messages,
        "folders": [
            {
                "name": f.name,
                "messages": f.messages,
                "uidvalidity": f.uidvalidity,
                "uidnext": f.uidnext,
                "subscribed": f.subscribed,
            }
            for f in r.folders
        ],
    }
    if args.json:
        show_json(doc)
        return 0
    limit = lambda n, unit: f"{n} {unit}" if n else "no limit"  # noqa: E731
    print(f"{r.address} (shard {r.shard}): {r.messages} messages, {r.bytes} bytes")
    print(f"quota: {limit(r.quota_bytes, 'bytes')}, {limit(r.quota_messages, 'messages')}")
    emit(doc["folders"], ["name", "messages", "uidvalidity", "uidnext", "subscribed"], False)
    return 0


def cmd_quota(args) -> int:
    request = admin_pb2.QuotaRequest(
        scope=args.scope, bytes=parse_size(args.storage), messages=args.messages
    )
    if args.scope.startswith("@"):  # a domain default: on every shard, at its primary
        target = zk_target(args)
        nodes = (
            sorted(set(shard_primaries(target).values()))
            if target
            else [t.name for t in node_targets(args)]
        )
        for name in nodes:
            with admin_for(node_target(args, name)) as client:
                client.call("SetQuota", request)
    else:
        with _owner(args) as client:
            client.call("SetQuota", request)
    print(
        f"quota of {args.scope}: {request.bytes or 'no limit'} bytes, "
        f"{request.messages or 'no limit'} messages"
    )
    return 0


def cmd_import(args) -> int:
    try:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise CliError(f"{args.file}: {e.strerror}") from None
    entries, errors = parse_passwd_file(text)
    for line, why in errors:
        print(f"{args.file}:{line}: {why}", file=sys.stderr)
    if errors:
        raise CliError(f"{args.file}: {len(errors)} bad lines; nothing imported")
    start = time.monotonic()
    target = zk_target(args)
    if target:
        with zookeeper(target) as store:
            count = store.snapshot().config["shards"]
    else:
        with admin_for(node_target(args)) as client:
            count = len(client.status().shards)
    by_shard: dict[int, list] = {}
    for entry in entries:
        by_shard.setdefault(shard_of(entry.address, count), []).append(entry)
    totals = {"added": 0, "updated": 0, "unchanged": 0}
    primaries = shard_primaries(target) if target else {}
    for shard, users in sorted(by_shard.items()):
        node = primaries.get(shard)
        with admin_for(node_target(args, node)) as client:
            for i in range(0, len(users), IMPORT_BATCH):
                request = admin_pb2.ImportRequest(shard=shard)
                for u in users[i : i + IMPORT_BATCH]:
                    request.users.add(
                        address=u.address,
                        password_hash=u.password_hash,
                        quota_bytes=u.quota_bytes or 0,
                        quota_messages=u.quota_messages or 0,
                        has_quota=u.quota_bytes is not None or u.quota_messages is not None,
                    )
                r = client.call("ImportUsers", request, timeout=300)
                for k in totals:
                    totals[k] += getattr(r, k)
    took = time.monotonic() - start
    print(
        f"{args.file}: {len(entries)} users: {totals['added']} added, {totals['updated']} "
        f"updated, {totals['unchanged']} unchanged in {took:.1f} s "
        f"({len(entries) / took if took else 0:.0f}/s)"
    )
    return 0

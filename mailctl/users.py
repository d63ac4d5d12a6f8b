"""``mailctl user add|passwd|del|list``: mailboxes."""

from __future__ import annotations

import getpass
import sys

from mailctl.common import CliError, add_command
from mailctl.output import emit
from mailctl.targets import admin_for, node_target, primary_node, zk_target


def register(sub) -> None:
    usr = sub.add_parser("user", help="mailboxes").add_subparsers(dest="action", required=True)
    for action, func in (("add", cmd_add), ("passwd", cmd_passwd)):
        u = add_command(usr, action, func)
        u.add_argument("address")
        u.add_argument("--password", help="the password (else asked, or --password-stdin)")
        u.add_argument("--password-stdin", action="store_true")
    add_command(usr, "del", cmd_del).add_argument("address")
    add_command(usr, "list", cmd_list)


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
        rows = [{"address": u.address, "shard": u.shard} for u in client.list_users()]
    emit(rows, ["address", "shard"], args.json)
    return 0

"""The ``mailctl`` entry point: the parser built from the command modules, one error line."""

from __future__ import annotations

import argparse
import sys

from coordinator.model import CoordinationError
from devtools.localcluster import LocalError
from mailctl import archive, backup, cluster, journal, local, mailbox, queue, shard, users
from mailctl.common import DEFAULTS, CliError, common_options
from mailnode.admin.client import AdminError
from mailnode.config import ConfigError
from mailnode.journal import JournalError

# In the order of `mailctl --help`.
COMMANDS = (local, users, mailbox, cluster, shard, queue, backup, archive, journal)

# What a command may fail with: shown as one line, `mailctl: ...`, exit status 1.
ERRORS = (
    CliError,
    AdminError,
    CoordinationError,
    ConfigError,
    LocalError,
    JournalError,
    FileNotFoundError,
    ValueError,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailctl", description="Operate a mailcluster.", parents=[common_options(DEFAULTS)]
    )
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ERRORS as e:
        print(f"mailctl: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

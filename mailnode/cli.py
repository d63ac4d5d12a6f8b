"""``mailnode --config node.toml``: run a mail node in the foreground
(``mailnode archive --config archive.toml`` runs the remote site's archive: archive/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from archive.cli import archive_main
from mailnode import config as configmod
from mailnode.journal import JournalDamaged, JournalError
from mailnode.node import Node


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["archive"]:
        return archive_main(argv[1:])
    p = argparse.ArgumentParser(prog="mailnode", description="Run a mailcluster mail node.")
    p.add_argument("--config", help="node TOML file")
    p.add_argument(
        "--print-defaults", action="store_true", help="print every config key with its default"
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.print_defaults:
        print(configmod.documented_defaults())
        return 0
    if not args.config:
        p.error("--config is required")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = configmod.load(args.config)
        node = Node(cfg)
        asyncio.run(node.serve())
    except configmod.ConfigError as e:
        print(f"mailnode: config error: {e}", file=sys.stderr)
        return 2
    except JournalDamaged as e:
        print(
            f"mailnode: journal damaged: {e}\n"
            f"  start-up refused so that nothing is silently skipped; inspect with\n"
            f"  `mailctl journal verify {e.path.rsplit('/', 1)[0]}` and recover what is readable with\n"
            f"  `mailctl journal salvage {e.path.rsplit('/', 1)[0]}`",
            file=sys.stderr,
        )
        return 3
    except (JournalError, OSError) as e:
        print(f"mailnode: cannot start: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

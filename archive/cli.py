"""``mailnode archive --config archive.toml``: run the remote site's archive in the
foreground (the same command shape and exit codes as ``mailnode``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from archive import config as archive_config
from archive.server import Archive
from mailnode.config import ConfigError
from mailnode.journal import JournalDamaged, JournalError


def archive_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="mailnode archive", description="Run the remote site's journal archive."
    )
    p.add_argument("--config", required=True, help="archive TOML file")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(Archive(archive_config.load(args.config)).serve())
    except ConfigError as e:
        print(f"mailnode archive: config error: {e}", file=sys.stderr)
        return 2
    except JournalDamaged as e:
        print(f"mailnode archive: archived journal damaged: {e}", file=sys.stderr)
        return 3
    except (JournalError, OSError) as e:
        print(f"mailnode archive: cannot start: {e}", file=sys.stderr)
        return 1
    return 0

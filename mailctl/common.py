"""What every command module shares: the common options, the error, time arguments."""

from __future__ import annotations

import argparse
import datetime
import functools

from mailctl.restore import RestoreError


class CliError(Exception):
    """A one-line reason the command cannot do what was asked (``mailctl: ...``, exit 1)."""


def common_options(defaults: dict | None = None) -> argparse.ArgumentParser:
    """--dir, --config, --json, --zk, --root, for ``parents=``: accepted before the subcommand
    (the top-level parser, which gives them their defaults) and after it (every subcommand's
    parser, where they default to nothing so that one given before is not overwritten)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument("--dir", help="a local cluster directory (or $MAILCLUSTER_DIR)")
    p.add_argument("--config", help="a node's TOML file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--zk", help="ZooKeeper ensemble host:port,... (cluster commands)")
    p.add_argument("--root", help="the cluster's root znode (default /mailcluster)")
    if defaults:
        p.set_defaults(**defaults)
    return p


DEFAULTS = {"dir": None, "config": None, "json": False, "zk": None, "root": "/mailcluster"}
COMMON = common_options()  # the subcommands' parent (add_command)


def add_command(sub, name: str, func, **kwargs) -> argparse.ArgumentParser:
    """A subcommand taking the common options, run as ``func(args) -> int``."""
    p = sub.add_parser(name, parents=[COMMON], **kwargs)
    p.set_defaults(func=func)
    return p


def parse_at(text: str | None, past: bool = False, option: str = "--at") -> float:
    """--at: "HH:MM" (the next such time; with past, the last), an ISO date-time, or Unix seconds."""
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


def restoring(command):
    """``command`` with the archive client's RestoreError as CliError. Its module (which
    brings the journal and store code) is imported only when such a command runs."""

    @functools.wraps(command)
    def run(args) -> int:
        try:
            return command(args)
        except RestoreError as e:
            raise CliError(str(e)) from None

    return run

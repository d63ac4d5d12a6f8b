#!/usr/bin/env python3
"""IMAP command-parser throughput benchmark: ours against the libraries evaluated.

    .venv/bin/python bench/imap_parse_bench.py --parser ours
    # the others need their packages, in a throwaway environment (never .venv/):
    python3 -m venv /tmp/pv && /tmp/pv/bin/pip install pymap twisted imap-codec abnf
    /tmp/pv/bin/python bench/imap_parse_bench.py --parser pymap|twisted|imapcodec|abnf

Each of the five commands below (the whole command, literal inline) is parsed
repeatedly; the figure is commands/second, best of --repeat runs, plus a
round-robin "mix" over all five.  A command the parser rejects is reported as
REJECTED (and left out of the mix, which then says so).

  pymap     pymap.parsing.commands.Commands().parse(memoryview, Params())
  twisted   twisted.mail.imap4.IMAP4Server.dataReceived() on a StringTransport,
            with the do_* handlers replaced by stubs so only the line/literal
            handling and argument parsing (arg_seqset, arg_fetchatt, ...) run.
            Twisted has no LITERAL+, so APPEND uses a synchronizing {300}
            literal fed in the same buffer (the server's "+ Ready" is discarded).
  ours      mailnode.imap.parser.parse_command(bytes) from this checkout
  imapcodec imap_codec.CommandCodec.decode(bytes) (Rust, PyPI imap-codec 0.1.0);
            "+dict" adds .as_dict(), the only way to read the result from Python.
  abnf      abnf.grammars.rfc9051.Rule('command').parse_all(str) (PyPI abnf),
            a parser generated from RFC 9051's ABNF; yields a raw parse tree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from importlib import import_module


def _comparator(module: str):
    """A library compared against, from the environment this runs in: not a dependency
    of the project (never in .venv/; see the docstring for the throwaway one)."""
    try:
        return import_module(module)
    except ImportError:
        sys.exit(f"imap_parse_bench: {module} is not installed here (see the docstring)")


LIT = b"x" * 298 + b"\r\n"  # 300 octets
assert len(LIT) == 300

COMMANDS: list[tuple[str, bytes]] = [
    ("uid-fetch", b"a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])\r\n"),
    ("uid-store", b"a2 UID STORE 5 +FLAGS.SILENT (\\Seen)\r\n"),
    ("search", b'a3 SEARCH OR FROM alice SUBJECT "hello world" SINCE 1-Jan-2020\r\n'),
    ("select-condstore", b"a4 SELECT INBOX (CONDSTORE)\r\n"),
    ("append-lit+", b"a5 APPEND INBOX (\\Seen) {300+}\r\n" + LIT + b"\r\n"),
]


class Rejected(Exception):
    pass


# --------------------------------------------------------------------------
def make_pymap() -> Callable[[bytes], object]:
    parsing = _comparator("pymap.parsing")
    commands = _comparator("pymap.parsing.commands")
    Params, Commands, InvalidCommand = parsing.Params, commands.Commands, commands.InvalidCommand

    cmds = Commands()

    def parse(data: bytes) -> object:
        cmd, _ = cmds.parse(memoryview(data), Params())
        if isinstance(cmd, InvalidCommand):
            raise Rejected(cmd.message)
        return cmd

    return parse


def make_twisted() -> Callable[[bytes], object]:
    StringTransport = _comparator("twisted.internet.testing").StringTransport
    imap4 = _comparator("twisted.mail.imap4")

    calls: list[tuple] = []

    def stub(self, tag, *args, **kw):
        calls.append(args)

    S = imap4.IMAP4Server

    class BenchServer(S):
        timeOut = None
        select_FETCH = (stub, *S.select_FETCH[1:])
        select_STORE = (stub, *S.select_STORE[1:])
        select_SEARCH = (stub, *S.select_SEARCH[1:])
        select_SELECT = (stub, *S.select_SELECT[1:])
        select_APPEND = (stub, *S.select_APPEND[1:])

    server = BenchServer()
    transport = StringTransport()
    server.makeConnection(transport)
    server.state = "select"

    def parse(data: bytes) -> object:
        if b"{300+}" in data:  # no LITERAL+ in Twisted: sync literal
            data = data.replace(b"{300+}", b"{300}")
        n = len(calls)
        server.dataReceived(data)
        transport.clear()
        if len(calls) != n + 1:
            raise Rejected("not dispatched")
        return calls.pop()

    return parse


def make_ours() -> Callable[[bytes], object]:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mailnode.imap.parser import parse_command  # type: ignore

    return parse_command


def make_imapcodec(as_dict: bool = False) -> Callable[[bytes], object]:
    codec = _comparator("imap_codec")
    CommandCodec, DecodeError = codec.CommandCodec, codec.DecodeError

    def parse(data: bytes) -> object:
        try:
            _rest, cmd = CommandCodec.decode(data)
        except DecodeError as exc:
            raise Rejected(type(exc).__name__) from None
        return cmd.as_dict() if as_dict else cmd

    return parse


def make_abnf() -> Callable[[bytes], object]:
    ParseError = _comparator("abnf").ParseError
    rfc9051 = _comparator("abnf.grammars.rfc9051")

    rule = rfc9051.Rule("command")

    def parse(data: bytes) -> object:
        try:
            return rule.parse_all(data.decode("latin-1"))
        except ParseError:
            raise Rejected("ParseError") from None

    return parse


FACTORIES = {
    "pymap": make_pymap,
    "twisted": make_twisted,
    "ours": make_ours,
    "imapcodec": make_imapcodec,
    "imapcodec+dict": lambda: make_imapcodec(True),
    "abnf": make_abnf,
}


# --------------------------------------------------------------------------
def rate(
    parse: Callable[[bytes], object], datas: list[bytes], seconds: float, repeat: int
) -> float:
    n = max(1, len(datas))
    # calibrate
    iters, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(iters):
            for d in datas:
                parse(d)
        t = time.perf_counter() - t0
        if t > 0.05:
            break
        iters *= 4
    iters = max(1, int(iters * seconds / t))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(iters):
            for d in datas:
                parse(d)
        best = min(best, time.perf_counter() - t0)
    return iters * n / best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parser", required=True, choices=sorted(FACTORIES))
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        parse = FACTORIES[args.parser]()
    except ImportError as exc:
        print(f"{args.parser}: SKIPPED, does not import: {exc!r}")
        return 2
    print(f"parser={args.parser} python={sys.version.split()[0]}")
    ok: list[bytes] = []
    for name, data in COMMANDS:
        try:
            parse(data)
        except Rejected as exc:
            print(f"  {name:18s} REJECTED ({exc})")
            continue
        except Exception as exc:
            print(f"  {name:18s} ERROR {exc!r}")
            continue
        ok.append(data)
        r = rate(parse, [data], args.seconds, args.repeat)
        print(f"  {name:18s} {r:12,.0f} cmd/s  {1e6 / r:8.1f} us/cmd")
    if ok:
        r = rate(parse, ok, args.seconds, args.repeat)
        note = "" if len(ok) == len(COMMANDS) else f" (mix of the {len(ok)} accepted commands)"
        print(f"  {'mix':18s} {r:12,.0f} cmd/s  {1e6 / r:8.1f} us/cmd{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

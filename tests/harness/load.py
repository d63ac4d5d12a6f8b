"""bench/loadgen.py as a process against a node, and which of its messages got stored."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from harness import PASSWORD, ROOT
from harness.mail import body_of, pop3_messages

sys.path.insert(0, os.path.join(ROOT, "bench"))
import loadgen

SIZE = 1500
SUBJECT = re.compile(rb"^Subject: lg (\d+)", re.M)


def start_load(node, tmp_path, rcpt: str, first: int, count: int, tag: str):
    log = tmp_path / f"accepted-{first}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "bench", "loadgen.py"),
            "--server",
            "{}:{}".format(*node.smtp),
            "--sessions",
            "10",
            "--messages",
            str(count),
            "--size",
            str(SIZE),
            "--to",
            rcpt,
            "--from",
            "load@remote.test",
            "--first",
            str(first),
            "--tag",
            tag,
            "--timeout",
            "10",
            "--max-seconds",
            "120",
            "--error-delay",
            "0.2",
            "--accepted-log",
            str(log),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, log


def stored_load_numbers(
    node, rcpt: str, tag: str, password: str = PASSWORD, *, others: bool = False
) -> list[int]:
    """Numbers of the load generator's messages in the mailbox, each checked byte for byte
    (whole or absent). Other mail fails the check unless ``others`` (probes) is allowed."""
    numbers = []
    for msg in pop3_messages(node.pop3, rcpt, password):
        body = body_of(msg)
        if others and not body.startswith(b"Subject: lg "):
            continue
        n = int(SUBJECT.search(body).group(1))
        assert body == loadgen.make_message(n, tag, "load@remote.test", rcpt, SIZE)
        numbers.append(n)
    return numbers


def accepted_numbers(log) -> list[int]:
    try:
        return [int(x) for x in log.read_text().split()]
    except FileNotFoundError:
        return []

"""The one registry of started processes: each registers its name and its log.

Nodes, coordinators, archives, ZooKeeper servers and local clusters (a directory of
logs) all register here, through spawn() or register(). When a test fails, the hook
in conftest.py adds the tail of every registered log to its report; after every test
it looks for "Traceback" in what product processes (ours, not ZooKeeper) logged during
the test and reports it unless the test is marked ``expect_log_traceback``.

Entries registered by a test are forgotten when it ends (end_test); session entries
(the shared ZooKeeper ensemble) stay.
"""

from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass, field

TAIL = 20000  # characters of each log shown on failure


@dataclass
class Entry:
    name: str
    path: str  # a log file, or a directory whose logs match pattern
    product: bool = True  # our own code, whose logs should hold no Traceback
    session: bool = False
    pattern: str | None = None  # for a directory: e.g. "**/*.log"
    offsets: dict[str, int] = field(default_factory=dict)  # log -> size when registered

    def files(self) -> list[str]:
        if self.pattern is None:
            return [self.path]
        return sorted(glob.glob(os.path.join(self.path, self.pattern), recursive=True))


_entries: dict[str, Entry] = {}  # keyed by path: a restarted process appends to its log


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def register(
    name: str,
    log: str | os.PathLike,
    *,
    product: bool = True,
    session: bool = False,
    pattern: str | None = None,
) -> Entry:
    """Register a process's log (or, with pattern, a directory of logs). Again for the
    same path (a restart) keeps the first registration."""
    path = os.fspath(log)
    entry = _entries.get(path)
    if entry is None:
        entry = Entry(name, path, product, session, pattern)
        if pattern is None:
            entry.offsets[path] = _size(path)
        _entries[path] = entry
    return entry


def spawn(
    name: str,
    argv: list[str],
    log: str | os.PathLike,
    *,
    cwd: str | os.PathLike | None = None,
    product: bool = True,
    session: bool = False,
) -> subprocess.Popen:
    """Start a process with stdout and stderr appended to its log, registered."""
    register(name, log, product=product, session=session)
    with open(log, "ab") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=cwd)


def entries() -> list[Entry]:
    return list(_entries.values())


def read(path: str, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def tails(limit: int = TAIL) -> list[tuple[str, str]]:
    """(title, last characters) of every registered log."""
    out = []
    for e in entries():
        for path in e.files():
            label = e.name if e.pattern is None else f"{e.name}: {os.path.relpath(path, e.path)}"
            out.append((f"log of {label} ({path})", read(path)[-limit:]))
    return out


def tracebacks() -> list[tuple[str, str, str]]:
    """(name, path, the text around the last Traceback) of every product log that got
    a "Traceback" since it was registered."""
    out = []
    for e in entries():
        if not e.product:
            continue
        for path in e.files():
            text = read(path, e.offsets.get(path, 0))
            i = text.rfind("Traceback")
            if i >= 0:
                out.append((e.name, path, text[i : i + 3000]))
    return out


def end_test() -> None:
    """Forget what the test registered; session entries count from now on."""
    for path, e in list(_entries.items()):
        if not e.session:
            del _entries[path]
        elif e.pattern is None:
            e.offsets[path] = _size(path)

"""``mailctl store verify``: the shard index against the Maildir files it names.

Each mailbox is compared under the shard's apply lock (the applier waits for one
mailbox at a time, never for the whole store), so a message being delivered is
never reported half-made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MAX_PROBLEMS = 1000  # reported; the count goes on


@dataclass
class Report:
    mailboxes: int = 0
    messages: int = 0
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def verify(shard) -> Report:
    """Blocking (run in a thread)."""
    state, report = shard.state, Report()
    addresses = [r[0] for r in state.index.read("SELECT address FROM mailboxes ORDER BY address")]
    for address in addresses:
        with shard.apply_lock:
            _mailbox(state, address, report)
    return report


def _mailbox(state, address: str, report: Report) -> None:
    mb = state.mailboxes
    report.mailboxes += 1
    count = total = 0
    for folder in mb.folders(address):
        base = mb.folder_path(address, folder)
        where = f"{address} {folder.name}"
        if not os.path.isdir(base):
            report.problem(f"{where}: no Maildir directory {base}")
            continue
        files = dict(state.files.scan(base))
        rows = mb.messages(address, folder.name)
        for m in rows:
            report.messages += 1
            count, total = count + 1, total + m.size
            rel = files.pop(m.name, None)
            if rel is None:
                report.problem(f"{where}: UID {m.uid} ({m.name}): no file")
                continue
            size = os.path.getsize(os.path.join(base, rel))
            if size != m.size:
                report.problem(
                    f"{where}: UID {m.uid} ({m.name}): {size} bytes, index says {m.size}"
                )
            if rel != m.path:
                report.problem(f"{where}: UID {m.uid}: file is {rel}, index says {m.path}")
            if m.uid >= folder.uidnext:
                report.problem(f"{where}: UID {m.uid} not below UIDNEXT {folder.uidnext}")
        for rel in sorted(files.values()):
            report.problem(f"{where}: {rel}: a file the index does not know")
    if (count, total) != mb.usage(address):
        report.problem(
            f"{address}: usage counted {mb.usage(address)}, messages add up to {(count, total)}"
        )

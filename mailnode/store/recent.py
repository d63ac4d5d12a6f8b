"""Queue ids of recent messages -> their lsn, kept across restarts (review finding F11).

A front end that retries a commit (a lost reply, a failover) or a salvage of a
message the new primary already took must find the first copy by queue id, also
after a restart. The index lives in memory and in an append-only file beside the
checkpoint, ``recent_ids.log``, one line per change ("<qid> <lsn>", or "<qid> -"
when a message is taken back). Lines are written when the checkpoint is, before
its filesystem sync, so the file holds at least every id the checkpoint covers;
the replay after the checkpoint adds the rest again. It is derived state: wiped
with the store, rebuilt by a replay, compacted when it holds twice the bound.
"""

from __future__ import annotations

import collections
import logging
import os

log = logging.getLogger(__name__)

BOUND = 500_000  # minutes of mail at full speed: far longer than any retry window


def _writable(qid: str) -> bool:
    """Ours are hex (or hex + ".Q<lsn>"); one from a peer that would break a line is
    kept in memory only."""
    return qid.isascii() and qid.isprintable() and " " not in qid and qid != ""


class RecentIds:
    def __init__(self, path: str, bound: int = BOUND):
        self.path = path
        self.bound = bound
        self._ids: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._pending: list[str] = []
        self._lines = 0  # lines in the file

    # -- the index (applier thread writes, the loop reads) ---------------------------
    def get(self, qid: str) -> int | None:
        return self._ids.get(qid)

    def __contains__(self, qid: str) -> bool:
        return qid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, qid: str, lsn: int) -> None:
        self._set(qid, lsn)
        if _writable(qid):
            self._pending.append(f"{qid} {lsn}\n")

    def remove(self, qid: str) -> None:
        if self._ids.pop(qid, None) is not None and _writable(qid):
            self._pending.append(f"{qid} -\n")

    def _set(self, qid: str, lsn: int) -> None:
        self._ids[qid] = lsn
        self._ids.move_to_end(qid)
        if len(self._ids) > self.bound:
            self._ids.popitem(last=False)

    # -- the file (blocking) -------------------------------------------------------------
    def load(self, end_lsn: int) -> None:
        """Read the file; ids of records at or past ``end_lsn`` (not in the journal) are
        dropped."""
        self._ids.clear()
        self._pending.clear()
        self._lines = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        for line in data.split(b"\n")[:-1]:  # the last piece: empty, or a line a crash cut
            self._lines += 1
            qid, _, lsn = line.decode("ascii", "replace").partition(" ")
            if lsn == "-":
                self._ids.pop(qid, None)
            elif lsn.isdigit() and int(lsn) < end_lsn:
                self._set(qid, int(lsn))
            # else: an id past the checkpoint (the replay adds it again if it is in the journal)
        if self._lines > 2 * self.bound:
            self.compact()

    def flush(self) -> None:
        """Append what changed since the last flush (the checkpoint's syncfs makes it durable)."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        with open(self.path, "ab") as f:
            f.write("".join(lines).encode("ascii", "replace"))
        self._lines += len(lines)
        if self._lines > 2 * self.bound:
            self.compact()

    def write_to(self, path: str) -> None:
        """The whole index as a file of its own (a compaction, or a snapshot's copy)."""
        with open(path, "wb") as f:
            f.write(
                "".join(f"{q} {lsn}\n" for q, lsn in self._ids.items() if _writable(q)).encode(
                    "ascii"
                )
            )
            f.flush()
            os.fsync(f.fileno())

    def compact(self) -> None:
        self.write_to(self.path + ".tmp")
        os.replace(self.path + ".tmp", self.path)
        self._lines = len(self._ids)

    def wipe(self) -> None:
        """Forget everything, on disk too (the store it belongs to is being rebuilt)."""
        self._ids.clear()
        self._pending.clear()
        self._lines = 0
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

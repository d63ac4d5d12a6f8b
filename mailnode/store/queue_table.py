"""The delivery queue as a table of the shard index, indexed by next attempt.

As a mapping (lsn -> QueueEntry) it is what ``Queue`` mutates, on the writer
connection inside the applier's transaction. The scheduler's and the operator's
reads (``due``, ``next_due``, ``counts``, ``select``) go through a reader
connection: they see committed batches only and never scan the whole queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping

from mailnode.delivery.queue import QueueEntry
from mailnode.store.index import Index

COLUMNS = (
    "lsn, queue_id, sender, arrival_ns, size, pending, next_attempt_ns, attempts, held, "
    "warned, last_reply"
)


def _entry(row: tuple) -> QueueEntry:
    return QueueEntry(
        lsn=row[0],
        queue_id=row[1],
        sender=row[2],
        arrival_ns=row[3],
        size=row[4],
        pending=json.loads(row[5]),
        next_attempt_ns=row[6],
        attempts=row[7],
        held=bool(row[8]),
        warned=bool(row[9]),
        last_reply=json.loads(row[10]),
    )


class QueueTable(MutableMapping[int, QueueEntry]):
    def __init__(self, index: Index):
        self.index = index

    # -- the mapping: the applier's view, on the writer -----------------------------------
    def __getitem__(self, lsn: int) -> QueueEntry:
        row = self.index.writer.execute(
            f"SELECT {COLUMNS} FROM queue WHERE lsn = ?", (lsn,)
        ).fetchone()
        if row is None:
            raise KeyError(lsn)
        return _entry(row)

    def __setitem__(self, lsn: int, e: QueueEntry) -> None:
        self.index.begin().execute(
            f"INSERT OR REPLACE INTO queue ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                lsn,
                e.queue_id,
                e.sender,
                e.arrival_ns,
                e.size,
                json.dumps(e.pending),
                e.next_attempt_ns,
                e.attempts,
                int(e.held),
                int(e.warned),
                json.dumps(e.last_reply),
            ),
        )

    def __delitem__(self, lsn: int) -> None:
        cur = self.index.begin().execute("DELETE FROM queue WHERE lsn = ?", (lsn,))
        if cur.rowcount == 0:
            raise KeyError(lsn)

    def __iter__(self) -> Iterator[int]:
        rows = self.index.writer.execute("SELECT lsn FROM queue ORDER BY lsn").fetchall()
        return iter(r[0] for r in rows)

    def __len__(self) -> int:
        return self.index.writer.execute("SELECT count(*) FROM queue").fetchone()[0]

    def __contains__(self, lsn: object) -> bool:
        return (
            self.index.writer.execute("SELECT 1 FROM queue WHERE lsn = ?", (lsn,)).fetchone()
            is not None
        )

    # -- readers: committed state ---------------------------------------------------------
    def due(self, now_ns: int, limit: int) -> list[QueueEntry]:
        """Entries not held whose next attempt is due, the longest waiting first."""
        rows = self.index.read(
            f"SELECT {COLUMNS} FROM queue WHERE held = 0 AND next_attempt_ns <= ? "
            "ORDER BY next_attempt_ns, lsn LIMIT ?",
            (now_ns, limit),
        )
        return [_entry(r) for r in rows]

    def next_due(self, now_ns: int) -> int | None:
        """When the first entry not held falls due after ``now_ns``."""
        row = self.index.read_one(
            "SELECT min(next_attempt_ns) FROM queue WHERE held = 0 AND next_attempt_ns > ?",
            (now_ns,),
        )
        return row[0] if row else None

    def counts(self, now_ns: int) -> tuple[int, int, int, int | None]:
        """(active, deferred, held, oldest arrival or None)."""
        active, deferred, held, oldest = self.index.read_one(
            "SELECT "
            "(SELECT count(*) FROM queue WHERE held = 0 AND next_attempt_ns <= ?1), "
            "(SELECT count(*) FROM queue WHERE held = 0 AND next_attempt_ns > ?1), "
            "(SELECT count(*) FROM queue WHERE held = 1), "
            # the first queued in journal order is (to a clock's skew) the oldest: an
            # index probe, where min(arrival_ns) reads every row
            "(SELECT arrival_ns FROM queue ORDER BY lsn LIMIT 1)",
            (now_ns,),
        ) or (0, 0, 0, None)
        return active, deferred, held, oldest

    def all(self) -> list[QueueEntry]:
        return [_entry(r) for r in self.index.read(f"SELECT {COLUMNS} FROM queue ORDER BY lsn")]

    def select(self, shard: int, ids: set[str]) -> list[QueueEntry]:
        """Entries named by queue id or by "<shard>:<lsn>"."""
        out: dict[int, QueueEntry] = {}
        for i in ids:
            head, sep, tail = i.partition(":")
            if sep and head == str(shard) and tail.isdigit():
                rows = self.index.read(f"SELECT {COLUMNS} FROM queue WHERE lsn = ?", (int(tail),))
            else:
                rows = self.index.read(f"SELECT {COLUMNS} FROM queue WHERE queue_id = ?", (i,))
            for r in rows:
                out[r[0]] = _entry(r)
        return [out[k] for k in sorted(out)]

    def lsns_below(self, below: int) -> list[int]:
        """(writer) lsns of queued messages below ``below``: their records to spool."""
        rows = self.index.writer.execute(
            "SELECT lsn FROM queue WHERE lsn < ? ORDER BY lsn", (below,)
        ).fetchall()
        return [r[0] for r in rows]

"""The shard's index: one SQLite database (WAL mode) holding all derived state but the
message bodies, which stay Maildir files.

One writer connection, used by whoever holds the shard's apply lock (the applier
thread, the start-up replay, a rebuild, a snapshot install), keeps one transaction
open per applied batch; the applied lsn is written in that same transaction, so
the database is always exactly the journal's effects up to one lsn. Readers (POP3,
the delivery scheduler, the admin service) have a connection per thread and see
committed batches only, which is what ``Shard.wait_applied`` promises them.

Replacing the whole file (a snapshot install, a rebuild) bumps ``generation``:
every reader reopens on its next use.
"""

from __future__ import annotations

import os
import sqlite3
import threading

SCHEMA_VERSION = 1
INDEX_FILE = "store.db"  # in a shard directory, a snapshot and a backup

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    address TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
-- Mailboxes outlive their user (user_deleted keeps the Maildir for the operator);
-- uidvalidity_last keeps UIDVALIDITY growing for a folder re-created under a name.
CREATE TABLE IF NOT EXISTS mailboxes (
    address TEXT PRIMARY KEY,
    uidvalidity_last INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    name TEXT NOT NULL,
    dir TEXT NOT NULL,            -- relative to the mailbox: "" for INBOX, ".Sent" ...
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    subscribed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (address, name)
);
CREATE TABLE IF NOT EXISTS messages (
    folder INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    name TEXT NOT NULL,           -- the Maildir base name (POP3's UIDL)
    size INTEGER NOT NULL,
    internal_ns INTEGER NOT NULL,
    flags TEXT NOT NULL DEFAULT '',   -- IMAP flags, space separated, sorted
    modseq INTEGER NOT NULL,
    path TEXT NOT NULL,           -- relative to the folder: new/<name> or cur/<name>:2,<letters>
    cached BLOB,                  -- the header lines IMAP list views fetch (imap.message)
    PRIMARY KEY (folder, uid)
) WITHOUT ROWID;
-- Name lookups (replay, POP3 RETR) say INDEXED BY: without statistics SQLite picks
-- the primary key's folder prefix and reads the whole folder (100k rows a lookup).
CREATE INDEX IF NOT EXISTS messages_by_name ON messages (folder, name);
-- What changed in a folder since a modseq (every IMAP session's refresh, QRESYNC).
CREATE INDEX IF NOT EXISTS messages_by_modseq ON messages (folder, modseq);
-- UIDs expunged from a folder, with the folder's modseq of the expunge: what an IMAP
-- session missed since a modseq (QRESYNC's VANISHED, a session's EXPUNGE updates).
CREATE TABLE IF NOT EXISTS expunged (
    folder INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (folder, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_by_modseq ON expunged (folder, modseq);
CREATE TABLE IF NOT EXISTS queue (
    lsn INTEGER PRIMARY KEY,
    queue_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    arrival_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    pending TEXT NOT NULL,        -- JSON list
    next_attempt_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    held INTEGER NOT NULL,
    warned INTEGER NOT NULL,
    last_reply TEXT NOT NULL      -- JSON object
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (held, next_attempt_ns);
CREATE INDEX IF NOT EXISTS queue_by_id ON queue (queue_id);
CREATE TABLE IF NOT EXISTS recent (qid TEXT PRIMARY KEY, lsn INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS recent_by_lsn ON recent (lsn);
CREATE TABLE IF NOT EXISTS salvaged (origin TEXT PRIMARY KEY);
-- scope: an address, or "@domain" for the domain's default. 0: no limit.
CREATE TABLE IF NOT EXISTS quotas (
    scope TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    messages INTEGER NOT NULL
);
"""


class Index:
    def __init__(self, path: str):
        self.path = path
        self.generation = 0
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._opening = threading.Lock()

    # -- the writer (caller holds the shard's apply lock) --------------------------------
    @property
    def writer(self) -> sqlite3.Connection:
        with self._opening:
            if self._writer is None:
                self._writer = self._open_writer()
            return self._writer

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # A commit is not fsync'd by SQLite: the shard's store sync (syncfs) makes it
        # durable together with the Maildir files, and a lost commit is replayed.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-32768")  # 32 MiB
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        if "cached" not in columns:  # an index made before the header cache: NULL, the file
            conn.execute("ALTER TABLE messages ADD COLUMN cached BLOB")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        return conn

    @property
    def in_transaction(self) -> bool:
        # SQLite's own answer: after SQLITE_FULL or an I/O error it rolls the whole
        # transaction back by itself, and a flag of ours would still say "open".
        return self._writer is not None and self._writer.in_transaction

    def begin(self) -> sqlite3.Connection:
        w = self.writer
        if not w.in_transaction:
            w.execute("BEGIN IMMEDIATE")
        return w

    def commit(self) -> None:
        if self.in_transaction:
            self.writer.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.writer.execute("ROLLBACK")

    def get_meta(self, key: str, default: int = 0) -> int:
        row = self.writer.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def set_meta(self, key: str, value: int) -> None:
        self.begin().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- readers: one connection per thread ---------------------------------------------
    def reader(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.generation != self.generation:
            if conn is not None:
                conn.close()
            _ = self.writer  # the file and its schema exist before anyone reads
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA query_only=1")
            conn.execute("PRAGMA cache_size=-4096")
            local.conn, local.generation = conn, self.generation
        return conn

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.reader().execute(sql, args).fetchall()

    def read_one(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = self.read(sql, args)
        return rows[0] if rows else None

    # -- the file -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the writer (blocking); readers reopen whatever file is there next."""
        with self._opening:
            self._close()

    def _close(self) -> None:  # holding _opening (so not through .writer)
        w, self._writer = self._writer, None
        if w is not None:
            if w.in_transaction:
                w.execute("ROLLBACK")
            w.close()
        self.generation += 1

    def remove(self) -> None:
        """Close and delete the database (it is derived: a replay rebuilds it)."""
        with self._opening:
            self._close()
            self._unlink(("", "-wal", "-shm"))

    def replace_with(self, src: str) -> None:
        """Put the database file ``src`` (a snapshot's) in place of this one. Readers
        wait meanwhile: one reopening the file between the delete and the rename would
        make an empty database whose -wal would then be read against the new file."""
        with self._opening:
            self._close()
            self._unlink(("-wal", "-shm"))
            os.replace(src, self.path)
            self.generation += 1

    def _unlink(self, suffixes: tuple[str, ...]) -> None:
        for suffix in suffixes:
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    def copy_to(self, path: str) -> None:
        """A consistent copy of the committed database as one file (snapshots, backups)."""
        self.commit()
        dest = sqlite3.connect(path)
        try:
            self.writer.backup(dest)
        finally:
            dest.close()

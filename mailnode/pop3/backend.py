"""The node's POP3 backend: mailboxes of this node's shards.

Deletions are an ``Expunged`` journal record; ``expunge`` returns once it is
durable and applied, so the QUIT reply promises what the journal holds.
"""

from __future__ import annotations

import asyncio
import functools

from mailnode import metrics
from mailnode.pop3.server import MailboxBusy, MessageRef, Pop3Metrics
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.users import hash_password, normalize, verify_password


class _PromMetrics(Pop3Metrics):
    def session_started(self) -> None:
        metrics.POP3_SESSIONS.inc()
        metrics.POP3_ACTIVE.inc()

    def session_ended(self) -> None:
        metrics.POP3_ACTIVE.dec()

    def login_failed(self) -> None:
        metrics.POP3_LOGIN_FAILURES.inc()

    def retrieved(self, nbytes: int) -> None:
        metrics.POP3_RETRIEVED_BYTES.inc(nbytes)


class NodePop3Backend:
    def __init__(self, node):
        self.node = node
        self._locked: set[str] = set()

    @staticmethod
    def metrics_hooks() -> Pop3Metrics:
        return _PromMetrics()

    async def authenticate(self, user: str, password: str) -> str | None:
        addr = normalize(user)
        if "@" not in addr:
            return None
        stored = self.node.shard_for(addr).state.users.get(addr)
        if stored is None:
            # Same cost as a real check, so timing does not tell which users exist.
            await asyncio.to_thread(verify_password, _dummy_hash(), password)
            return None
        ok = await asyncio.to_thread(verify_password, stored, password)
        return addr if ok else None

    async def open(self, mailbox: str) -> list[MessageRef]:
        if mailbox in self._locked:
            raise MailboxBusy(mailbox)
        self._locked.add(mailbox)
        try:
            store = self.node.shard_for(mailbox).state.store
            listing = await asyncio.to_thread(store.list, mailbox)
        except BaseException:
            self._locked.discard(mailbox)
            raise
        return [MessageRef(uid, size) for uid, size in listing]

    async def read(self, mailbox: str, uid: str) -> bytes | None:
        return await asyncio.to_thread(self.node.shard_for(mailbox).state.store.read, mailbox, uid)

    async def expunge(self, mailbox: str, uids: list[str]) -> None:
        rec = JournalRecord()
        rec.expunged.mailbox = mailbox
        rec.expunged.uids.extend(uids)
        await self.node.shard_for(mailbox).commit(rec, applied=True)

    async def close(self, mailbox: str) -> None:
        self._locked.discard(mailbox)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password of anyone")

"""POP3 on any node of a cluster: every mailbox operation goes to its shard's primary.

The session lock lives on the primary (one table per node, shared by its own
POP3 sessions and by those of other nodes), so two sessions on one mailbox
exclude each other wherever they connect. When the primary fails over in the
middle of a session, the next command fails cleanly; deletions are committed
only at QUIT, by the primary of the moment.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid

from mailnode.errors import MailclusterError, NotOwner
from mailnode.interfaces import FrontEnd
from mailnode.passwords import hash_password, verify
from mailnode.pop3.server import MailboxBusy, MessageRef
from mailnode.proto import frontend_pb2 as pb
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.users import normalize

LOCK_IDLE = 600.0


class MailboxLocks:
    """mailbox -> (session, last used): one POP3 session per mailbox, on the primary."""

    def __init__(self):
        self._held: dict[str, tuple[str, float]] = {}

    def take(self, mailbox: str, session: str) -> bool:
        holder = self._held.get(mailbox)
        if holder is not None and holder[0] != session and time.monotonic() - holder[1] < LOCK_IDLE:
            return False
        self._held[mailbox] = (session, time.monotonic())
        return True

    def owns(self, mailbox: str, session: str) -> bool:
        holder = self._held.get(mailbox)
        if holder is None or holder[0] != session:
            return False
        self._held[mailbox] = (session, time.monotonic())
        return True

    def release(self, mailbox: str, session: str) -> None:
        if self._held.get(mailbox, ("",))[0] == session:
            del self._held[mailbox]


class Mailboxes:
    """The primary's operations, used in-process and by the gRPC Shard service alike."""

    def __init__(self, node: FrontEnd):
        self.node = node
        self.locks = MailboxLocks()

    async def authenticate(self, shard, user: str, password: str) -> pb.AuthReply:
        stored = await asyncio.to_thread(shard.state.users.get, user)
        # An unknown user costs a real check too, so timing does not tell which users exist.
        ok = await asyncio.to_thread(verify, stored or _dummy_hash(), password)
        return pb.AuthReply(mailbox=user if ok and stored is not None else "")

    async def open(self, shard, mailbox: str, session: str) -> pb.MailboxReply:
        if not self.locks.take(mailbox, session):
            return pb.MailboxReply(busy=True)
        await shard.caught_up()
        listing = await asyncio.to_thread(shard.state.mailboxes.listing, mailbox)
        return pb.MailboxReply(messages=[pb.MessageRef(uid=u, size=n) for u, n in listing])

    async def read(self, shard, mailbox: str, uid: str, session: str) -> pb.ReadReply:
        if not self.locks.owns(mailbox, session):
            raise NotOwner("the mailbox is not open in this session")
        data = await asyncio.to_thread(shard.state.mailboxes.read, mailbox, uid)
        return pb.ReadReply(found=data is not None, data=data or b"")

    async def expunge(self, shard, mailbox: str, uids: list[str], session: str) -> pb.ExpungeReply:
        if not self.locks.owns(mailbox, session):
            raise NotOwner("the mailbox is not open in this session")
        rec = JournalRecord()
        rec.expunged.mailbox = mailbox
        rec.expunged.uids.extend(uids)
        await shard.commit(rec, applied=True)
        return pb.ExpungeReply()

    def close(self, mailbox: str, session: str) -> pb.ExpungeReply:
        self.locks.release(mailbox, session)
        return pb.ExpungeReply()


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password of anyone")


class RoutedPop3Backend:
    """The POP3 (and submission AUTH) backend: each mailbox's operations on its shard's
    primary. ``local_only`` (a standalone node): on this node's copy whatever its role,
    so a standalone spare still serves reads (its deletions are refused)."""

    # A failover under the session: the client gets a clean -ERR, the log one line.
    expected_errors: tuple[type[BaseException], ...] = (MailclusterError,)

    def __init__(self, node: FrontEnd, *, local_only: bool = False):
        self.node = node
        self.local_only = local_only
        self._sessions: dict[str, str] = {}  # mailbox -> our session id at its primary

    def _shard(self, mailbox: str):
        return self.node.shard_id(mailbox)

    async def _call(self, mailbox: str, method: str, request, local):
        n = self._shard(mailbox)
        if self.local_only:
            return await local(self.node.shards[n])
        return await self.node.router.call_primary(
            n, method, request, lambda: local(self.node.shards[n])
        )

    async def authenticate(self, user: str, password: str) -> str | None:
        addr = normalize(user)
        if "@" not in addr:
            return None
        m = self.node.mailboxes
        reply = await self._call(
            addr,
            "Authenticate",
            pb.AuthRequest(shard=self._shard(addr), user=addr, password=password),
            lambda shard: m.authenticate(shard, addr, password),
        )
        return reply.mailbox or None

    async def open(self, mailbox: str) -> list[MessageRef]:
        session = uuid.uuid4().hex
        m = self.node.mailboxes
        reply = await self._call(
            mailbox,
            "OpenMailbox",
            pb.MailboxRequest(shard=self._shard(mailbox), mailbox=mailbox, session=session),
            lambda shard: m.open(shard, mailbox, session),
        )
        if reply.busy:  # the session holding it keeps its id here
            raise MailboxBusy(mailbox)
        self._sessions[mailbox] = session
        return [MessageRef(r.uid, r.size) for r in reply.messages]

    async def read(self, mailbox: str, uid: str) -> bytes | None:
        session, m = self._sessions.get(mailbox, ""), self.node.mailboxes
        reply = await self._call(
            mailbox,
            "ReadMessage",
            pb.ReadRequest(shard=self._shard(mailbox), mailbox=mailbox, uid=uid, session=session),
            lambda shard: m.read(shard, mailbox, uid, session),
        )
        return reply.data if reply.found else None

    async def expunge(self, mailbox: str, uids: list[str]) -> None:
        session, m = self._sessions.get(mailbox, ""), self.node.mailboxes
        await self._call(
            mailbox,
            "Expunge",
            pb.ExpungeRequest(
                shard=self._shard(mailbox), mailbox=mailbox, uids=uids, session=session
            ),
            lambda shard: m.expunge(shard, mailbox, uids, session),
        )

    async def close(self, mailbox: str) -> None:
        session = self._sessions.pop(mailbox, "")
        m = self.node.mailboxes

        async def local(shard):
            return m.close(mailbox, session)

        try:
            await self._call(
                mailbox,
                "CloseMailbox",
                pb.MailboxRequest(shard=self._shard(mailbox), mailbox=mailbox, session=session),
                local,
            )
        except Exception:
            pass  # the lock expires on its own when the primary is gone

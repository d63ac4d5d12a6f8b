"""IMAP on any node of a cluster: a session runs where its mailbox's shard is primary.

The node a client reached does the greeting, STARTTLS and the login (checked by
the primary, as POP3's is). Then, if the primary is another node, it opens the
``Shard.Imap`` stream there and pipes the client's bytes both ways; a session on
the primary serves them with the shard's index at hand. So every session of a
mailbox, whichever node it came through, is on one process: concurrent sessions
see each other's changes, and IDLE wakes from the applier, not by polling.

When the primary fails under a piped session the stream breaks and the client
gets ``* BYE [UNAVAILABLE]``; on reconnect the new primary serves it, with every
change that was answered OK (each was a committed journal record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import grpc

from mailnode import metrics
from mailnode.errors import MailclusterError, NotPrimary
from mailnode.frontend.pop3 import RoutedPop3Backend
from mailnode.imap.hub import Hub
from mailnode.imap.server import quickack
from mailnode.imap.session import MAX_LINE, Session
from mailnode.interfaces import FrontEnd
from mailnode.proto import frontend_pb2 as pb
from mailnode.users import normalize

log = logging.getLogger(__name__)

FRAME = 1 << 20  # octets of server output per gRPC message, at most
_QUEUE = 16  # frames in flight from a primary's session before it waits


class ImapFrontEnd:
    """The node's side of every IMAP session (mailnode.imap.session.Context)."""

    def __init__(
        self,
        node: FrontEnd,
        *,
        auth_failure_delay: float,
        idle_timeout: float,
        stale_reads: bool = False,
    ):
        self.node = node
        self.hostname = node.hostname
        self.tls_context = getattr(node, "tls_context", None)
        self.hub = Hub()
        self.auth_failure_delay = auth_failure_delay
        self.idle_timeout = idle_timeout
        self.max_message_size = node.config.smtp.max_message_size
        self.stale_reads = stale_reads
        self.stopping = False
        self._auth = RoutedPop3Backend(node, local_only=not node.agent.clustered)
        self._remote: set[asyncio.Task[Any]] = set()

    async def authenticate(self, user: str, password: str) -> str | None:
        try:
            return await self._auth.authenticate(user, password)
        except MailclusterError:
            spare = self.stale_shard(normalize(user))
            if spare is None:
                raise
            # No primary answers: with stale reads the spare's copy of the users checks.
            reply = await self.node.mailboxes.authenticate(spare, normalize(user), password)
            return reply.mailbox or None

    def local_shard(self, mailbox: str) -> Any | None:
        shard = self.node.shards.get(self.node.shard_id(mailbox))
        return shard if shard is not None and shard.accepting else None

    def stale_shard(self, mailbox: str) -> Any | None:
        if not self.stale_reads:
            return None
        shard = self.node.shards.get(self.node.shard_id(mailbox))
        return shard if shard is not None and shard.role == "spare" else None

    # -- the front end's side of a piped session ---------------------------------------
    async def pipe(self, session: Session, mailbox: str, ok: bytes) -> bool:
        if not self.node.agent.clustered:
            return False
        first = pb.ImapFrame(shard=self.node.shard_id(mailbox), mailbox=mailbox, peer=session.peer)
        try:
            opened = await self.node.router.imap_stream(first.shard, first)
        except Exception as e:
            log.warning("imap %s: no primary took %s: %s", session.peer, mailbox, e)
            return False
        if opened is None:
            return False  # it became primary here meanwhile: the client logs in again
        stream, target = opened
        try:
            await session.send(ok)
            await _splice(session, stream, self._moved(first.shard, target))
        finally:
            stream.cancel()
        return True

    async def _moved(self, shard_id: int, target: str) -> None:
        """Returns once the shard map names another primary than ``target``: a piped
        session whose primary's host vanished (no reset ever comes) ends then."""
        router = self.node.router
        while True:
            await router.wait_change(5.0)
            now = router.target(shard_id)
            if now is not None and now != target:
                return

    # -- the primary's side ------------------------------------------------------------
    async def serve_remote(self, request_iterator, context):
        """Shard.Imap: run a logged-in session whose client is on another node."""
        requests = request_iterator.__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            return
        shard = self.node.shards.get(first.shard)
        if shard is None or not shard.accepting or self.node.shard_id(first.mailbox) != first.shard:
            raise NotPrimary(f"{self.node.name} is not serving shard {first.shard} as primary")
        reader = asyncio.StreamReader(limit=MAX_LINE + 1024)
        out: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE)
        writer = _FrameWriter(out)
        session = Session(self, reader, writer, f"{first.peer} via gRPC", secure=True)
        session.mailbox, session.shard = first.mailbox, shard
        metrics.IMAP_SESSIONS.inc()  # the session's end takes it off

        async def pump() -> None:
            try:
                async for frame in requests:
                    reader.feed_data(frame.data)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                reader.feed_eof()

        async def run() -> None:
            try:
                await session.run(greet=False)
            except Exception:
                log.exception("imap %s: session failed", session.peer)
                writer.write(b"* BYE [SERVERBUG] Internal error\r\n")
                writer.flush_nowait()
            finally:
                try:
                    out.put_nowait(None)
                except asyncio.QueueFull:
                    pass  # the reader below sees the task done

        pumping = asyncio.ensure_future(pump())
        running = asyncio.ensure_future(run())
        self._remote.add(running)
        try:
            yield pb.ImapFrame(ready=True)
            while not (running.done() and out.empty()):
                get = asyncio.ensure_future(out.get())
                await asyncio.wait({get, running}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    continue
                data = get.result()
                if data is None:
                    break
                yield pb.ImapFrame(data=data)
        finally:
            self._remote.discard(running)
            pumping.cancel()
            running.cancel()

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self._remote:
            _, pending = await asyncio.wait(self._remote, timeout=grace)
            for t in pending:
                t.cancel()


class _FrameWriter:
    """A session's writer on the primary: what it writes goes back as frames."""

    def __init__(self, out: asyncio.Queue[bytes | None]):
        self._out = out
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self._buf += data

    async def drain(self) -> None:
        buf, self._buf = self._buf, bytearray()
        view = memoryview(buf)
        for i in range(0, len(view), FRAME):  # slices of one buffer: no copy of the rest
            await self._out.put(bytes(view[i : i + FRAME]))

    def flush_nowait(self) -> None:
        if self._buf:
            try:
                self._out.put_nowait(bytes(self._buf))
            except asyncio.QueueFull:
                pass
            self._buf = bytearray()


async def _splice(session: Session, stream, moved: Awaitable[None]) -> None:
    """Client bytes to the primary and back, until the primary's side ends, the client
    goes, or the shard map names another primary (``moved``)."""

    async def up() -> None:
        while True:
            data = await session.reader.read(65536)
            if not data:
                break
            await stream.write(pb.ImapFrame(data=data))
        await stream.done_writing()

    async def down() -> None:
        while True:  # read(), not iteration: the call's first frame was read() already
            frame = await stream.read()
            if frame is grpc.aio.EOF:
                return
            session.writer.write(frame.data)
            await session.writer.drain()
            if frame.data.startswith(b"+ ") or b"\r\n+ " in frame.data:
                quickack(session.writer)  # a continuation: the literal comes next

    upward, downward = asyncio.ensure_future(up()), asyncio.ensure_future(down())
    watch = asyncio.ensure_future(moved)
    try:
        await asyncio.wait({downward, watch, upward}, return_when=asyncio.FIRST_COMPLETED)
        if upward.done() and upward.exception() is None and not downward.done():
            # The client closed its side: the primary's session ends with it.
            await asyncio.wait({downward, watch}, return_when=asyncio.FIRST_COMPLETED)
        failed = watch.done() or (downward.done() and downward.exception() is not None)
        if failed:
            why = "the shard moved" if watch.done() else repr(downward.exception())
            log.info("imap %s: the primary's session ended: %s", session.peer, why)
            try:
                session.writer.write(
                    b"* BYE [UNAVAILABLE] This mailbox's server went away; reconnect\r\n"
                )
                await session.writer.drain()
            except ConnectionError:
                pass
    finally:
        for t in (upward, downward, watch):
            t.cancel()
        for t in (upward, downward):
            if t.done() and not t.cancelled():
                t.exception()  # retrieved: a reset connection is not an error here
        stream.cancel()

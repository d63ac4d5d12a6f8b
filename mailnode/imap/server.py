"""IMAP listeners: port 143 style (STARTTLS) and 993 style (TLS from the first byte).

One Session per connection on asyncio streams; what a session needs of the node
(authentication, the mailbox's shard, the pipe to a remote primary) is the
Context the node passes in (mailnode.frontend.imap).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from mailnode import metrics
from mailnode.imap.session import MAX_LINE, Context, Session
from mailnode.pop3.server import format_peer

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0


def quickack(writer) -> None:
    """Linux TCP_QUICKACK: the next segments are ACKed at once (it lapses by itself)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_QUICKACK"):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass


class ImapServer:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._servers: list[asyncio.Server] = []
        self._sessions: dict[asyncio.Task[Any], Session] = {}

    async def start(self, host: str, port: int, *, implicit_tls: bool) -> int:
        tls = self.ctx.tls_context if implicit_tls else None
        if implicit_tls and tls is None:
            raise ValueError("an implicit-TLS IMAP listener needs [tls] cert and key")

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, secure=implicit_tls)

        server = await asyncio.start_server(
            serve, host, port, ssl=tls, limit=MAX_LINE + 1024, reuse_address=True
        )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        log.info("imap: listening on %s port %d (%s)", host, bound, "TLS" if tls else "STARTTLS")
        return bound

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, secure: bool
    ) -> None:
        peer = format_peer(writer.get_extra_info("peername"))

        async def start_tls(context: ssl.SSLContext) -> None:
            await writer.start_tls(context, ssl_handshake_timeout=60.0)

        session = Session(
            self.ctx,
            reader,
            writer,
            peer,
            secure=secure,
            start_tls=start_tls,
            quickack=lambda: quickack(writer),
        )
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = session
        metrics.IMAP_CONNECTIONS.inc()
        try:
            await session.run()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("imap %s: session failed", peer)
        finally:
            metrics.IMAP_CONNECTIONS.dec()
            del self._sessions[task]
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
            except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
                # Cancelled: stop() ends the session; the connection goes without waiting.
                writer.transport.abort()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; idle sessions get BYE now, busy ones ``grace`` seconds."""
        for server in self._servers:
            server.close()
        self.ctx.stopping = True
        idle = [t for t, s in self._sessions.items() if s.idle]
        for t in idle:
            s = self._sessions[t]
            try:
                s.writer.write(b"* BYE [UNAVAILABLE] Server shutting down\r\n")
            except Exception:
                pass
            t.cancel()
        busy = set(self._sessions)
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

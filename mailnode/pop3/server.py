"""POP3 server: RFC 1939, RFC 2449 (CAPA, response codes), RFC 2595 (STLS).

One coroutine per connection on asyncio streams. Per-connection state lives in
`Pop3Session`, the maildrop snapshot of a logged-in session in `Maildrop`;
mail logic (passwords, locks, storage, the journal) belongs to the
`Pop3Backend` the node passes in. Deletions reach the backend only at QUIT.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_LINE = 512  # octets per command line, CRLF included (RFC 2449 section 4)
MAX_AUTH_FAILURES = 3  # per connection; the third failure closes it
_READ_LIMIT = 4096  # stream buffer limit; longer lines are discarded in chunks
_CLOSE_TIMEOUT = 5.0  # how long to wait for a transport (and TLS shutdown) to close

ERR_PLAINTEXT = (
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use STLS"
)
ERR_AUTH_FAILED = "-ERR [AUTH] Authentication failed"
ERR_IN_USE = "-ERR [IN-USE] Mailbox is locked by another session"
ERR_NOT_COMMITTED = "-ERR [SYS/TEMP] Deletions not committed"
ERR_INTERNAL = "-ERR [SYS/TEMP] Internal server error"
ERR_UNAVAILABLE = "-ERR [SYS/TEMP] Mailbox temporarily unavailable; try again later"
ERR_SHUTDOWN = "-ERR [SYS/TEMP] Server shutting down"
ERR_IDLE = "-ERR Disconnected for inactivity"
ERR_UNKNOWN = "-ERR Unknown command"
ERR_LINE_TOO_LONG = "-ERR Line too long"
ERR_BAD_STATE = "-ERR Command not valid in this state"
ERR_SYNTAX = "-ERR Syntax error"
ERR_NO_USER = "-ERR Send USER first"
ERR_NO_MESSAGE = "-ERR No such message"
ERR_DELETED = "-ERR Message already deleted"
ERR_REMOVED = "-ERR Message was removed"
ERR_NO_STLS = "-ERR STLS not available"
OK_STLS = "+OK Begin TLS negotiation"


@dataclass(frozen=True)
class MessageRef:
    uid: str  # stable unique id (Maildir base name); used for UIDL
    size: int  # exact size in octets of the stored bytes


class MailboxBusy(Exception):
    """Raised by Pop3Backend.open when another session holds the mailbox."""


class Pop3Backend(Protocol):
    # Failures a backend expects in normal operation (its mailbox's primary failed over):
    # logged as one line, not as a traceback. Optional.
    expected_errors: tuple[type[BaseException], ...]

    async def authenticate(self, user: str, password: str) -> str | None:
        """Canonical mailbox address when user/password are right, else None."""

    async def open(self, mailbox: str) -> list[MessageRef]:
        """Take the mailbox's exclusive session lock and list its messages (maildrop snapshot). Raises MailboxBusy."""

    async def read(self, mailbox: str, uid: str) -> bytes | None:
        """The stored bytes, or None when the message has gone."""

    async def expunge(self, mailbox: str, uids: list[str]) -> None:
        """Durably remove these messages (a journal record committed before it returns). Raises on failure."""

    async def close(self, mailbox: str) -> None:
        """Release the lock taken by open()."""


class Pop3Metrics:
    """Counter hooks; the node subclasses this to wire prometheus. Defaults do nothing."""

    def session_started(self) -> None: ...
    def session_ended(self) -> None: ...
    def login_failed(self) -> None: ...
    def retrieved(self, nbytes: int) -> None: ...


def dot_stuff(data: bytes) -> bytes:
    """`data` as a multi-line response body, terminator included (RFC 1939 section 3).

    A "." is doubled after every LF, not only after CRLF: a stored bare LF
    followed by "." would otherwise end the response early in clients that
    split lines on LF, and the rest would be read as replies to later commands.
    """
    body = data.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def top_of(data: bytes, lines: int) -> bytes:
    """The header, the blank line after it, and `lines` lines of the body."""
    if data.startswith((b"\r\n", b"\n")):
        end = data.index(b"\n") + 1
    else:
        ends = [i + len(sep) for sep in (b"\n\r\n", b"\n\n") if (i := data.find(sep)) >= 0]
        end = min(ends, default=len(data))
    for _ in range(lines):
        newline = data.find(b"\n", end)
        if newline < 0:
            return data
        end = newline + 1
    return data[:end]


def _peer_is_loopback(peername: Any) -> bool:
    try:
        addr = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except (TypeError, ValueError, IndexError):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def format_peer(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        return ("[%s]:%s" if ":" in peername[0] else "%s:%s") % peername[:2]
    return str(peername)


# Which verbs each state accepts; a verb is handled by Pop3Session.pop_<verb>.
_VERBS = {
    "AUTHORIZATION": frozenset({"CAPA", "QUIT", "STLS", "USER", "PASS"}),
    "TRANSACTION": frozenset(
        {"CAPA", "QUIT", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP"}
    ),
}
_ALL_VERBS = frozenset().union(*_VERBS.values())


class _Refusal(Exception):
    """The command is refused; the argument is the reply line."""


class _ClientGone(Exception):
    """The client stopped reading or the connection broke."""


@dataclass
class Maildrop:
    """The snapshot taken by Pop3Backend.open plus the DELE marks of this session."""

    mailbox: str
    messages: tuple[MessageRef, ...]
    deleted: set[int] = field(default_factory=set)  # 1-based message numbers

    def visible(self) -> list[tuple[int, MessageRef]]:
        return [(n, ref) for n, ref in enumerate(self.messages, 1) if n not in self.deleted]

    def totals(self) -> tuple[int, int]:
        visible = self.visible()
        return len(visible), sum(ref.size for _, ref in visible)

    def get(self, arg: str) -> tuple[int, MessageRef]:
        n = _number(arg)
        if not 1 <= n <= len(self.messages):
            raise _Refusal(ERR_NO_MESSAGE)
        if n in self.deleted:
            raise _Refusal(ERR_DELETED)
        return n, self.messages[n - 1]


def _number(arg: str) -> int:
    if not (arg.isascii() and arg.isdigit()):
        raise _Refusal(ERR_SYNTAX)
    return int(arg)


class Pop3Session:
    """One connection, from greeting to close."""

    def __init__(
        self, server: Pop3Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.server = server
        self.backend = server.backend
        self.reader = reader
        self.writer = writer
        peername = writer.get_extra_info("peername")
        self.peer = format_peer(peername)
        self.loopback = _peer_is_loopback(peername)
        self.tls_active = False
        self.user: str | None = None  # name given by USER, awaiting PASS
        self.failures = 0
        self.maildrop: Maildrop | None = None  # set in TRANSACTION state
        self.idle = False  # waiting for a command; stop() may end it now
        self.closing = False  # QUIT or too many failures: end after this reply

    @property
    def state(self) -> str:
        return "AUTHORIZATION" if self.maildrop is None else "TRANSACTION"

    async def run(self) -> None:
        try:
            await self._send(f"+OK {self.server.hostname} POP3 ready")
            while not self.closing:
                if self.server.stopping:
                    self.writer.write(f"{ERR_SHUTDOWN}\r\n".encode())
                    break
                try:
                    line = await self._next_line()
                    if line is None:
                        log.info("%s: client disconnected in %s state", self.peer, self.state)
                        break
                    await self._dispatch(line)
                except _Refusal as refusal:
                    await self._send(str(refusal))
        except TimeoutError:
            log.info("%s: closing idle session after %.0fs", self.peer, self.server.idle_timeout)
            self.writer.write(f"{ERR_IDLE}\r\n".encode())
        except (_ClientGone, ConnectionError, ssl.SSLError) as exc:
            log.info("%s: connection lost: %r", self.peer, exc.__cause__ or exc)
        except Exception:
            log.exception("%s: session failed", self.peer)
        finally:
            await self._release()
            await self._close_transport()

    async def _next_line(self) -> bytes | None:
        self.idle = True
        try:
            return await asyncio.wait_for(self._read_line(), self.server.idle_timeout)
        finally:
            self.idle = False

    async def _read_line(self) -> bytes | None:
        too_long = False
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as exc:
                await self.reader.readexactly(exc.consumed)  # already buffered: discard it
                too_long = True
                continue
            if too_long or len(line) > MAX_LINE:
                raise _Refusal(ERR_LINE_TOO_LONG)
            return line

    async def _dispatch(self, line: bytes) -> None:
        try:
            text = line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")  # UTF-8 passwords
        except UnicodeDecodeError:
            raise _Refusal(ERR_UNKNOWN) from None
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb not in _ALL_VERBS:
            log.debug("%s: unknown command (%d octets)", self.peer, len(line))  # may be a password
            raise _Refusal(ERR_UNKNOWN)
        if verb not in _VERBS[self.state]:
            raise _Refusal(ERR_BAD_STATE)
        try:
            await getattr(self, f"pop_{verb.lower()}")(arg)
        except (_Refusal, _ClientGone):
            raise
        except Exception as exc:
            expected = self._failed(exc, f"{verb} failed in {self.state} state")
            raise _Refusal(ERR_UNAVAILABLE if expected else ERR_INTERNAL) from None

    def _failed(self, exc: Exception, what: str) -> bool:
        """Log a failed command; True when the backend expects this kind (one line, no
        traceback: a failover under the session), False for a bug (with traceback)."""
        if isinstance(exc, getattr(self.backend, "expected_errors", ())):
            log.warning(
                "%s: %s: %s: %s", self.peer, what, type(exc).__name__, " ".join(str(exc).split())
            )
            return True
        log.exception("%s: %s", self.peer, what)
        return False

    async def _write(self, *chunks: bytes) -> None:
        self.writer.writelines(chunks)
        try:
            await asyncio.wait_for(self.writer.drain(), self.server.idle_timeout)
        except (ConnectionError, TimeoutError) as exc:
            raise _ClientGone() from exc

    async def _send(self, line: str) -> None:
        await self._write(f"{line}\r\n".encode())

    async def _send_multi(self, first: str, lines: list[str]) -> None:
        await self._write("".join(f"{line}\r\n" for line in [first, *lines, "."]).encode())

    async def _release(self) -> None:
        if self.maildrop is None:
            return
        mailbox, self.maildrop = self.maildrop.mailbox, None
        try:
            await self.backend.close(mailbox)
        except Exception:
            log.exception("%s: releasing mailbox %s failed", self.peer, mailbox)

    async def _close_transport(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), _CLOSE_TIMEOUT)
        except TimeoutError:
            self.writer.transport.abort()
        except (ConnectionError, ssl.SSLError):
            pass

    # -- AUTHORIZATION state -------------------------------------------------

    def _check_plaintext_allowed(self) -> None:
        if not (self.tls_active or self.loopback):
            raise _Refusal(ERR_PLAINTEXT)

    async def pop_capa(self, arg: str) -> None:
        caps = ["TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"]
        if self.server.tls_context is not None and not self.tls_active and self.maildrop is None:
            caps.append("STLS")
        caps.append("IMPLEMENTATION mailcluster")
        await self._send_multi("+OK Capability list follows", caps)

    async def pop_stls(self, arg: str) -> None:
        if self.server.tls_context is None or self.tls_active:
            raise _Refusal(ERR_NO_STLS)
        # Commands pipelined behind STLS arrived in cleartext; executing them
        # as if sent over TLS is the STARTTLS injection hole (CVE-2011-0411).
        pending = getattr(self.reader, "_buffer", None)
        if pending:
            log.warning(
                "%s: discarding %d cleartext octets sent after STLS", self.peer, len(pending)
            )
            pending.clear()
        # No await between the reply and start_tls() (whose drain does not yield
        # on an idle connection): the ClientHello must reach the TLS protocol,
        # not the plaintext stream buffer.
        self.writer.write(f"{OK_STLS}\r\n".encode())
        try:
            await self.writer.start_tls(
                self.server.tls_context, ssl_handshake_timeout=min(self.server.idle_timeout, 60.0)
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise _ClientGone() from exc
        self.tls_active = True
        self.user = None
        log.info("%s: TLS active (%s)", self.peer, self.writer.get_extra_info("cipher"))

    async def pop_user(self, arg: str) -> None:
        self._check_plaintext_allowed()
        name = arg.strip()
        if not name:
            raise _Refusal(ERR_SYNTAX)
        self.user = name
        await self._send("+OK")

    async def pop_pass(self, arg: str) -> None:
        self._check_plaintext_allowed()
        if self.user is None:
            raise _Refusal(ERR_NO_USER)
        user, self.user = self.user, None
        mailbox = await self.backend.authenticate(user, arg)  # arg is the password: never log it
        if mailbox is None:
            await self._login_failed(user)
            return
        try:
            messages = tuple(await self.backend.open(mailbox))
        except MailboxBusy:
            log.info(
                "%s: %s refused: mailbox %s is locked by another session", self.peer, user, mailbox
            )
            raise _Refusal(ERR_IN_USE) from None
        self.maildrop = Maildrop(mailbox, messages)
        count, octets = self.maildrop.totals()
        log.info(
            "%s: %s logged in to %s (%d messages, %d octets)",
            self.peer,
            user,
            mailbox,
            count,
            octets,
        )
        await self._send(f"+OK Logged in, {count} messages ({octets} octets)")

    async def _login_failed(self, user: str) -> None:
        self.failures += 1
        self.server.metrics.login_failed()
        self.closing = self.failures >= MAX_AUTH_FAILURES
        log.info(
            "%s: login failed for %r (%d of %d)%s",
            self.peer,
            user,
            self.failures,
            MAX_AUTH_FAILURES,
            ", closing" if self.closing else "",
        )
        await asyncio.sleep(self.server.auth_failure_delay)
        await self._send(ERR_AUTH_FAILED)

    async def pop_quit(self, arg: str) -> None:
        self.closing = True
        if self.maildrop is not None:
            mailbox = self.maildrop.mailbox
            uids = [self.maildrop.messages[n - 1].uid for n in sorted(self.maildrop.deleted)]
            if uids:
                try:
                    await self.backend.expunge(mailbox, uids)
                except Exception as exc:
                    self._failed(exc, f"expunge of {len(uids)} messages from {mailbox} failed")
                    raise _Refusal(ERR_NOT_COMMITTED) from None
                log.info("%s: expunged %d messages from %s at QUIT", self.peer, len(uids), mailbox)
            # Release before answering, so that a client reconnecting at once finds the lock free.
            await self._release()
        await self._send(f"+OK {self.server.hostname} POP3 server signing off")

    # -- TRANSACTION state ---------------------------------------------------

    @property
    def _drop(self) -> Maildrop:
        assert self.maildrop is not None
        return self.maildrop

    async def pop_stat(self, arg: str) -> None:
        count, octets = self._drop.totals()
        await self._send(f"+OK {count} {octets}")

    async def pop_list(self, arg: str) -> None:
        count, octets = self._drop.totals()
        await self._listing(arg, f"+OK {count} messages ({octets} octets)", lambda ref: ref.size)

    async def pop_uidl(self, arg: str) -> None:
        await self._listing(arg, "+OK", lambda ref: ref.uid)

    async def _listing(self, arg: str, first: str, column: Callable[[MessageRef], object]) -> None:
        if arg.strip():
            n, ref = self._drop.get(arg.strip())
            await self._send(f"+OK {n} {column(ref)}")
        else:
            await self._send_multi(first, [f"{n} {column(ref)}" for n, ref in self._drop.visible()])

    async def _read_message(self, ref: MessageRef) -> bytes:
        data = await self.backend.read(self._drop.mailbox, ref.uid)
        if data is None:
            raise _Refusal(ERR_REMOVED)
        return data

    async def pop_retr(self, arg: str) -> None:
        _, ref = self._drop.get(arg.strip())
        data = await self._read_message(ref)
        await self._write(f"+OK {len(data)} octets\r\n".encode(), dot_stuff(data))
        self.server.metrics.retrieved(len(data))

    async def pop_top(self, arg: str) -> None:
        args = arg.split()
        if len(args) != 2:
            raise _Refusal(ERR_SYNTAX)
        _, ref = self._drop.get(args[0])
        lines = _number(args[1])
        data = top_of(await self._read_message(ref), lines)
        await self._write(b"+OK\r\n", dot_stuff(data))
        self.server.metrics.retrieved(len(data))

    async def pop_dele(self, arg: str) -> None:
        n, _ = self._drop.get(arg.strip())
        self._drop.deleted.add(n)
        await self._send(f"+OK Message {n} deleted")

    async def pop_rset(self, arg: str) -> None:
        self._drop.deleted.clear()
        count, octets = self._drop.totals()
        await self._send(f"+OK {count} messages ({octets} octets)")

    async def pop_noop(self, arg: str) -> None:
        await self._send("+OK")


class Pop3Server:
    """Accepts connections and runs one Pop3Session per connection."""

    def __init__(
        self,
        backend: Pop3Backend,
        *,
        hostname: str,
        tls_context: ssl.SSLContext | None = None,
        auth_failure_delay: float = 1.0,
        idle_timeout: float = 600.0,
        metrics: Pop3Metrics | None = None,
    ):
        self.backend = backend
        self.hostname = hostname
        self.tls_context = tls_context
        self.auth_failure_delay = auth_failure_delay
        self.idle_timeout = idle_timeout
        self.metrics = metrics or Pop3Metrics()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[Any], Pop3Session] = {}

    async def start(self, host: str, port: int) -> None:
        self.stopping = False
        self._server = await asyncio.start_server(self._serve, host, port, limit=_READ_LIMIT)
        log.info("pop3: listening on %s port %d", host, self.port)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("Pop3Server is not started")
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Pop3Session(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = session
        try:
            self.metrics.session_started()
            await session.run()
        except asyncio.CancelledError:
            pass  # stop() ended the session; it has already cleaned up
        finally:
            del self._sessions[task]
            self.metrics.session_ended()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; end idle sessions now, give busy ones `grace` seconds, then cancel them."""
        if self._server is None:
            return
        server, self._server = self._server, None
        self.stopping = True
        server.close()
        idle = [task for task, session in self._sessions.items() if session.idle]
        for task in idle:
            self._sessions[task].writer.write(f"{ERR_SHUTDOWN}\r\n".encode())
            task.cancel()
        busy = set(self._sessions)
        pending: set[asyncio.Task[Any]] = set()
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=grace)
            if stuck:
                log.error("pop3: %d sessions did not end after cancellation", len(stuck))
        log.info(
            "pop3: stopped: %d idle sessions closed, %d finished within %.1fs grace, %d cancelled",
            len(idle),
            len(busy) - len(idle) - len(pending),
            grace,
            len(pending),
        )
        await server.wait_closed()

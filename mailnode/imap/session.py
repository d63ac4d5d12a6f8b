"""One IMAP connection: RFC 3501 and RFC 9051 with the extensions in CAPABILITIES.

A session starts on whichever node the client reached (greeting, STARTTLS,
LOGIN/AUTHENTICATE). Once logged in it runs where the mailbox's shard is primary:
in this process when that is here; otherwise the front end pipes the client's
bytes to the primary (``Context.pipe``) and a session there carries on in the
authenticated state. Reads come from the primary's index and Maildir; every change
is a journal record committed on the primary (``mailnode.store.commands``) and
applied before the answer, so it is replicated, archived and restorable.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mailnode import metrics
from mailnode.errors import AlreadyExists, MailclusterError, NotFound, NotPrimary, Refused
from mailnode.imap import fastsearch, view
from mailnode.imap.encode import astring, flag_list, imap_date, quoted_or_literal
from mailnode.imap.hub import Hub
from mailnode.imap.message import CACHED_FIELDS, ParsedMessage
from mailnode.imap.parser import (
    BadCharset,
    Command,
    FetchAtt,
    ParseError,
    SequenceSet,
    literal_at_end,
    mutf7_decode,
    mutf7_encode,
    parse_command,
    tag_of,
)
from mailnode.imap.search import Candidate, matches, needs_content
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.store import commands
from mailnode.store.mailboxes import DELIMITER, INBOX, SPECIAL_USE, Message, copy_name
from mailnode.store.maildir import message_name

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # octets of one command line outside literals
MAX_COMMAND = 64 * 1024 * 1024  # a whole command with its literals, at most
MAX_LITERAL_BEFORE_LOGIN = 8192  # a user name or password, not a mailbox to buffer
FETCH_BYTES = 8 << 20  # FETCH output rendered per thread hop, at most (then it is sent)
LOGIN_TIMEOUT = 60.0  # an AUTHENTICATE continuation is answered within this
MAX_AUTH_FAILURES = 3
FETCH_CHUNK = 200  # messages rendered per thread hop: a big FETCH streams
IDLE_POLL = 1.0  # seconds between an IDLE session's checks that its shard is still served
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

BASE_CAPABILITIES = (
    "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE LITERAL+ IDLE NAMESPACE UNSELECT UIDPLUS MOVE "
    "CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC ESEARCH QUOTA "
    "QUOTA=RES-STORAGE QUOTA=RES-MESSAGE UTF8=ACCEPT BINARY STATUS=SIZE"
)


class Context(Protocol):
    """What a session needs of its node."""

    hostname: str
    tls_context: ssl.SSLContext | None
    hub: Hub
    auth_failure_delay: float
    idle_timeout: float
    max_message_size: int
    stopping: bool

    async def authenticate(self, user: str, password: str) -> str | None: ...

    def local_shard(self, mailbox: str) -> Any | None:
        """The mailbox's shard when it is primary here, else None."""

    def stale_shard(self, mailbox: str) -> Any | None:
        """This node's spare copy of the mailbox's shard when the operator allows
        stale reads ([imap] stale_reads), else None."""

    async def pipe(self, session: Session, mailbox: str, ok: bytes) -> bool:
        """Serve the rest of the session on the mailbox's primary elsewhere: True when
        it did (the connection is then done), False when no primary took it."""


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...


class ClientGone(Exception):
    pass


class Bye(Exception):
    """End the session with this untagged BYE text."""


class No(Exception):
    """The command fails: tagged NO with ``code`` (RFC 5530) and text."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code, self.text = code, text


class Bad(Exception):
    def __init__(self, text: str, code: str = "CLIENTBUG", tag: str | None = None):
        super().__init__(text)
        self.code, self.text, self.tag = code, text, tag


def _no_for(e: MailclusterError) -> No:
    if isinstance(e, AlreadyExists):
        return No("ALREADYEXISTS", str(e))
    if isinstance(e, NotFound):
        return No("NONEXISTENT", str(e))
    if isinstance(e, Refused):
        return No("CANNOT", str(e))
    return No("UNAVAILABLE", "Mailbox temporarily unavailable, try again")


@dataclass
class Selected:
    """A selected folder as this session has told its client: UIDs in sequence order,
    the flags and modseqs last reported, and the highest modseq applied."""

    folder_id: int
    name: str
    uidvalidity: int
    readonly: bool
    uids: list[int]
    flags: dict[int, tuple[str, ...]]
    modseqs: dict[int, int]
    highest: int
    deferred: set[int] = field(default_factory=set)  # expunged, not yet told (FETCH etc.)

    def seq(self, uid: int) -> int:
        """1-based sequence number of a UID in the view, 0 when absent."""
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else 0


class Session:
    def __init__(
        self,
        ctx: Context,
        reader: asyncio.StreamReader,
        writer: Writer,
        peer: str,
        *,
        secure: bool,
        start_tls: Callable[[ssl.SSLContext], Awaitable[None]] | None = None,
        quickack: Callable[[], None] | None = None,
    ):
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.secure = secure
        self._start_tls = start_tls
        # After a continuation request: ACK the literal at once. A client that writes
        # the literal and its CRLF apart (imaplib) waits for that ACK (Nagle), and the
        # kernel would delay it 40 ms, as we send nothing until the command is whole.
        self._quickack = quickack
        self.mailbox: str | None = None  # the logged-in address
        self.shard: Any = None
        self.selected: Selected | None = None
        self.enabled: set[str] = set()
        self.failures = 0
        self.idle = False  # waiting for a command: stop() may end it now
        self.done = False
        self.stale = False  # serving a spare's copy: reads only
        self._event: asyncio.Event | None = None  # the hub's, while a folder is selected
        self._tag = "*"

    # -- capabilities -----------------------------------------------------------------
    def capabilities(self) -> str:
        caps = [BASE_CAPABILITIES, f"APPENDLIMIT={self.ctx.max_message_size}"]
        if self.mailbox is None:
            if self.secure:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
                if self.ctx.tls_context is not None:
                    caps.append("STARTTLS")
        return " ".join(caps)

    @property
    def addr(self) -> str:
        """The logged-in address (only after login)."""
        assert self.mailbox is not None
        return self.mailbox

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    # -- I/O --------------------------------------------------------------------------
    async def send(self, *chunks: bytes) -> None:
        for c in chunks:
            self.writer.write(c)
        try:
            await asyncio.wait_for(self.writer.drain(), self.ctx.idle_timeout)
        except (ConnectionError, TimeoutError) as e:
            raise ClientGone() from e

    async def untagged(self, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else text.encode()
        await self.send(b"* " + data + b"\r\n")

    async def _readline(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise ClientGone() from e
            raise ClientGone() from None
        except asyncio.LimitOverrunError as e:
            head = bytes(getattr(self.reader, "_buffer", b"")[:256])  # its tag, for a tagged BAD
            await self._discard_line(e.consumed)
            raise Bad("Command line too long", tag=tag_of(head)) from None
        if len(line) > MAX_LINE:
            raise Bad("Command line too long", tag=tag_of(line))
        return line

    async def _discard_line(self, consumed: int) -> None:
        try:
            await self.reader.readexactly(consumed)
            while True:
                try:
                    await self.reader.readuntil(b"\n")
                    return
                except asyncio.LimitOverrunError as e:
                    await self.reader.readexactly(e.consumed)
        except asyncio.IncompleteReadError as e:
            raise ClientGone() from e

    async def read_command(self) -> bytes:
        """One whole command, literals inline; a synchronising literal is answered with
        a continuation request first (LITERAL+ ones are not)."""
        line = await self._readline()
        tag = tag_of(line)
        data = bytearray(line)
        limit = (
            MAX_LITERAL_BEFORE_LOGIN
            if self.mailbox is None
            else min(MAX_COMMAND, self.ctx.max_message_size + MAX_LINE)
        )
        while True:
            try:
                lit = literal_at_end(line)
            except ParseError as e:
                raise Bad(e.text, tag=tag) from None
            if lit is None:
                return bytes(data)
            size, nonsync = lit
            if size + len(data) > limit:
                why = f"Literals are at most {limit} octets here"
                if not nonsync:  # refused before the client sends it
                    raise Bad(why, "TOOBIG", tag)
                await self._skip(size)
                await self._discard_rest()
                raise Bad(why, "TOOBIG", tag)
            if not nonsync:
                await self.send(b"+ Ready for literal data\r\n")
                if self._quickack is not None:
                    self._quickack()
            try:
                data += await self.reader.readexactly(size)
            except asyncio.IncompleteReadError as e:
                raise ClientGone() from e
            line = await self._readline()
            data += line

    async def _skip(self, size: int) -> None:
        while size:
            chunk = await self.reader.read(min(size, 1 << 20))
            if not chunk:
                raise ClientGone()
            size -= len(chunk)

    async def _discard_rest(self) -> None:
        """The rest of a refused command: lines and the literals they announce."""
        while True:
            line = await self._readline()
            lit = literal_at_end(line)
            if lit is None:
                return
            await self._skip(lit[0])

    # -- the loop -----------------------------------------------------------------------
    async def run(self, greet: bool = True) -> None:
        try:
            if greet:
                await self.untagged(
                    f"OK [CAPABILITY {self.capabilities()}] {self.ctx.hostname} IMAP ready"
                )
            while not self.done:
                if self.ctx.stopping:
                    raise Bye("[UNAVAILABLE] Server shutting down")
                self.idle = True
                try:
                    raw = await asyncio.wait_for(self.read_command(), self.ctx.idle_timeout)
                except Bad as e:
                    await self.send(f"{e.tag or '*'} BAD [{e.code}] {e.text}\r\n".encode())
                    continue
                finally:
                    self.idle = False
                await self.handle(raw)
        except TimeoutError:
            await self._bye("Autologout; idle for too long")
        except Bye as e:
            await self._bye(str(e))
        except (ClientGone, ConnectionError, ssl.SSLError) as e:
            log.info("imap %s: connection lost: %r", self.peer, e.__cause__ or e)
        finally:
            self._unselect()
            if self.shard is not None and self.mailbox is not None:
                metrics.IMAP_SESSIONS.dec()

    async def _bye(self, text: str) -> None:
        try:
            await self.untagged(f"BYE {text}")
        except (ClientGone, ConnectionError):
            pass

    async def handle(self, raw: bytes) -> None:
        try:
            cmd = parse_command(raw)
        except BadCharset as e:
            await self.send(
                f"{e.tag or '*'} NO [BADCHARSET (UTF-8 US-ASCII)] {e.text}\r\n".encode()
            )
            return
        except ParseError as e:
            await self.send(f"{e.tag or '*'} BAD [CLIENTBUG] {e.text}\r\n".encode())
            return
        self._tag = cmd.tag
        handler = getattr(self, f"cmd_{cmd.name.lower()}", None)
        state_ok = self._state_allows(cmd.name)
        try:
            if handler is None:
                raise Bad(f"{cmd.name} is not supported")
            if not state_ok:
                raise Bad(f"{cmd.name} is not valid in this state")
            text = await handler(cmd)
            if not self.done or cmd.name == "LOGOUT":
                await self.send(f"{cmd.tag} OK {text or cmd.name + ' completed'}\r\n".encode())
            result = "ok"
        except _Answered:
            result = "ok"
        except No as e:
            result = "no"
            await self.send(f"{cmd.tag} NO [{e.code}] {_line(e.text)}\r\n".encode())
        except Bad as e:
            result = "bad"
            await self.send(f"{cmd.tag} BAD [{e.code}] {_line(e.text)}\r\n".encode())
        except NotPrimary as e:
            log.info("imap %s: %s: %s", self.peer, cmd.name, e)
            if self.stale:
                await self.send(
                    f"{cmd.tag} NO [UNAVAILABLE] A read-only copy: changes wait for the "
                    "mailbox's server\r\n".encode()
                )
                return
            await self.send(
                f"{cmd.tag} NO [UNAVAILABLE] This mailbox moved to another node\r\n".encode()
            )
            raise Bye("[UNAVAILABLE] Mailbox moved to another node; reconnect") from None
        except MailclusterError as e:
            result = "no"
            log.info("imap %s: %s: %s", self.peer, cmd.name, e)
            n = _no_for(e)
            await self.send(f"{cmd.tag} NO [{n.code}] {_line(n.text)}\r\n".encode())
        except (ClientGone, Bye, ConnectionError, ssl.SSLError):
            raise
        except Exception:
            result = "error"
            log.exception("imap %s: %s failed", self.peer, cmd.name)
            await self.send(f"{cmd.tag} NO [SERVERBUG] Internal error, try again\r\n".encode())
        metrics.IMAP_COMMANDS.labels(cmd.name, result).inc()

    _ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
    _NOT_AUTH = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
    _SELECTED = frozenset(
        {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"}
    )

    def _state_allows(self, name: str) -> bool:
        if name in self._ANY:
            return True
        if name in self._NOT_AUTH:
            return self.mailbox is None
        if self.mailbox is None:
            return False
        if name == "ENABLE":  # RFC 5161 3.1: before any mailbox is selected
            return self.selected is None
        return name not in self._SELECTED or self.selected is not None

    # -- any state ----------------------------------------------------------------------
    async def cmd_capability(self, cmd: Command) -> None:
        await self.untagged(f"CAPABILITY {self.capabilities()}")

    async def cmd_noop(self, cmd: Command) -> None:
        await self.refresh()

    async def cmd_logout(self, cmd: Command) -> None:
        await self.untagged("BYE Logging out")
        self.done = True

    async def cmd_id(self, cmd: Command) -> None:
        params = cmd.args["params"]
        if params:
            log.info("imap %s: client id %s", self.peer, _line(repr(params), 200))
        await self.untagged('ID ("name" "mailcluster" "vendor" "mailcluster")')

    # -- not authenticated --------------------------------------------------------------
    async def cmd_starttls(self, cmd: Command) -> str | None:
        if self.secure or self.ctx.tls_context is None or self._start_tls is None:
            raise Bad("TLS is active already or not offered")
        # Commands pipelined behind STARTTLS came in cleartext (CVE-2011-0411).
        pending = getattr(self.reader, "_buffer", None)
        if pending:
            pending.clear()
        self.writer.write(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
        try:
            await self._start_tls(self.ctx.tls_context)
        except (OSError, TimeoutError) as e:
            raise ClientGone() from e
        self.secure = True
        raise _Answered()

    async def cmd_login(self, cmd: Command) -> str | None:
        return await self._login(cmd.args["user"], cmd.args["password"])

    async def cmd_authenticate(self, cmd: Command) -> str | None:
        if cmd.args["mechanism"] != "PLAIN":
            raise No("CANNOT", "Only AUTHENTICATE PLAIN is offered")
        if not self.secure:
            raise No("PRIVACYREQUIRED", "Authentication only under TLS; use STARTTLS")
        initial = cmd.args["initial"]
        if initial is None:
            await self.send(b"+ \r\n")
            try:
                line = await asyncio.wait_for(self._readline(), LOGIN_TIMEOUT)
            except TimeoutError:
                raise Bye("Authentication timed out") from None
            line = line.rstrip(b"\r\n")
            if line == b"*":
                raise Bad("Authentication cancelled")
            initial = line.decode("ascii", "replace")
        try:
            raw = base64.b64decode("" if initial == "=" else initial, validate=True)
            authz, user, password = raw.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Bad("Malformed PLAIN response") from None
        if authz and authz.lower() != user.lower():
            raise No("AUTHORIZATIONFAILED", "Acting as another user is not allowed")
        return await self._login(user, password)

    async def _login(self, user: str, password: str) -> str | None:
        if not self.secure:
            raise No("PRIVACYREQUIRED", "Authentication only under TLS; use STARTTLS")
        mailbox = await self.ctx.authenticate(user, password)
        if mailbox is None:
            self.failures += 1
            metrics.IMAP_LOGIN_FAILURES.inc()
            await asyncio.sleep(self.ctx.auth_failure_delay)
            if self.failures >= MAX_AUTH_FAILURES:
                await self.send(
                    f"{self._tag} NO [AUTHENTICATIONFAILED] Authentication failed\r\n".encode()
                )
                raise Bye("Too many authentication failures")
            raise No("AUTHENTICATIONFAILED", "Authentication failed")
        self.mailbox = mailbox
        log.info("imap %s: %s logged in", self.peer, mailbox)
        shard = self.ctx.local_shard(mailbox)
        if shard is not None:
            self.shard = shard
            metrics.IMAP_SESSIONS.inc()
            return f"[CAPABILITY {self.capabilities()}] Logged in"
        # The primary is elsewhere and serves the rest, once this tagged OK is out.
        ok = f"{self._tag} OK [CAPABILITY {self.capabilities()}] Logged in\r\n".encode()
        if await self.ctx.pipe(self, mailbox, ok):
            self.done = True
            raise _Answered()
        spare = self.ctx.stale_shard(mailbox)
        if spare is None:
            self.mailbox = None
            raise No("UNAVAILABLE", "Mailbox temporarily unavailable, try again")
        # The operator allows stale reads: this node's spare copy, read-only.
        self.shard, self.stale = spare, True
        metrics.IMAP_SESSIONS.inc()
        log.info("imap %s: %s served read-only from a spare copy", self.peer, mailbox)
        await self.untagged(f"CAPABILITY {self.capabilities()}")
        return "[ALERT] Logged in to a read-only copy: the mailbox's server is unavailable"

    # -- authenticated ------------------------------------------------------------------
    async def cmd_enable(self, cmd: Command) -> None:
        known = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}
        new = []
        for cap in cmd.args["capabilities"]:
            if cap in known and cap not in self.enabled:
                self.enabled.add(cap)
                new.append(cap)
                if cap == "QRESYNC" and "CONDSTORE" not in self.enabled:
                    self.enabled.add("CONDSTORE")
        await self.untagged(("ENABLED " + " ".join(new)).rstrip())

    async def cmd_namespace(self, cmd: Command) -> None:
        await self.untagged(f'NAMESPACE (("" "{DELIMITER}")) NIL NIL')

    def _name_in(self, raw: str) -> str:
        """A mailbox name from the client: modified UTF-7 unless UTF8=ACCEPT."""
        if raw.upper() == INBOX:
            return INBOX
        if self.utf8:
            return raw
        try:
            return mutf7_decode(raw)
        except ParseError as e:
            raise Bad(f"Mailbox name is not modified UTF-7: {e.text}") from None

    def _name_out(self, name: str) -> bytes:
        return astring(name, utf8=True) if self.utf8 else astring(mutf7_encode(name))

    async def _folder(self, raw: str):
        f = await asyncio.to_thread(self.shard.state.mailboxes.folder, self.addr, raw)
        if f is None:
            raise No("NONEXISTENT", "No such mailbox")
        return f

    async def cmd_select(self, cmd: Command) -> str:
        return await self._select(cmd, readonly=False)

    async def cmd_examine(self, cmd: Command) -> str:
        return await self._select(cmd, readonly=True)

    async def _select(self, cmd: Command, readonly: bool) -> str:
        if self.selected is not None:  # RFC 7162 3.2.11, RFC 9051 7.1: say it
            self._unselect()
            await self.untagged("OK [CLOSED] Previous mailbox closed")
        readonly = readonly or self.stale
        if cmd.args["condstore"]:
            self.enabled.add("CONDSTORE")
        qr = cmd.args["qresync"]
        if qr is not None and not self.qresync:
            raise Bad("QRESYNC parameter without ENABLE QRESYNC")
        name = self._name_in(cmd.args["mailbox"])
        await self.shard.caught_up()
        f = await self._folder(name)
        self._watch()  # before the snapshot: a change after it sets the event
        snap = await asyncio.to_thread(view.snapshot, self.shard.state.index, f.id)
        if snap is None:
            raise No("NONEXISTENT", "No such mailbox")
        f = snap.folder
        sel = Selected(
            f.id,
            f.name,
            f.uidvalidity,
            readonly,
            [u for u, _, _ in snap.rows],
            {u: fl for u, fl, _ in snap.rows},
            {u: m for u, _, m in snap.rows},
            f.highest_modseq,
        )
        keywords = sorted({k for _, fl, _ in snap.rows for k in fl if not k.startswith("\\")})
        permanent = b"()" if readonly else flag_list([*SYSTEM_FLAGS, *keywords, "\\*"])
        out = [
            b"* FLAGS " + flag_list([*SYSTEM_FLAGS, *keywords]) + b"\r\n",
            b"* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted\r\n",
            f"* {len(sel.uids)} EXISTS\r\n".encode(),
        ]
        if not self.rev2:
            out.append(b"* 0 RECENT\r\n")
            unseen = next((i for i, u in enumerate(sel.uids, 1) if "\\Seen" not in sel.flags[u]), 0)
            if unseen:
                out.append(f"* OK [UNSEEN {unseen}] First unseen\r\n".encode())
        out += [
            f"* OK [UIDVALIDITY {f.uidvalidity}] UIDs valid\r\n".encode(),
            f"* OK [UIDNEXT {f.uidnext}] Predicted next UID\r\n".encode(),
            f"* OK [HIGHESTMODSEQ {f.highest_modseq}] Highest\r\n".encode(),
        ]
        if self.rev2:
            out.append(b'* LIST () "/" ' + self._name_out(f.name) + b"\r\n")
        await self.send(*out)
        self.selected = sel
        if qr is not None and qr["uidvalidity"] == f.uidvalidity:
            await self._qresync(sel, qr)
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {cmd.name} completed"

    async def _qresync(self, sel: Selected, qr: dict) -> None:
        """RFC 7162 3.2.5: what the client missed since its modseq, VANISHED first."""
        ch = await asyncio.to_thread(
            view.changes, self.shard.state.index, sel.folder_id, qr["modseq"]
        )
        known: SequenceSet | None = qr["known_uids"]
        largest = max([0, *sel.uids[-1:], *ch.expunged[-1:]])
        gone = ch.expunged if known is None else _members(known, ch.expunged, largest)
        if gone:
            await self.untagged(f"VANISHED (EARLIER) {SequenceSet.from_numbers(gone)}")
        out = []
        for uid, flags, modseq in ch.changed:
            seq = sel.seq(uid)
            if seq:
                out.append(self._flags_fetch(seq, uid, flags, modseq))
        if out:
            await self.send(*out)

    def _unselect(self) -> None:
        if self._event is not None and self.mailbox is not None:
            self.ctx.hub.unwatch(self.mailbox, self._event)
            self._event = None
        self.selected = None

    def _watch(self) -> None:
        assert self.mailbox is not None
        self._event = self.ctx.hub.watch(self.mailbox)

    async def cmd_create(self, cmd: Command) -> None:
        name = self._name_in(cmd.args["mailbox"]).rstrip(DELIMITER)
        if name == INBOX:
            raise No("ALREADYEXISTS", "INBOX exists")
        await commands.change_folder(self.shard, self.addr, "create", name)

    async def cmd_delete(self, cmd: Command) -> None:
        name = self._name_in(cmd.args["mailbox"])
        if name == INBOX:
            raise No("CANNOT", "INBOX is never deleted")
        if self.selected is not None and self.selected.name == name:
            self._unselect()
        await commands.change_folder(self.shard, self.addr, "delete", name)

    async def cmd_rename(self, cmd: Command) -> None:
        old, new = self._name_in(cmd.args["mailbox"]), self._name_in(cmd.args["new_name"])
        if old == INBOX:
            raise No("CANNOT", "Renaming INBOX is not supported")
        await commands.change_folder(self.shard, self.addr, "rename", old, new)

    async def cmd_subscribe(self, cmd: Command) -> None:
        name = self._name_in(cmd.args["mailbox"])
        await self._folder(name)
        await commands.change_folder(self.shard, self.addr, "subscribe", name)

    async def cmd_unsubscribe(self, cmd: Command) -> None:
        name = self._name_in(cmd.args["mailbox"])
        await self._folder(name)
        await commands.change_folder(self.shard, self.addr, "unsubscribe", name)

    async def cmd_list(self, cmd: Command) -> None:
        a = cmd.args
        await self._list(
            a["reference"],
            a["patterns"],
            subscribed_only="SUBSCRIBED" in a["select_options"],
            special_only="SPECIAL-USE" in a["select_options"],  # RFC 6154 LIST (SPECIAL-USE)
            show_subscribed="SUBSCRIBED" in a["return_options"]
            or "SUBSCRIBED" in a["select_options"],
            status=a["return_status"],
            verb="LIST",
        )

    async def cmd_lsub(self, cmd: Command) -> None:
        a = cmd.args
        await self._list(
            a["reference"], a["patterns"], subscribed_only=True, show_subscribed=False, verb="LSUB"
        )

    async def _list(
        self,
        reference: str,
        patterns: list[str],
        *,
        subscribed_only: bool,
        show_subscribed: bool,
        special_only: bool = False,
        verb: str,
        status: list[str] | None = None,
    ) -> None:
        if patterns == [""]:  # the hierarchy delimiter and root
            await self.untagged(f'{verb} (\\Noselect) "{DELIMITER}" ""')
            return
        full = [self._name_in(reference) + self._name_in(p) for p in patterns]
        if any(len(p) > MAX_PATTERN for p in full):
            raise Bad(f"LIST patterns are at most {MAX_PATTERN} characters")
        folders = await asyncio.to_thread(view.folders, self.shard.state.index, self.addr)
        matchers = [_pattern(p) for p in full]
        by_name = {f.name: f for f in folders}
        parents = {
            n.rsplit(DELIMITER, k)[0] for n in by_name for k in range(1, n.count(DELIMITER) + 1)
        }
        # A level whose folder was deleted while folders below it stay: \Noselect.
        listed = sorted(set(by_name) | (set() if subscribed_only or special_only else parents))
        hits = await asyncio.to_thread(lambda: [n for n in listed if any(m(n) for m in matchers)])
        out = []
        for name in hits:
            f = by_name.get(name)
            if f is None:
                out.append(
                    f'* {verb} (\\Noselect \\HasChildren) "{DELIMITER}" '.encode()
                    + self._name_out(name)
                    + b"\r\n"
                )
                continue
            if (subscribed_only and not f.subscribed) or (
                special_only and f.name not in SPECIAL_USE
            ):
                continue
            attrs = ["\\HasChildren" if f.name in parents else "\\HasNoChildren"]
            if f.subscribed and show_subscribed:
                attrs.append("\\Subscribed")
            if f.name in SPECIAL_USE:
                attrs.append(SPECIAL_USE[f.name])
            out.append(
                f'* {verb} ({" ".join(attrs)}) "{DELIMITER}" '.encode()
                + self._name_out(f.name)
                + b"\r\n"
            )
            if status:
                out.append(await self._status_line(f.name, status))
        if out:
            await self.send(*out)

    async def cmd_status(self, cmd: Command) -> None:
        if "HIGHESTMODSEQ" in cmd.args["items"]:
            self.enabled.add("CONDSTORE")  # RFC 7162 3.1: a CONDSTORE-enabling command
        name = self._name_in(cmd.args["mailbox"])
        await self.send(await self._status_line(name, cmd.args["items"]))

    async def _status_line(self, name: str, items: list[str]) -> bytes:
        st = await asyncio.to_thread(view.status, self.shard.state.index, self.addr, name)
        if st is None:
            raise No("NONEXISTENT", "No such mailbox")
        values = {
            "MESSAGES": st.messages,
            "RECENT": 0,
            "UIDNEXT": st.folder.uidnext,
            "UIDVALIDITY": st.folder.uidvalidity,
            "UNSEEN": st.unseen,
            "HIGHESTMODSEQ": st.folder.highest_modseq,
            "SIZE": st.size,
            "DELETED": st.deleted,
            "APPENDLIMIT": self.ctx.max_message_size,
        }
        body = " ".join(f"{i} {values[i]}" for i in items)
        return b"* STATUS " + self._name_out(st.folder.name) + f" ({body})\r\n".encode()

    async def cmd_append(self, cmd: Command) -> str:
        name = self._name_in(cmd.args["mailbox"])
        f = await asyncio.to_thread(self.shard.state.mailboxes.folder, self.addr, name)
        if f is None:
            raise No("TRYCREATE", "No such mailbox")
        if len(cmd.args["messages"]) > 1:
            raise Bad("MULTIAPPEND is not offered: one message per APPEND")
        uids = []
        for m in cmd.args["messages"]:
            data: bytes = m["data"]
            if len(data) > self.ctx.max_message_size:
                raise No("TOOBIG", f"Messages are at most {self.ctx.max_message_size} octets")
            if not data:
                raise Bad("Empty message")
            why = self.shard.state.over_quota(self.addr, len(data))
            if why:
                raise No("OVERQUOTA", why)
            rec = JournalRecord()
            a = rec.message_accepted
            a.recipients.append(self.mailbox)
            a.data = data
            a.client_address = self.peer
            a.folder = f.name
            a.flags.extend(commands.check_flags(_storable(m["flags"])))
            if m["date"] is not None:
                a.internal_ns = int(m["date"].timestamp() * 1_000_000_000)
            await self.shard.commit(rec, applied=True)
            msg = message_name(self.shard.id, rec.lsn, rec.timestamp_ns, len(data))
            found = await asyncio.to_thread(view.uids_by_name, self.shard.state.index, f.id, [msg])
            if msg in found:
                uids.append(found[msg])
        await self.refresh()
        if len(uids) == len(cmd.args["messages"]):
            return f"[APPENDUID {f.uidvalidity} {SequenceSet.from_numbers(uids)}] APPEND completed"
        return "APPEND completed"

    async def cmd_idle(self, cmd: Command) -> str:
        await self.send(b"+ idling\r\n")
        await self.refresh()
        line_task = asyncio.ensure_future(self._readline())
        deadline = time.monotonic() + self.ctx.idle_timeout
        try:
            while True:
                ev = self._event
                waits: set[asyncio.Future] = {line_task}
                ev_task = None
                if ev is not None:
                    ev_task = asyncio.ensure_future(ev.wait())
                    waits.add(ev_task)
                self.idle = True
                try:
                    await asyncio.wait(
                        waits, timeout=IDLE_POLL, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    self.idle = False
                    if ev_task is not None and not ev_task.done():
                        ev_task.cancel()
                if line_task.done():
                    line = line_task.result()
                    if line.strip().upper() != b"DONE":
                        raise Bad("Expected DONE")
                    return "IDLE terminated"
                if self.ctx.stopping:
                    raise Bye("[UNAVAILABLE] Server shutting down")
                if time.monotonic() > deadline:
                    raise Bye("Autologout; idle for too long")
                await self.refresh()
        finally:
            if not line_task.done():
                line_task.cancel()

    async def cmd_getquotaroot(self, cmd: Command) -> None:
        name = self._name_in(cmd.args["mailbox"])
        await self._folder(name)
        quota = self._quota()
        root = b' ""' if quota else b""
        await self.send(b"* QUOTAROOT " + self._name_out(name) + root + b"\r\n", quota)

    async def cmd_getquota(self, cmd: Command) -> None:
        if cmd.args["root"] != "" or not self._quota():
            raise No("NONEXISTENT", 'The only quota root is ""')
        await self.send(self._quota())

    def _quota(self) -> bytes:
        max_bytes, max_messages = self.shard.state.quota(self.addr)
        messages, nbytes = self.shard.state.mailboxes.usage(self.addr)
        res = []
        if max_bytes:
            res.append(f"STORAGE {(nbytes + 1023) // 1024} {max_bytes // 1024}")
        if max_messages:
            res.append(f"MESSAGE {messages} {max_messages}")
        if not res:
            return b""  # no limit: no quota root (a QUOTA response needs a resource)
        return f'* QUOTA "" ({" ".join(res)})\r\n'.encode()

    async def cmd_setquota(self, cmd: Command) -> None:
        raise No("NOPERM", "Quotas are set by the operator (mailctl user quota)")

    # -- selected -------------------------------------------------------------------------
    def _sel(self) -> Selected:
        assert self.selected is not None
        return self.selected

    async def cmd_check(self, cmd: Command) -> None:
        await self.refresh()

    async def cmd_unselect(self, cmd: Command) -> None:
        self._unselect()

    async def cmd_close(self, cmd: Command) -> None:
        sel = self._sel()
        if not sel.readonly:
            await self._expunge_deleted(sel, None)
        self._unselect()

    async def cmd_expunge(self, cmd: Command) -> None:
        sel = self._sel()
        if sel.readonly:
            raise No("READ-ONLY", "Mailbox is read-only")
        await self._expunge_deleted(sel, cmd.args["sequence"] if cmd.uid else None)
        await self.refresh()

    async def _expunge_deleted(self, sel: Selected, within: SequenceSet | None) -> None:
        largest = sel.uids[-1] if sel.uids else 0
        candidates = sel.uids if within is None else _members(within, sel.uids, largest)
        uids = [u for u in candidates if u not in sel.deferred]
        rows = await asyncio.to_thread(view.messages, self.shard.state.index, sel.folder_id, uids)
        doomed = [u for u, m in rows.items() if "\\Deleted" in m.flags]
        if doomed:
            await commands.expunge(
                self.shard, self.addr, self._folder_now(sel), doomed, sel.uidvalidity
            )

    def _folder_now(self, sel: Selected) -> str:
        """The selected folder's name now (renamed meanwhile?): changes name it, with its
        UIDVALIDITY, so a change never lands in another folder made under the old name."""
        f = view.folder_by_id(self.shard.state.index, sel.folder_id)  # a primary-key read
        if f is None:
            self.selected = None
            raise Bye("[NONEXISTENT] Selected mailbox was deleted")
        sel.name = f.name
        return f.name

    def _resolve(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) of the messages a set names, in order."""
        sel = self._sel()
        if uid:
            largest = sel.uids[-1] if sel.uids else 0
            return [(sel.seq(u), u) for u in seqset.iter(largest, sel.uids)]
        n = len(sel.uids)
        if _max_number(seqset) > n:
            raise Bad("Invalid message sequence number")
        return [(i, sel.uids[i - 1]) for i in seqset.iter(n)]

    async def cmd_fetch(self, cmd: Command) -> str | None:
        sel = self._sel()
        items: list[FetchAtt] = list(cmd.args["items"])
        changedsince = cmd.args["changedsince"]
        if changedsince is not None or any(i.name == "MODSEQ" for i in items):
            self.enabled.add("CONDSTORE")
        if cmd.uid and not any(i.name == "UID" for i in items):
            items.insert(0, FetchAtt("UID"))
        if (
            self.condstore
            and changedsince is not None
            and not any(i.name == "MODSEQ" for i in items)
        ):
            items.append(FetchAtt("MODSEQ"))
        targets = self._resolve(cmd.args["sequence"], cmd.uid)
        if cmd.args["vanished"] and not self.qresync:
            raise Bad("VANISHED needs ENABLE QRESYNC first (RFC 7162 3.2.6)")
        if cmd.args["vanished"]:
            since = await asyncio.to_thread(
                view.changes, self.shard.state.index, sel.folder_id, changedsince
            )
            largest = sel.uids[-1] if sel.uids else 0
            v = _members(cmd.args["sequence"], since.expunged, largest)
            if v:
                await self.untagged(f"VANISHED (EARLIER) {SequenceSet.from_numbers(v)}")
        if changedsince is not None:
            targets = [(s, u) for s, u in targets if sel.modseqs.get(u, 0) > changedsince]
        sets_seen = not sel.readonly and any(
            i.name in ("BODY", "BINARY", "RFC822", "RFC822.TEXT")
            and not i.peek
            and (i.section is not None or i.name in ("RFC822", "RFC822.TEXT"))
            for i in items
        )
        if sets_seen:
            unseen = [u for _, u in targets if "\\Seen" not in sel.flags.get(u, ())]
            if unseen:
                await commands.set_flags(
                    self.shard,
                    self.addr,
                    self._folder_now(sel),
                    unseen,
                    "add",
                    ["\\Seen"],
                    sel.uidvalidity,
                )
                await self.refresh(allow_expunge=cmd.uid, quiet=set(unseen))
                # The flags changed: they go with this FETCH's responses (RFC 3501 6.4.5).
                if not any(i.name == "FLAGS" for i in items):
                    items.append(FetchAtt("FLAGS"))
                if self.condstore and not any(i.name == "MODSEQ" for i in items):
                    items.append(FetchAtt("MODSEQ"))
        missing = i = 0
        while i < len(targets):
            chunk = targets[i : i + FETCH_CHUNK]
            data, gone, done = await asyncio.to_thread(self._render_fetch, sel, chunk, items)
            missing += gone
            i += done
            await self.send(data)
        await self.refresh(allow_expunge=cmd.uid)
        if missing:
            raise No("EXPUNGEISSUED", "Some messages were expunged meanwhile")
        return None

    def _render_fetch(
        self, sel: Selected, targets: list[tuple[int, int]], items: list[FetchAtt]
    ) -> tuple[bytes, int, int]:
        """The FETCH responses of some messages (in a thread): (bytes, how many gone, how
        many of ``targets`` done); it stops after FETCH_BYTES, so a sync of big messages
        is sent as it is read, not held whole."""
        cheap = {"UID", "FLAGS", "MODSEQ"}
        rows: dict[int, Message] = {}
        blobs: dict[int, bytes] = {}
        need_rows = any(i.name not in cheap for i in items)
        if need_rows:
            uids = [u for _, u in targets]
            rows = view.messages(self.shard.state.index, sel.folder_id, uids)
            if _cache_serves(items):
                blobs = view.cached(self.shard.state.index, sel.folder_id, uids)
        folder = None
        out = bytearray()
        gone = done = 0
        for seq, uid in targets:
            if len(out) > FETCH_BYTES:
                break
            done += 1
            m = rows.get(uid)
            if need_rows and m is None:
                gone += 1  # expunged by another session since this one last heard
                continue
            parsed: ParsedMessage | None = None
            parts: list[bytes] = []
            for it in items:
                name = it.name
                if name == "UID":
                    parts.append(b"UID %d" % uid)
                elif name == "FLAGS":
                    parts.append(b"FLAGS " + flag_list(sel.flags.get(uid, ())))
                elif name == "MODSEQ":
                    parts.append(b"MODSEQ (%d)" % sel.modseqs.get(uid, 1))
                elif name == "INTERNALDATE":
                    assert m is not None
                    dt = datetime.fromtimestamp(m.internal_ns / 1e9, UTC)
                    parts.append(b"INTERNALDATE " + imap_date(dt))
                elif name == "RFC822.SIZE":
                    assert m is not None
                    parts.append(b"RFC822.SIZE %d" % m.size)
                else:
                    if parsed is None and uid in blobs:
                        parsed = ParsedMessage(blobs[uid])  # the index's header lines
                    if parsed is None:
                        assert m is not None
                        if folder is None:
                            folder = view.folder_by_id(self.shard.state.index, sel.folder_id)
                        data = (
                            view.read_file(self.shard.state.mailboxes, self.addr, folder, m)
                            if folder is not None
                            else None
                        )
                        if data is None:
                            gone += 1
                            parts = []
                            break
                        parsed = ParsedMessage(data)
                    parts.append(self._fetch_item(it, parsed))
            if parts:
                out += b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
        return bytes(out), gone, done

    def _fetch_item(self, it: FetchAtt, p: ParsedMessage) -> bytes:
        name = it.name
        if name == "ENVELOPE":
            return b"ENVELOPE " + p.envelope()
        if name == "BODYSTRUCTURE":
            return b"BODYSTRUCTURE " + p.bodystructure(True)
        if name == "BODY" and it.section is None:
            return b"BODY " + p.bodystructure(False)
        if name == "RFC822":
            return b"RFC822 " + quoted_or_literal(p.section((), None))
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + quoted_or_literal(p.section((), "HEADER"))
        if name == "RFC822.TEXT":
            return b"RFC822.TEXT " + quoted_or_literal(p.section((), "TEXT"))
        if name == "BINARY.SIZE":
            assert it.section is not None
            n = p.binary_size(it.section.part)
            return _response_name(it) + b" " + (b"NIL" if n is None else b"%d" % n)
        assert it.section is not None
        if name == "BINARY":
            content = p.binary(it.section.part)
            if content is None:
                raise No("UNKNOWN-CTE", "Unknown Content-Transfer-Encoding")
        else:
            content = p.section(it.section.part, it.section.text, it.section.fields)
        if it.partial is not None:
            start, count = it.partial
            content = content[start : start + count]
        if name == "BINARY" and b"\0" in content:
            return _response_name(it) + b" ~{%d}\r\n" % len(content) + content
        return _response_name(it) + b" " + _literal(content)

    async def cmd_store(self, cmd: Command) -> str | None:
        sel = self._sel()
        if sel.readonly:
            raise No("READ-ONLY", "Mailbox is read-only")
        a = cmd.args
        targets = self._resolve(a["sequence"], cmd.uid)
        flags = commands.check_flags(_storable(a["flags"]))
        uids = [u for _, u in targets]
        modified: list[int] = []
        mode = {"+": "add", "-": "remove", "": "replace"}[a["mode"]]
        # One STORE of a mailbox at a time (all its sessions are in this process): the
        # UNCHANGEDSINCE check and the change it allows are one step (RFC 7162 3.1.3).
        async with self.ctx.hub.lock(self.addr):
            if a["unchangedsince"] is not None:
                self.enabled.add("CONDSTORE")
                rows = await asyncio.to_thread(
                    view.messages, self.shard.state.index, sel.folder_id, uids
                )
                limit = a["unchangedsince"]
                modified = [u for u in uids if u in rows and rows[u].modseq > limit]
                uids = [u for u in uids if u in rows and rows[u].modseq <= limit]
            if uids:
                await commands.set_flags(
                    self.shard,
                    self.addr,
                    self._folder_now(sel),
                    uids,
                    mode,
                    flags,
                    sel.uidvalidity,
                )
        await self.refresh(allow_expunge=cmd.uid, quiet=set(uids) if a["silent"] else set())
        if modified:
            numbers = modified if cmd.uid else [sel.seq(u) for u in modified]
            return f"[MODIFIED {SequenceSet.from_numbers(numbers)}] Conditional STORE failed"
        return None

    async def cmd_copy(self, cmd: Command) -> str:
        return await self._copy(cmd, move=False)

    async def cmd_move(self, cmd: Command) -> str:
        if self._sel().readonly:
            raise No("READ-ONLY", "Mailbox is read-only")
        return await self._copy(cmd, move=True)

    async def _copy(self, cmd: Command, move: bool) -> str:
        sel = self._sel()
        targets = self._resolve(cmd.args["sequence"], cmd.uid)
        dest_name = self._name_in(cmd.args["mailbox"])
        dest = await asyncio.to_thread(self.shard.state.mailboxes.folder, self.addr, dest_name)
        if dest is None:
            raise No("TRYCREATE", "No such mailbox")
        if not targets:
            return f"{cmd.name} completed"
        uids = sorted(u for _, u in targets)
        if dest.id == sel.folder_id:
            if move:
                raise No("CANNOT", "Source and destination are the same mailbox")
            raise No("CANNOT", "Copying a mailbox to itself is not supported")
        rows = await asyncio.to_thread(view.messages, self.shard.state.index, sel.folder_id, uids)
        if not move:  # a copy adds to the mailbox's usage (RFC 9208 4.1)
            why = self.shard.state.over_quota(
                self.addr, sum(m.size for m in rows.values()), len(rows)
            )
            if why:
                raise No("OVERQUOTA", why)
        lsn = await commands.copy(
            self.shard,
            self.addr,
            self._folder_now(sel),
            uids,
            dest.name,
            move=move,
            uidvalidity=sel.uidvalidity,
        )
        existing = [rows[u] for u in uids if u in rows]
        stamp = f"S{self.shard.id}C{lsn}"
        names = [copy_name(m.name, stamp, m.uid) for m in existing]
        found = await asyncio.to_thread(view.uids_by_name, self.shard.state.index, dest.id, names)
        pairs = [(m.uid, found[n]) for m, n in zip(existing, names, strict=True) if n in found]
        code = ""
        if pairs:
            src = SequenceSet.from_numbers([p[0] for p in pairs])
            dst = SequenceSet.from_numbers([p[1] for p in pairs])
            code = f"[COPYUID {dest.uidvalidity} {src} {dst}] "
        if move:
            if code:
                await self.untagged(f"OK {code}Moved")
            await self.refresh()
            return f"{cmd.name} completed"
        await self.refresh(allow_expunge=cmd.uid)
        return f"{code}{cmd.name} completed"

    async def cmd_search(self, cmd: Command) -> None:
        sel = self._sel()
        a = cmd.args
        key = a["key"]
        uses_modseq = _uses(key, _MODSEQ_KEYS)
        if uses_modseq:
            self.enabled.add("CONDSTORE")
        uids = list(sel.uids)  # the client's view: sequence numbers as it knows them
        content = needs_content(key)
        rows: dict[int, Message] = {}
        small: dict[int, tuple[int, int]] = {}
        folder = None
        if content:
            rows = await asyncio.to_thread(
                view.messages, self.shard.state.index, sel.folder_id, uids
            )
            folder = view.folder_by_id(self.shard.state.index, sel.folder_id)
        elif _uses(key, _ROW_KEYS):  # sizes and dates only; else the session's view answers
            small = await asyncio.to_thread(
                view.sizes_and_dates, self.shard.state.index, sel.folder_id
            )
        blobs: dict[int, bytes] = {}
        if content and _search_cache_serves(key):
            blobs = await asyncio.to_thread(
                view.cached, self.shard.state.index, sel.folder_id, uids
            )

        def run() -> list[tuple[int, int]]:
            largest_seq, largest_uid = len(uids), (uids[-1] if uids else 0)
            fast = fastsearch.compile_index_key(key, uids, sel.flags, sel.modseqs, small)
            if fast is not None:  # no content: one predicate, no object per message
                return [
                    (seq, uid)
                    for seq, uid in enumerate(uids, 1)
                    if uid not in sel.deferred and (not small or uid in small) and fast(seq, uid)
                ]
            hits = []
            for seq, uid in enumerate(uids, 1):
                m = rows.get(uid)
                if (rows and m is None) or uid in sel.deferred:
                    continue  # expunged meanwhile
                raw = blobs.get(uid)
                if raw is None and m is not None and folder is not None:
                    raw = view.read_file(self.shard.state.mailboxes, self.addr, folder, m)
                if raw is not None and not fastsearch.could_match(key, fastsearch.haystack(raw)):
                    continue  # the text is nowhere in its bytes: no parse
                c = Candidate(
                    seq=seq,
                    uid=uid,
                    flags=frozenset(sel.flags.get(uid, ())),
                    recent=False,
                    size=m.size if m else 0,
                    internal_date=(
                        datetime.fromtimestamp(m.internal_ns / 1e9, UTC) if m else _EPOCH
                    ),
                    modseq=sel.modseqs.get(uid, 1),
                    load=_parsed(raw) if content and raw is not None else _nothing,
                )
                if matches(key, c, largest_seq, largest_uid):
                    hits.append((seq, uid))
            return hits

        hits = await asyncio.to_thread(run)
        numbers = [u if cmd.uid else s for s, u in hits]
        ret = a["return"]
        if ret and "SAVE" in ret:
            raise Bad("SEARCHRES (RETURN SAVE) is not offered")
        if ret is None and not self.rev2:
            line = "SEARCH" + "".join(f" {n}" for n in numbers)
            if uses_modseq and hits:
                line += f" (MODSEQ {max(sel.modseqs.get(u, 0) for _, u in hits)})"
            await self.untagged(line)
        else:
            opts = ret or ["ALL"]
            parts = [f'(TAG "{cmd.tag}")'] + (["UID"] if cmd.uid else [])
            if numbers:
                if "MIN" in opts:
                    parts.append(f"MIN {min(numbers)}")
                if "MAX" in opts:
                    parts.append(f"MAX {max(numbers)}")
                if "ALL" in opts:
                    parts.append(f"ALL {SequenceSet.from_numbers(numbers)}")
            if "COUNT" in opts:
                parts.append(f"COUNT {len(numbers)}")
            if uses_modseq and hits:
                parts.append(f"MODSEQ {max(sel.modseqs.get(u, 0) for _, u in hits)}")
            await self.untagged("ESEARCH " + " ".join(parts))
        await self.refresh(allow_expunge=cmd.uid)

    # -- untagged updates -----------------------------------------------------------------
    def _flags_fetch(self, seq: int, uid: int, flags: Iterable[str], modseq: int) -> bytes:
        extra = b" MODSEQ (%d)" % modseq if self.condstore else b""
        return b"* %d FETCH (UID %d FLAGS " % (seq, uid) + flag_list(flags) + extra + b")\r\n"

    async def refresh(self, allow_expunge: bool = True, quiet: set[int] | None = None) -> None:
        """Tell the client what changed in its selected folder since it last heard:
        expunges (unless the command in progress forbids them, RFC 3501 7.4.1), new
        messages, flag changes (not those in ``quiet``: a STORE .SILENT's own)."""
        sel = self.selected
        if sel is None:
            return
        if not self.shard.accepting and not self.stale:
            raise Bye("[UNAVAILABLE] Mailbox moved to another node; reconnect")
        ev = self._event
        if ev is not None:
            # Set by the hub after every applied change to this mailbox (this session's
            # own included, before its commit returns): no change, no index read.
            if not ev.is_set() and not (allow_expunge and sel.deferred):
                return
            ev.clear()
        ch = await asyncio.to_thread(
            view.changes, self.shard.state.index, sel.folder_id, sel.highest
        )
        if ch.folder is None:
            self.selected = None
            raise Bye("[NONEXISTENT] Selected mailbox was deleted")
        out: list[bytes] = []
        sel.deferred.update(u for u in ch.expunged if u in sel.flags)
        if allow_expunge and sel.deferred:
            gone = sorted(sel.deferred)
            if self.qresync:
                out.append(f"* VANISHED {SequenceSet.from_numbers(gone)}\r\n".encode())
            if not self.qresync:  # descending: each number is right when the client reads it
                out += [b"* %d EXPUNGE\r\n" % q for q in reversed([sel.seq(u) for u in gone]) if q]
            doomed = set(gone)
            sel.uids = [u for u in sel.uids if u not in doomed]  # one pass, not a del each
            for uid in gone:
                sel.flags.pop(uid, None)
                sel.modseqs.pop(uid, None)
            sel.deferred.clear()
        expunges = len(out)
        last = sel.uids[-1] if sel.uids else 0
        added = False
        for uid, flags, modseq in ch.changed:
            if uid > last:
                sel.uids.append(uid)
                sel.flags[uid], sel.modseqs[uid] = flags, modseq
                last, added = uid, True
                continue
            if uid not in sel.flags or uid in sel.deferred:
                continue
            old = sel.flags[uid]
            sel.flags[uid], sel.modseqs[uid] = flags, modseq
            if quiet and uid in quiet:
                if self.condstore:  # RFC 7162 3.1.3: MODSEQ even after .SILENT
                    out.append(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (sel.seq(uid), uid, modseq))
                continue
            if old != flags or self.condstore:
                out.append(self._flags_fetch(sel.seq(uid), uid, flags, modseq))
        if added:  # after the expunges: EXISTS never lowers the count (RFC 3501 7.3.1)
            out.insert(expunges, f"* {len(sel.uids)} EXISTS\r\n".encode())
        sel.highest = max(sel.highest, ch.folder.highest_modseq)
        if out:
            await self.send(*out)


class _Answered(Exception):
    """The handler wrote its own tagged answer (STARTTLS, a piped LOGIN)."""


def _storable(flags: list[str]) -> list[str]:
    return [f for f in flags if f.lower() != "\\recent"]


@functools.lru_cache(maxsize=256)
def _response_name(it: FetchAtt) -> bytes:
    """What a FETCH response writes before an item's value, made once per item kind
    rather than once per message."""
    return it.response_name().encode()


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def _line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _uses(key: tuple, names: frozenset[str]) -> bool:
    """Whether a search key tree has any of these keys."""
    if key[0] in names:
        return True
    for part in key[1:]:
        if isinstance(part, tuple) and _uses(part, names):
            return True
        if isinstance(part, list) and any(_uses(k, names) for k in part):
            return True
    return False


def _members(seqset: SequenceSet, ascending: list[int], largest: int | None = None) -> list[int]:
    """The numbers of an ascending list that are in the set, by bisection (a set of 50,000
    ranges against 100,000 UIDs is not 5e9 comparisons); ``*`` is ``largest`` (default:
    the list's last)."""
    if not ascending:
        return []
    return list(seqset.iter(ascending[-1] if largest is None else largest, ascending))


def _max_number(seqset: SequenceSet) -> int:
    """The largest explicit number in a set (``*`` does not count)."""
    best = 0
    for lo, hi in seqset.ranges:
        for v in (lo, hi):
            if isinstance(v, int) and v > best:
                best = v
    return best


_EPOCH = datetime.fromtimestamp(0, UTC)
_ROW_KEYS = frozenset({"LARGER", "SMALLER", "BEFORE", "ON", "SINCE", "OLDER", "YOUNGER"})
_MODSEQ_KEYS = frozenset({"MODSEQ"})


def _nothing() -> None:
    return None


def _cache_serves(items: list[FetchAtt]) -> bool:
    """Whether the index's cached header lines answer every item (a client's list view:
    ENVELOPE, BODY.PEEK[HEADER.FIELDS (FROM SUBJECT ...)]) without the message file."""
    for it in items:
        if it.name in ("UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"):
            continue
        sec = it.section
        if (
            it.name == "BODY"
            and sec is not None
            and not sec.part
            and sec.text == "HEADER.FIELDS"
            and all(f.lower() in CACHED_FIELDS for f in sec.fields)
        ):
            continue
        return False
    return True


def _search_cache_serves(key: tuple) -> bool:
    """Whether the content a search key reads is all in the cached header lines: header
    keys of cached fields and SENT* (the Date field), no BODY or TEXT."""
    if key[0] in ("BODY", "TEXT"):
        return False
    if key[0] == "HEADER":
        return key[1].lower() in CACHED_FIELDS
    for part in key[1:]:
        if isinstance(part, tuple) and not _search_cache_serves(part):
            return False
        if isinstance(part, list) and not all(_search_cache_serves(k) for k in part):
            return False
    return True


def _parsed(raw: bytes) -> Callable[[], ParsedMessage]:
    return lambda: ParsedMessage(raw)


MAX_PATTERN = 1024  # characters of a LIST pattern (names are at most 200)


def _pattern(pattern: str) -> Callable[[str], bool]:
    """A LIST pattern: ``*`` matches anything, ``%`` anything but the delimiter; INBOX
    matches in any case (RFC 3501 5.1). A set-of-positions matcher, linear in the name
    times the pattern: a backtracking regex takes minutes on ``*a*a*a*a*a*a*a*aX``."""
    toks: list[str] = []
    for c in pattern:  # runs of wildcards are one: "%*" and "*%" are "*"
        if c in "*%" and toks and toks[-1] in "*%":
            if c == "*":
                toks[-1] = "*"
            continue
        toks.append(c)
    end = len(toks)

    def closure(states: set[int]) -> set[int]:
        out = set(states)
        for p in sorted(states):
            while p < end and toks[p] in "*%":
                p += 1
                out.add(p)
        return out

    def match(name: str) -> bool:
        fold = name == INBOX
        states = closure({0})
        for ch in name:
            nxt = set()
            for p in states:
                if p == end:
                    continue
                t = toks[p]
                if t == "*" or (t == "%" and ch != DELIMITER):
                    nxt.add(p)
                elif t == ch or (fold and t.upper() == ch):
                    nxt.add(p + 1)
            if not nxt:
                return False
            states = closure(nxt)
        return end in states

    return match

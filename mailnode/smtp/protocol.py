"""aiosmtpd's SMTP protocol with a bulk DATA reader and enhanced status codes.

aiosmtpd reads DATA one line per ``readuntil()``; at 100 KiB that costs more
than the rest of the transaction. Here DATA is read in large chunks up to each
``.CRLF``, the terminator is recognised as CRLF.CRLF, and dot-stuffing is undone
in one pass. Mail logic stays in the handler (``handle_DATA``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
from typing import ClassVar

from aiosmtpd.smtp import SMTP, login_always_fail, syntax

from mailnode import metrics
from mailnode.smtp import replies

log = logging.getLogger(__name__)

_HAS_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")
_NO_ENHANCED = {"220", "334", "354"}
_SIMPLE_ADDR = re.compile(r"^\s*<([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+|)>(\s.*|)$")
DATA_CHUNK = 256 * 1024
TERMINATOR = b"\r\n.\r\n"


class DataError(Exception):
    def __init__(self, reply: str, reason: str):
        super().__init__(reply)
        self.reply = reply
        self.reason = reason


def check_data(raw: bytes) -> bytes:
    """Message bytes from the DATA stream (terminator removed): checked and unstuffed.

    Bulk operations only (split/count run in C); at 100 KiB this is most of the
    CPU a message costs.
    """
    lines = raw.split(b"\r\n")
    crlf = len(lines) - 1
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        # A bare LF or CR could be read as end-of-data by another MTA: smuggling.
        raise DataError(replies.BARE_NEWLINE, "bare_newline")
    if max(map(len, lines)) > 999:  # 998 octets + a transparency dot
        raise DataError(replies.LINE_TOO_LONG, "line_too_long")
    if raw.startswith(b".") or b"\r\n." in raw:
        raw = b"\r\n".join([line[1:] if line.startswith(b".") else line for line in lines])
    return raw


class MailSMTP(SMTP):
    # Names of smtp_* methods and handle_* hooks, found once per class.
    _names: ClassVar[dict[type, tuple[list[str], list[str]]]] = {}

    def __init__(
        self,
        handler,
        *,
        data_size_limit: int,
        hostname: str,
        ident: str,
        timeout: float,
        tls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop,
    ):
        # The state SMTP.__init__ (aiosmtpd 1.4.x) sets for our options, without its
        # per-connection introspection (inspect.getmembers over protocol and handler),
        # which took a third of the CPU when every message came on a new connection.
        self.__ident__ = ident
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        # Per instance: aiosmtpd's class-level dict is shared by all sessions.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = False
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        self._auth_methods = {}  # the MX listener offers no AUTH
        names = self._names.get(type(handler))
        if names is None:
            names = self._names[type(handler)] = (
                [m for m in dir(type(self)) if m.startswith("smtp_")],
                [m for m in dir(type(handler)) if m.startswith("handle_")],
            )
        self._smtp_methods = {m[5:]: getattr(self, m) for m in names[0]}
        self._handle_hooks = {m[7:]: getattr(handler, m) for m in names[1]}
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._enforce_call_limit = False
        self._no_enhanced = False

    def connection_made(self, transport) -> None:
        if self._original_transport is None:  # not the STARTTLS re-entry
            metrics.SMTP_SESSIONS.inc()
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        metrics.SMTP_SESSIONS.dec()
        super().connection_lost(error)

    def _getaddr(self, arg: str):
        # Fast path for the plain "<local@domain> [params]" every MTA sends.
        m = _SIMPLE_ADDR.match(arg)
        if m:
            return m.group(1) or "<>", m.group(2).strip()  # "<>" as aiosmtpd gives the null sender
        return super()._getaddr(arg)

    async def push(self, status):
        if isinstance(status, str) and not self._no_enhanced:
            code = status[:3]
            if (
                code not in _NO_ENHANCED
                and code in replies.DEFAULT_ENHANCED
                and not _HAS_ENHANCED.match(status)
            ):
                status = f"{status[:4]}{replies.DEFAULT_ENHANCED[code]} {status[4:]}"
        await super().push(status)

    async def smtp_EHLO(self, hostname: str):
        # RFC 2034: no enhanced codes on the EHLO/HELO reply.
        self._no_enhanced = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._no_enhanced = False

    async def smtp_HELO(self, hostname: str):
        self._no_enhanced = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._no_enhanced = False

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None  # set from the connection on (as aiosmtpd's own DATA)
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        raw, too_big = await self._read_data()
        status = None
        if too_big:
            status, reason = replies.SIZE_EXCEEDED, "size"
        else:
            try:
                content = check_data(raw)
            except DataError as e:
                status, reason = e.reply, e.reason
        if status is not None:
            self.event_handler.rejected(reason)
            self._set_post_data_state()
            await self.push(status)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def _read_data(self) -> tuple[bytes, bool]:
        """Everything up to CRLF.CRLF (excluded); (b"", True) when over the size limit."""
        reader = self._reader
        limit = self.data_size_limit or 0
        # StreamReader's limit, raised so one read takes a big chunk (private: not in typeshed).
        saved = reader._limit  # type: ignore[attr-defined]
        reader._limit = DATA_CHUNK  # type: ignore[attr-defined]
        parts: list[bytes] = []
        last = b"\r\n"  # the CRLF before DATA's first line
        total = 0
        too_big = False
        try:
            while True:
                try:
                    chunk = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as e:
                    chunk = await reader.read(e.consumed)
                total += len(chunk)
                if limit and total > limit + 3 and not too_big:
                    too_big = True
                    parts.clear()  # keep reading to the end, but not storing
                if not too_big:
                    parts.append(chunk)
                tail = chunk[-5:] if len(chunk) >= 5 else (last + chunk)[-5:]
                if tail == TERMINATOR:
                    break
                last = tail[-2:]
        finally:
            reader._limit = saved  # type: ignore[attr-defined]
        if too_big:
            return b"", True
        raw = b"".join(parts)
        return raw[:-3], False

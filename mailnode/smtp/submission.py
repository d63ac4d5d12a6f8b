"""Submission (RFC 6409): port 587 with STARTTLS, port 465 with implicit TLS.

AUTH PLAIN and LOGIN are offered only under TLS, and nothing but EHLO, NOOP,
STARTTLS and QUIT is accepted before it on 587. An authenticated user may send
to any domain: recipients of this cluster are stored on their shards at once,
the others are queued on the *sender's* shard, whose primary delivers them.
The password check runs on the user's shard primary, like POP3's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time

from aiosmtpd.smtp import AuthResult, _AuthMechAttr, _Missing

from mailnode import metrics
from mailnode.errors import Unavailable
from mailnode.interfaces import FrontEnd
from mailnode.smtp import replies
from mailnode.smtp.handler import MxHandler, _printable
from mailnode.smtp.protocol import MailSMTP
from mailnode.users import normalize

log = logging.getLogger(__name__)

IMPLICIT_TLS = object()  # stands in for aiosmtpd's STARTTLS protocol object on port 465


class _NoLoginDataWarning(logging.Filter):
    """aiosmtpd's own smtp_AUTH sets the deprecated Session.login_data and warns each time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_NoLoginDataWarning())


class RateLimiter:
    """Token buckets (``per_hour`` messages, refilled continuously) per key; in memory,
    per node: a limit is per node, which a load balancer spreads evenly enough."""

    def __init__(self, per_hour: int):
        self.per_hour = per_hour
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> bool:
        if not self.per_hour:
            return True
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.per_hour), now))
        tokens = min(float(self.per_hour), tokens + (now - at) * self.per_hour / 3600.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # full buckets carry no information
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.per_hour - 1}
        return True


class SubmissionHandler(MxHandler):
    def __init__(self, node: FrontEnd, auth_backend):
        super().__init__(node)
        self.auth_backend = auth_backend
        cfg = node.config.submission
        self.sender_must_match = cfg.sender_must_match
        self.per_user = RateLimiter(cfg.rate_per_user)
        self.per_ip = RateLimiter(cfg.rate_per_ip)

    def may_relay(self, session) -> bool:
        return bool(session.authenticated)

    async def handle_MAIL(self, server, session, envelope, address, options):
        user = session.auth_data
        sender = "" if address == "<>" else normalize(address)
        if self.sender_must_match and sender != user:
            self.rejected("sender_not_owned")
            return replies.SENDER_NOT_OWNED.format(_printable(address) if sender else "", user)
        ip = session.peer[0] if session.peer else ""
        if not self.per_user.take(user):
            metrics.SUBMISSION_RATE_LIMITED.labels("user").inc()
            return replies.RATE_LIMITED.format(user, self.per_user.per_hour)
        if not self.per_ip.take(ip):
            metrics.SUBMISSION_RATE_LIMITED.labels("ip").inc()
            return replies.RATE_LIMITED.format(ip, self.per_ip.per_hour)
        return await super().handle_MAIL(server, session, envelope, address, options)

    def plan(self, session, envelope) -> dict[int, tuple[list[str], list[str]]]:
        by_shard: dict[int, tuple[list[str], list[str]]] = {}
        home = self.node.shard_id(session.auth_data)  # the user's shard queues what leaves it
        for rcpt in envelope.rcpt_tos:
            if rcpt.rpartition("@")[2] in self.node.domains:
                by_shard.setdefault(self.node.shard_id(rcpt), ([], []))[0].append(rcpt)
            else:
                by_shard.setdefault(home, ([], []))[1].append(rcpt)
        return by_shard

    async def authenticate(self, login: bytes, password: bytes) -> AuthResult:
        try:
            user, pw = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
        try:
            mailbox = await self.auth_backend.authenticate(user, pw)
        except Unavailable as e:
            log.warning("AUTH %s: %s", _printable(user), e)
            return AuthResult(success=False, handled=False, message=replies.AUTH_UNAVAILABLE)
        if mailbox is None:
            log.info("AUTH failed for %s", _printable(user))  # never the password
            await asyncio.sleep(self.node.config.pop3.auth_failure_delay)
            return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
        return AuthResult(success=True, auth_data=mailbox, message=replies.AUTH_OK)


class SubmissionSMTP(MailSMTP):
    """MailSMTP with AUTH (PLAIN, LOGIN) required, and TLS required before it."""

    def __init__(self, handler: SubmissionHandler, *, implicit_tls: bool, **kwargs):
        super().__init__(handler, **kwargs)
        self._auth_required = True
        self._auth_require_tls = True
        self._auth_methods = {
            "PLAIN": _AuthMechAttr(self.auth_PLAIN, True),
            "LOGIN": _AuthMechAttr(self.auth_LOGIN, True),
        }
        self.implicit_tls = implicit_tls
        if implicit_tls:
            self.tls_context = None  # no STARTTLS on a TLS connection
            # aiosmtpd only tests it for truth; there is no SSLProtocol on a TLS connection.
            self._tls_protocol = IMPLICIT_TLS  # type: ignore[assignment]
        else:
            self.require_starttls = True  # RFC 3207 4: nothing but EHLO/NOOP/QUIT before it

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.implicit_tls and self.session is not None:
            self.session.ssl = transport.get_extra_info("ssl_object")

    async def _decode(self, blob: str) -> bytes | None:
        try:
            return base64.b64decode(blob.encode(), validate=True)
        except (binascii.Error, ValueError):
            await self.push("501 5.5.2 Can't decode base64")
            return None

    # aiosmtpd's auth_* call a synchronous authenticator; ours asks the user's shard
    # primary, so these are aiosmtpd's with the one call awaited.
    async def auth_PLAIN(self, _, args: list[str]) -> AuthResult:
        blob: bytes | _Missing | None  # challenge_auth's MISSING: the client gave up
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            blob = await self._decode(args[1])
            if blob is None:
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self.event_handler.authenticate(parts[1], parts[2])

    async def auth_LOGIN(self, _, args: list[str]) -> AuthResult:
        login: bytes | _Missing | None
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
        else:
            login = await self._decode(args[1])
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self.event_handler.authenticate(login, password)

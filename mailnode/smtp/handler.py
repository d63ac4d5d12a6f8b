"""The MX handler: who may receive mail here, and committing it to the journal.

The MX listener never relays: a recipient outside the hosted domains is refused
at RCPT. ``250`` after DATA is sent only once every shard that has a recipient
of the message has made its record durable.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import os
import time
from collections.abc import Awaitable

from mailnode import metrics
from mailnode.errors import MailclusterError, OverQuota, Unavailable
from mailnode.interfaces import FrontEnd
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.smtp import replies
from mailnode.users import normalize

log = logging.getLogger(__name__)

_ids = itertools.count()


def queue_id() -> str:
    """Unique per node and restart: time, pid and a counter."""
    return f"{time.time_ns() // 1000:x}{os.getpid() % 4096:03x}{next(_ids) % 65536:04x}".upper()


def _printable(text: str, limit: int = 255) -> str:
    return "".join(c if 32 < ord(c) < 127 else "?" for c in text[:limit]) or "unknown"


class MxHandler:
    def __init__(self, node: FrontEnd):
        self.node = node
        self.inflight = 0  # DATA commits under way; a stopping node waits for them

    def rejected(self, reason: str) -> None:
        metrics.SMTP_REJECTED.labels(reason).inc()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # aiosmtpd ends with "250 HELP"; advertise what we implement before it.
        # An AUTH line with no mechanisms (the MX listener has none) is dropped.
        lines = [r for r in responses[:-1] if r.rstrip() != "250-AUTH"]
        return [*lines, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]

    async def handle_MAIL(self, server, session, envelope, address, options):
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.SENDER_OK

    async def handle_RCPT(self, server, session, envelope, address, options):
        addr = normalize(address)
        local, at, domain = addr.rpartition("@")
        if not at or not local:
            self.rejected("bad_address")
            return replies.BAD_ADDRESS.format(_printable(address))
        if domain in self.node.domains:
            refusal = await self.check_local(address, addr)
            if refusal:
                return refusal
        elif not self.may_relay(session):
            self.rejected("relay_denied")
            return replies.RELAY_DENIED.format(_printable(address))
        if addr in envelope.rcpt_tos:  # named twice: one copy (as Postfix does)
            return replies.RCPT_OK
        if len(envelope.rcpt_tos) >= self.node.config.smtp.max_recipients:
            self.rejected("too_many_recipients")
            return replies.TOO_MANY_RCPTS
        envelope.rcpt_tos.append(addr)
        envelope.rcpt_options.extend(options)
        return replies.RCPT_OK

    def may_relay(self, session) -> bool:
        return False  # the MX listener never relays for anyone

    async def check_local(self, address: str, addr: str) -> str | None:
        """A refusal for a mailbox of this cluster that cannot take mail, else None."""
        if not self.node.agent.clustered:  # standalone: only shards this node is primary of
            shard = self.node.shard_for(addr)
            exists, over = shard.state.lookup(addr)
            if not exists:
                self.rejected("unknown_user")
                return replies.USER_UNKNOWN.format(_printable(address))
            if not shard.accepting:
                self.rejected("not_primary")
                return replies.NOT_PRIMARY.format(_printable(address))
        else:
            try:  # a cluster: any mailbox, asked of its shard's primary
                exists, over = await self.node.router.lookup(self.node.shard_id(addr), addr)
            except Unavailable as e:
                log.warning("RCPT %s: %s", addr, e)
                self.rejected("not_primary")
                return replies.NOT_PRIMARY.format(_printable(address))
            if not exists:
                self.rejected("unknown_user")
                return replies.USER_UNKNOWN.format(_printable(address))
        if over:
            self.rejected("over_quota")
            metrics.QUOTA_REFUSALS.labels(str(self.node.shard_id(addr))).inc()
            return replies.OVER_QUOTA.format(_printable(address), over)
        return None

    def received_header(self, session, envelope, qid: str) -> bytes:
        proto = "UTF8SMTP" if envelope.smtp_utf8 else ("ESMTP" if session.extended_smtp else "SMTP")
        if session.ssl is not None:
            proto += "S"
        if session.authenticated:
            proto += "A"  # RFC 3848: ESMTPSA
        ip = session.peer[0] if session.peer else "unknown"
        rcpt = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        return (
            f"Received: from {_printable(session.host_name or 'unknown')} ([{ip}])\r\n"
            f"\tby {self.node.hostname} (mailcluster) with {proto} id {qid}{rcpt};\r\n"
            f"\t{email.utils.formatdate(localtime=False, usegmt=True)}\r\n"
        ).encode("utf-8", "replace")

    async def handle_DATA(self, server, session, envelope):
        self.inflight += 1
        try:
            return await self._commit(session, envelope)
        finally:
            self.inflight -= 1

    def plan(self, session, envelope) -> dict[int, tuple[list[str], list[str]]]:
        """shard -> (its mailboxes to store into, recipients for its delivery queue)."""
        by_shard: dict[int, tuple[list[str], list[str]]] = {}
        for rcpt in envelope.rcpt_tos:
            by_shard.setdefault(self.node.shard_id(rcpt), ([], []))[0].append(rcpt)
        return by_shard

    async def _commit(self, session, envelope) -> str:
        t0 = time.monotonic()
        qid = queue_id()
        data = self.received_header(session, envelope, qid) + envelope.original_content
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        peer = session.peer[0] if session.peer else ""
        try:
            commits: list[Awaitable[object]] = []
            plan = self.plan(session, envelope)
            for shard_id, (local, relay) in plan.items():
                rec = JournalRecord()
                m = rec.message_accepted
                m.queue_id = qid
                m.mail_from = sender
                m.recipients.extend(local)
                m.relay_recipients.extend(relay)
                m.data = data
                m.client_address = peer
                m.helo = session.host_name or ""
                m.whole_transaction = len(plan) == 1
                if not self.node.agent.clustered and not relay:
                    commits.append(self.node.shards[shard_id].commit_message(rec))
                else:
                    commits.append(self.node.router.commit(shard_id, rec))
            # Shielded: a client that disconnects now must not leave a commit half-awaited.
            await asyncio.shield(asyncio.gather(*commits))
        except OverQuota as e:
            log.info("%s: message %s from <%s> refused: %s", peer, qid, sender, e)
            self.rejected("over_quota")
            return replies.OVER_QUOTA_DATA
        except MailclusterError as e:  # temporary, or a refusal nobody can fix by resending: 451
            log.error("%s: message %s from <%s> not committed: %s", peer, qid, sender, e)
            self.rejected("commit_failed")
            return replies.COMMIT_FAILED
        metrics.COMMIT_SECONDS.observe(time.monotonic() - t0)
        metrics.SMTP_ACCEPTED.inc()
        return replies.OK_QUEUED.format(qid)

    async def handle_exception(self, error: Exception) -> str:
        # Never a traceback to the client; the log has it.
        log.exception("SMTP session error")
        return replies.INTERNAL_ERROR
